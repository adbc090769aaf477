"""Which package index `reprex bisect` lists releases from: the user's own, in this order:
--index-url, UV_DEFAULT_INDEX / UV_INDEX_URL, a uv.toml, PIP_INDEX_URL, pip.conf, then PyPI (as
the installs through uv take them);
said on stderr (in --json, by its `index` field) without credentials.

Two loopback indexes (tests/bisect_index.py) stand in for the user's: `right` serves
itsdangerous, `decoy` serves nothing and is configured at every lower-precedence place, so a
listing read from the wrong place shows up in `decoy.requests`. A release that is on no index
(--bad 9.9.9) ends each run right after the listing, before any replay.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from email.parser import HeaderParser

import pytest
from bisect_index import FileCache, IndexServer, cache_dir
from test_bisect_cli import RELEASES, REPRO, _capture

from reprex.bisect.releases import changelog_url, list_releases

CONFIG_VARS = ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL", "UV_NO_CONFIG", "UV_CONFIG_FILE",
               "PIP_CONFIG_FILE")


@pytest.fixture(scope="module")
def indexes(tmp_path_factory):
    right = IndexServer(FileCache(cache_dir())).start()
    decoy = IndexServer(FileCache(cache_dir())).start()
    try:
        right.add("itsdangerous", RELEASES)
        env = right.environ()
        env["REPREX_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
        bundle = _capture(env, tmp_path_factory.mktemp("index-config"), REPRO)
        yield {"right": right, "decoy": decoy, "bundle": bundle, "env": env,
               "dir": tmp_path_factory.mktemp("configs")}
    finally:
        right.stop()
        decoy.stop()


def _pip_conf(indexes, name: str, url: str) -> str:
    path = indexes["dir"] / f"{name}.conf"
    path.write_text(f"[global]\nindex-url = {url}\n")
    return str(path)


def _uv_toml(indexes, name: str, body: str) -> str:
    path = indexes["dir"] / f"{name}.toml"
    path.write_text(body)
    return str(path)


def _env(indexes, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in indexes["env"].items() if k not in CONFIG_VARS}
    env["PIP_CONFIG_FILE"] = _pip_conf(indexes, "decoy-pip", indexes["decoy"].url)  # the lowest: pip.conf
    env.update(settings)
    return env


def _bisect(indexes, env, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reprex", "bisect", str(indexes["bundle"]), "--package",
                           "itsdangerous", "--backend", "local", "--no-write", *extra], env=env, capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL)


def _listed_from_right_only(indexes, before: tuple[int, int]) -> None:
    right, decoy = indexes["right"], indexes["decoy"]
    assert "/simple/itsdangerous/" in right.requests[before[0]:], right.requests[before[0]:]
    assert decoy.requests[before[1]:] == [], decoy.requests[before[1]:]


def _marks(indexes) -> tuple[int, int]:
    return len(indexes["right"].requests), len(indexes["decoy"].requests)


def _each_way(indexes):
    right, decoy = indexes["right"].url, indexes["decoy"].url
    decoy_toml = _uv_toml(indexes, "decoy-uv", f'index-url = "{decoy}"\n')
    return {
        "UV_DEFAULT_INDEX": dict(UV_DEFAULT_INDEX=right, PIP_INDEX_URL=decoy, UV_CONFIG_FILE=decoy_toml),
        "UV_INDEX_URL": dict(UV_INDEX_URL=right, PIP_INDEX_URL=decoy, UV_CONFIG_FILE=decoy_toml),
        "PIP_INDEX_URL": dict(PIP_INDEX_URL=right, UV_NO_CONFIG="1"),
        # the installs go through uv, which reads its uv.toml and not PIP_*: the listing does the same
        "uv.toml (over PIP_INDEX_URL)": dict(UV_CONFIG_FILE=_uv_toml(indexes, "right-uv-over-pip",
                                                                      f'index-url = "{right}"\n'),
                                             PIP_INDEX_URL=decoy),
        "uv.toml (index-url)": dict(UV_CONFIG_FILE=_uv_toml(indexes, "right-uv", f'index-url = "{right}"\n')),
        "uv.toml ([[index]] default)": dict(UV_CONFIG_FILE=_uv_toml(
            indexes, "right-uv-index", f'[[index]]\nname = "ours"\nurl = "{right}"\ndefault = true\n')),
        "uv.toml ([pip] index-url)": dict(UV_CONFIG_FILE=_uv_toml(
            indexes, "right-uv-pip", f'index-url = "{decoy}"\n[pip]\nindex-url = "{right}"\n')),
        "pip.conf": dict(PIP_CONFIG_FILE=_pip_conf(indexes, "right-pip", right), UV_NO_CONFIG="1"),
    }


@pytest.mark.parametrize("way", ["UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL", "uv.toml (index-url)",
                                 "uv.toml ([[index]] default)", "uv.toml ([pip] index-url)",
                                 "uv.toml (over PIP_INDEX_URL)", "pip.conf"])
def test_the_listing_comes_from_the_users_configured_index(indexes, way):
    settings = _each_way(indexes)[way]
    before = _marks(indexes)
    proc = _bisect(indexes, _env(indexes, **settings), "--bad", "9.9.9")
    assert proc.returncode == 2, proc.stderr
    source = way.split(" (")[0]
    said = f"{indexes['right'].url} (from {source}"
    assert f"reprex: listing the releases of itsdangerous from {said}" in proc.stderr, proc.stderr
    assert f"itsdangerous 9.9.9 (the bad end) is not on the index ({indexes['right'].url})" in proc.stderr
    assert "replaying" not in proc.stderr and "Traceback" not in proc.stderr
    _listed_from_right_only(indexes, before)


def test_index_url_wins_and_the_probes_install_from_it(indexes):
    """--index-url over every other setting, for the listing and for each probe's install: with
    the environment pointing uv and pip at the empty decoy, the bisection still finds 2.1.0."""
    decoy = indexes["decoy"].url
    env = _env(indexes, UV_INDEX_URL=decoy, UV_DEFAULT_INDEX=decoy, PIP_INDEX_URL=decoy, UV_NO_CONFIG="1")
    before = _marks(indexes)
    proc = _bisect(indexes, env, "--index-url", indexes["right"].url, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert (data["findings"][0]["first_bad"], data["findings"][0]["last_good"]) == ("2.1.0", "2.0.1")
    assert data["index"] == indexes["right"].url
    assert "listing the releases" not in proc.stderr  # under --json stderr has errors only: one line each
    _listed_from_right_only(indexes, before)


def test_credentials_in_the_index_url_are_never_shown(indexes):
    right = indexes["right"]
    secret_url = right.url.replace("http://", "http://alice:s3cr3t-token@")
    before = _marks(indexes)
    proc = _bisect(indexes, _env(indexes, UV_NO_CONFIG="1"), "--index-url", secret_url, "--bad", "9.9.9")
    assert proc.returncode == 2, proc.stderr
    assert "s3cr3t-token" not in proc.stderr and "alice" not in proc.stderr, proc.stderr
    assert f"from {right.url} (from --index-url)" in proc.stderr
    _listed_from_right_only(indexes, before)


def test_a_url_that_is_not_an_index_is_one_line(indexes):
    proc = _bisect(indexes, _env(indexes, UV_NO_CONFIG="1"), "--index-url", "ftp://example.invalid/simple")
    assert proc.returncode == 2 and "--index-url" in proc.stderr and "http://, https:// or file://" in proc.stderr
    assert "Traceback" not in proc.stderr and "listing the releases" not in proc.stderr


# -- the changelog link from the index's JSON API (no PEP 658 metadata served) -----------------------

class JsonApiIndex(IndexServer):
    """An index that serves no `.metadata` files but Warehouse's JSON API beside /simple/, its
    `project_urls` taken from each wheel's own Project-URL lines (as PyPI builds them), or
    `override` for a test that needs a hostile one."""

    override: dict | None = None

    def respond(self, path: str, accept: str) -> tuple[int, str, bytes]:
        match = re.fullmatch(r"/pypi/([^/]+)/([^/]+)/json", path)
        if not match:
            return super().respond(path, accept)
        found = [f for f in self.projects.get(match.group(1), {}).values() if f.version == match.group(2)]
        if not found:
            return 404, "application/json", b'{"message": "Not Found"}'
        urls = self.override
        if urls is None:
            meta = HeaderParser().parsestr(self._metadata[found[0].filename].decode())
            urls = {label.strip(): link.strip() for label, _, link in
                    (e.partition(",") for e in meta.get_all("Project-URL") or [])}
        return 200, "application/json", json.dumps({"info": {"project_urls": urls}}).encode()

    def add(self, *args, **kwargs):
        added = super().add(*args, **kwargs)
        self._metadata = getattr(self, "_metadata", {})
        for f in added:
            self._metadata[f.filename], f.metadata = f.metadata, None  # no PEP 658: the JSON API is asked
        return added


@pytest.fixture()
def json_api_index():
    index = JsonApiIndex(FileCache(cache_dir())).start()
    index.add("itsdangerous", ["2.1.0", "2.1.2"])
    yield index
    index.stop()


def test_the_changelog_link_comes_from_the_indexs_json_api(json_api_index):
    index = json_api_index
    env = index.environ()
    listing = list_releases("itsdangerous", python="3.11", machine="x86_64", environ=env)
    release = listing.candidates[-1]
    assert release.version == "2.1.2" and not any(f.metadata for f in release.files)
    assert changelog_url(release, "itsdangerous", environ=env) == "https://itsdangerous.palletsprojects.com/changes/"
    assert "/pypi/itsdangerous/2.1.2/json" in index.requests
    assert not any(r.endswith(".metadata") for r in index.requests)
    # the same through --index-url (with a credential, sent as Basic auth and never in the link)
    env = {**env, "UV_INDEX_URL": "http://127.0.0.1:9/simple/", "PIP_INDEX_URL": "http://127.0.0.1:9/simple/"}
    secret = index.url.replace("http://", "http://bob:pw@")
    assert changelog_url(release, "itsdangerous", environ=env, index_url=secret) == \
        "https://itsdangerous.palletsprojects.com/changes/"


@pytest.mark.parametrize("urls", [{"Changelog": "javascript:alert(1)"}, {"Changes": "https://x.org/<script>"},
                                  {"Homepage": "https://example.org/"}, {"Changes": "http://plain.example/changes"}])
def test_a_json_api_link_that_is_not_a_plain_https_changelog_is_dropped(json_api_index, urls):
    json_api_index.override = urls
    env = json_api_index.environ()
    release = list_releases("itsdangerous", python="3.11", machine="x86_64", environ=env).candidates[-1]
    assert changelog_url(release, "itsdangerous", environ=env) is None
    assert "/pypi/itsdangerous/2.1.2/json" in json_api_index.requests


def test_no_json_api_is_no_link_and_no_error(json_api_index):
    env = json_api_index.environ()
    release = list_releases("itsdangerous", python="3.11", machine="x86_64", environ=env).candidates[0]
    json_api_index.remove("itsdangerous", "2.1.0")  # its JSON now 404s
    assert changelog_url(release, "itsdangerous", environ=env) is None


# -- --index-url reaches the installs as their processes' environment, never this one's -----------

DUMPING = """\
import json, os
with open(os.path.join({folder!r}, "env-%d.json" % os.getpid()), "w") as fh:
    json.dump(dict(os.environ), fh)
