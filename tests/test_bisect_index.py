"""The loopback index the bisect tests stand on (tests/bisect_index.py): what it serves must be
what PyPI serves (the same files and per-file facts, in PEP 691 JSON and PEP 503 HTML), and pip
and uv pointed at it must see nothing else -- or a bisection test would pass or fail for reasons
of the fixture's own.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import urllib.request

import pytest
from bisect_cases import uv_binary
from bisect_index import JSON_TYPE, FileCache, IndexServer, cache_dir

URLLIB3 = ("1.26.15", "2.0.0", "2.0.1", "2.0.2", "1.26.18")  # 2.0.0 and 2.0.1 are yanked on PyPI


@pytest.fixture(scope="module")
def index():
    server = IndexServer(FileCache(cache_dir())).start()
    server.add("urllib3", URLLIB3)
    server.add("markupsafe", ["2.1.1"], python="3.10")  # PyPI has no cp311 wheel of 2.1.1
    yield server
    server.stop()


def get(url: str, accept: str = "") -> tuple[str, bytes]:
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": accept}), timeout=30) as response:
        return response.headers["Content-Type"], response.read()


def test_json_and_html_list_the_same_files_with_pypis_facts(index):
    ctype, body = get(index.url + "urllib3/", JSON_TYPE)
    assert ctype == JSON_TYPE
    files = {f["filename"]: f for f in json.loads(body)["files"]}
    assert sorted(files) == sorted(f"urllib3-{v}-{'py3' if v.startswith('2') else 'py2.py3'}-none-any.whl"
                                   for v in URLLIB3)
    yanked = files["urllib3-2.0.0-py3-none-any.whl"]
    assert "Truncated response bodies" in yanked["yanked"]  # PyPI's own reason
    assert yanked["upload-time"].startswith("2023-04-26T") and yanked["requires-python"] == ">=3.7"
    assert files["urllib3-2.0.2-py3-none-any.whl"]["yanked"] is False
    # PEP 658: the metadata file is served and its hash is the advertised one
    entry = files["urllib3-2.0.2-py3-none-any.whl"]
    _, metadata = get(f"http://127.0.0.1:{index.port}{entry['url']}.metadata")
    assert hashlib.sha256(metadata).hexdigest() == entry["core-metadata"]["sha256"]
    assert b"Name: urllib3" in metadata and b"Version: 2.0.2" in metadata

    ctype, html = get(index.url + "urllib3/", "text/html")
    text = html.decode()
    assert ctype == "text/html" and text.count("<a ") == len(URLLIB3)
    assert 'data-yanked="Truncated response bodies' in text and 'data-requires-python="&gt;=3.7"' in text
    for name, f in files.items():
        assert f"{name}#sha256={f['hashes']['sha256']}" in text


def test_a_release_without_a_cp311_wheel_serves_only_its_other_wheel(index):
    _, body = get(index.url + "markupsafe/", JSON_TYPE)
    (only,) = json.loads(body)["files"]
    assert "-cp310-cp310-" in only["filename"]


def test_an_sdist_is_served_with_pypis_facts_and_no_metadata_file(index):
    (sdist,) = index.add("itsdangerous", ["2.0.1"], sdist=True)
    _, body = get(index.url + "itsdangerous/", JSON_TYPE)
    (entry,) = [f for f in json.loads(body)["files"] if f["filename"] == sdist.filename]
    assert entry["filename"].endswith(".tar.gz") and entry["upload-time"].startswith("2021-05-18")
    assert "core-metadata" not in entry and entry["hashes"]["sha256"] == sdist.sha256


def test_pip_and_uv_see_this_index_alone(index, tmp_path):
    env = index.environ()
    assert env["PIP_CONFIG_FILE"] == "/dev/null" and not any(k in env for k in ("PIP_FIND_LINKS",
                                                                                 "PIP_EXTRA_INDEX_URL"))
    before = len(index.requests)
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(tmp_path), "urllib3"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["urllib3-2.0.2-py3-none-any.whl"]  # newest, not yanked here
    assert "/files/urllib3/urllib3-2.0.2-py3-none-any.whl" in index.requests[before:]


@pytest.mark.parametrize("as_of, expected", [("2023-05-01T00:00:00Z", "1.26.15"),  # 2.0.0/2.0.1: yanked
                                             ("2023-05-04T00:00:00Z", "2.0.2"),
                                             ("2023-04-01T00:00:00Z", "1.26.15")])
def test_uv_resolves_as_of_a_date_from_the_upload_times(index, as_of, expected):
    """What `reprex bisect --date` rests on: uv --exclude-newer reads each file's upload-time."""
    proc = subprocess.run([uv_binary(), "pip", "compile", "-", "--quiet", "--no-header", "--no-annotate",
                           "--exclude-newer", as_of], input="urllib3\n", env=index.environ(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [f"urllib3=={expected}"]


def test_an_html_only_index_still_serves_pip(tmp_path):
    """json_api=False: an index that answers PEP 503 HTML whatever is asked (release listing must
    fall back to it)."""
    server = IndexServer(FileCache(cache_dir()), json_api=False).start()
    try:
        server.add("urllib3", ["2.0.2"])
        ctype, _ = get(server.url + "urllib3/", JSON_TYPE)
        assert ctype == "text/html"
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(tmp_path),
                               "urllib3==2.0.2"], env=server.environ(), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    finally:
        server.stop()
