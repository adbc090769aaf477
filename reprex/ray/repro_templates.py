"""The standalone repro scripts `reprex check-serve` writes: Ray's own steps, without Ray.

Each is plain Python that runs with `python repro.py` in the bundle's work dir and needs
only what it imports (nothing for the import check; smart_open + requests for the fetch).
Tokens are never written into them: they are read from the environment at run time.
"""

from __future__ import annotations

# ray._common.utils.import_module_and_attr / import_attr in Ray 2.60 (ray._private.utils in
# older releases), copied so the repro does exactly what Serve does, with no Ray installed.
IMPORT_ATTR = '''
def import_attr(full_path, *, reload_module=False):
    """Ray's import_attr (ray._common.utils in Ray 2.60), copied: 'pkg.mod:attr' or 'pkg.mod.attr'."""
    if ":" in full_path:
        if full_path.count(":") > 1:
            raise ValueError(
                f'Got invalid import path "{full_path}". An '
                "import path may have at most one colon."
            )
        module_name, attr_name = full_path.split(":")
    else:
        last_period_idx = full_path.rfind(".")
        module_name = full_path[:last_period_idx]
        attr_name = full_path[last_period_idx + 1 :]
    module = importlib.import_module(module_name)
    if reload_module:
        importlib.reload(module)
    return getattr(module, attr_name)
'''


def _docstring(lines: list[str]) -> str:
    text = "\n".join(lines).replace('"""', "'''").replace("\\", "\\\\")
    return f'"""{text}\n"""'


def import_repro(*, config: str, app: str, import_path: str, subdir: str, ray_version: str | None,
                 hint: str | None) -> str:
    doc = [
        f"Minimal failing call extracted by `reprex check-serve` from {config}, application {app!r}:",
        "Ray Serve's import of the application's import_path, alone, without Ray.",
        "",
        "Serve builds each application in a task whose runtime_env working_dir is the",
        "application's: the task runs in that directory, with it first on sys.path, and calls",
        f"import_attr(import_path) (Ray {ray_version or '2.60'}). This file does the same with a copy",
        "of import_attr, so it needs no Ray. The working_dir's files are beside it.",
    ]
    if hint:
        doc += ["", "Hint: " + hint]
    return "\n".join([
        _docstring(doc),
        "import importlib",
        "import os",
        "import sys",
        "",
        f"IMPORT_PATH = {import_path!r}",
        "HERE = os.path.dirname(os.path.abspath(__file__))",
        f"WORKING_DIR = os.path.normpath(os.path.join(HERE, {subdir!r}))",
        "",
        IMPORT_ATTR.strip("\n"),
        "",
        "",
        "# The build task's view: cwd is the working_dir, and it comes first on sys.path.",
        "os.chdir(WORKING_DIR)",
        "sys.path[:] = [WORKING_DIR] + [p for p in sys.path if os.path.abspath(p or '.') != HERE]",
        "app = import_attr(IMPORT_PATH)",
        'print(f"{IMPORT_PATH} -> {app!r}")',
        "",
    ])


def fetch_repro(*, config: str, app: str, url: str, had_credentials: bool, ray_version: str | None,
                hint: str | None) -> str:
    doc = [
        f"Minimal failing call extracted by `reprex check-serve` from {config}, application {app!r}:",
        "Ray's download of the runtime_env working_dir, alone, without Ray.",
        "",
        f"Ray (ray/_private/runtime_env/protocol.py, Ray {ray_version or '2.60'}) fetches http(s)",
        "working_dir URIs with smart_open, sending these headers, plus a Bearer header with the",
        "token in RAY_RUNTIME_ENV_BEARER_TOKEN when that variable is set.",
        "No token is stored in this file. To send one, set in the environment",
        "  - RAY_RUNTIME_ENV_BEARER_TOKEN: sent as a Bearer header, as Ray does, or",
        "  - REPREX_URL_CREDENTIALS (user, colon, token): put back into the URL"
        + (" (the original URL had credentials)." if had_credentials else "."),
    ]
    if hint:
        doc += ["", "Hint: " + hint]
    return "\n".join([
        _docstring(doc),
        "import io",
        "import os",
        "import zipfile",
        "",
        "import smart_open",
        "",
        f"URL = {url!r}",
        "",
        "headers = {",
        '    "User-Agent": os.environ.get("RAY_RUNTIME_ENV_HTTP_USER_AGENT", "ray-runtime-env-curl/1.0"),',
        '    "Accept": "*/*",',
        "}",
        'if os.environ.get("RAY_RUNTIME_ENV_BEARER_TOKEN"):',
        '    headers["Authorization"] = "Bearer " + os.environ["RAY_RUNTIME_ENV_BEARER_TOKEN"]',
        "url = URL",
        'if os.environ.get("REPREX_URL_CREDENTIALS"):',
        '    scheme, _, rest = URL.partition("://")',
        '    url = scheme + "://" + os.environ["REPREX_URL_CREDENTIALS"] + "@" + rest',
        "",
        'with smart_open.open(url, "rb", transport_params={"headers": headers, "timeout": 60}) as fin:',
        "    data = fin.read()",
        "names = zipfile.ZipFile(io.BytesIO(data)).namelist()  # Ray unzips what it fetched",
        'print(f"fetched {len(data)} bytes, {len(names)} entries")',
        "",
    ])
