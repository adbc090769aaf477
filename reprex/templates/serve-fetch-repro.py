"""Template of the repro `reprex check-serve` writes for a failed download of a working_dir.

Ray's download of the runtime_env working_dir, alone, without Ray. The repro is this file with
its docstring replaced and the block between the `reprex:` markers rendered from the check
(reprex.ray.repro_templates); everything else is copied as is. It needs smart_open and
requests, as Ray does. No token is ever written into it: it reads them from the environment.
The hyphen in the file name is on purpose: linted like any module, never imported by accident.
"""
import io
import os
import zipfile

import smart_open

# reprex: parameters
URL = "https://example.invalid/working_dir.zip"
# reprex: end

headers = {
    "User-Agent": os.environ.get("RAY_RUNTIME_ENV_HTTP_USER_AGENT", "ray-runtime-env-curl/1.0"),
    "Accept": "*/*",
}
if os.environ.get("RAY_RUNTIME_ENV_BEARER_TOKEN"):
    headers["Authorization"] = "Bearer " + os.environ["RAY_RUNTIME_ENV_BEARER_TOKEN"]
url = URL
if os.environ.get("REPREX_URL_CREDENTIALS"):
    scheme, _, rest = URL.partition("://")
    url = scheme + "://" + os.environ["REPREX_URL_CREDENTIALS"] + "@" + rest

with smart_open.open(url, "rb", transport_params={"headers": headers, "timeout": 60}) as fin:
    data = fin.read()
names = zipfile.ZipFile(io.BytesIO(data)).namelist()  # Ray unzips what it fetched
print(f"fetched {len(data)} bytes, {len(names)} entries")