from itsdangerous import TimedJSONWebSignatureSerializer
print(TimedJSONWebSignatureSerializer)
"""


@pytest.fixture(scope="module")
def dumping(indexes, tmp_path_factory):
    """A bundle whose program writes its whole environment to a file outside its work dir (where
    the test reads it) before failing as REPRO does under itsdangerous 2.1.2."""
    import uuid

    folder = tmp_path_factory.mktemp("environments")
    bundle = _capture(indexes["env"], tmp_path_factory.mktemp("dumping"), DUMPING.format(folder=str(folder)))
    secret, user = "s3cr3t-" + uuid.uuid4().hex, "rxuser" + uuid.uuid4().hex[:6]
    url = indexes["right"].url.replace("http://", f"http://{user}:{secret}@")
    return {"bundle": bundle, "folder": folder, "url": url, "secret": secret, "user": user}


def _decoy_env(indexes) -> dict[str, str]:
    decoy = indexes["decoy"].url
    return _env(indexes, UV_INDEX_URL=decoy, UV_DEFAULT_INDEX=decoy, PIP_INDEX_URL=decoy, UV_NO_CONFIG="1")


def test_a_library_caller_keeps_its_environment_while_index_url_reaches_the_installs(indexes, dumping,
                                                                                      monkeypatch):
    """bisect() with an index_url, in this process (as the pytest plugin or a thread calls it): its
    environment, read while the probes run, is what it was, and the probes still install from the
    index given (the environment points uv and pip at the empty decoy)."""
    import os

    from reprex.bisect import BisectOptions, bisect
    from reprex.bundle import Bundle

    for name in [n for n in os.environ if n.startswith(("PIP_", "UV_"))]:
        monkeypatch.delenv(name)
    for name, value in _decoy_env(indexes).items():
        monkeypatch.setenv(name, value)
    before = dict(os.environ)
    seen: list[dict] = []
    result = bisect(Bundle.read(indexes["bundle"]), package="itsdangerous",
                    options=BisectOptions(backend="local", jobs=2, index_url=dumping["url"]),
                    progress=lambda msg: seen.append(dict(os.environ)))
    assert seen and all(env == before for env in seen), [
        {k: v for k, v in env.items() if before.get(k) != v} for env in seen if env != before][:1]
    assert dict(os.environ) == before
    assert (result.findings[0].first_bad, result.findings[0].last_good) == ("2.1.0", "2.0.1"), result.summary()
    assert result.index == indexes["right"].url


def test_credentials_in_the_index_url_reach_neither_the_program_nor_any_file(indexes, dumping, tmp_path):
    """--index-url with a user and password: the probes install from it (the first bad is found),
    yet the replayed program's environment never holds them, nor does anything written: the
    bundle's bisect section, stdout's JSON, stderr, reprex's cache (the probes' venvs) or temp files."""
    import zipfile

    env = _decoy_env(indexes)
    env["REPREX_CACHE_DIR"] = str(tmp_path / "cache")  # fresh: the probes' venvs are made by this run
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "bisected.reprex.zip"
    folder = dumping["folder"]
    dumps_before = set(folder.iterdir())
    proc = subprocess.run([sys.executable, "-m", "reprex", "bisect", str(dumping["bundle"]), "--package",
                           "itsdangerous", "--backend", "local", "--jobs", "2", "--index-url", dumping["url"],
                           "--json", "-o", str(out)], env=env, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert (data["findings"][0]["first_bad"], data["findings"][0]["last_good"]) == ("2.1.0", "2.0.1")
    secret, user = dumping["secret"], dumping["user"]
    # the replayed programs (the bundle's own replay and every probe) ran, and saw no credential
    dumps = set(folder.iterdir()) - dumps_before
    assert len(dumps) >= data["replays"] >= 3, (len(dumps), data["replays"])
    for path in dumps:
        text = path.read_text()
        assert secret not in text and user not in text, path
    # nothing written or said holds them
    assert secret not in proc.stdout + proc.stderr and user not in proc.stdout + proc.stderr
    with zipfile.ZipFile(out) as zf:
        assert "reprex.json" in zf.namelist()
        for name in zf.namelist():
            body = zf.read(name)
            assert secret.encode() not in body and user.encode() not in body, name
    written = [p for root in (tmp_path / "cache", tmp_path / "tmp") for p in root.rglob("*") if p.is_file()]
    assert written  # the probes' venvs are there
    for path in written:
        body = path.read_bytes()
        assert secret.encode() not in body and user.encode() not in body, path


def test_the_redactor_takes_every_form_of_the_credentials_out():
    """What bisect says, returns and writes goes through it (uv hides a URL's password itself; a
    pip fallback's or another tool's message might not)."""
    from reprex.bisect.index import redactor

    url = "https://al%40ice:p%2Fss-w0rd@index.example/simple/"
    scrub = redactor(url)
    text = f"GET {url}pkg/ failed; as user al%40ice:p%2Fss-w0rd@host; token p/ss-w0rd; token p%2Fss-w0rd"
    out = scrub(text)
    assert "p/ss-w0rd" not in out and "p%2Fss-w0rd" not in out and "al%40ice" not in out, out
    assert out.startswith("GET https://index.example/simple/pkg/ failed; as user host;"), out
    assert redactor("https://index.example/simple/")(text) == text
    assert redactor(None)("x") == "x"
    token_only = redactor("https://tok3n-abc@index.example/simple/")
    assert "tok3n-abc" not in token_only("https://tok3n-abc@index.example/simple/ and tok3n-abc")
