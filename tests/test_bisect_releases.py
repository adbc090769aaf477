"""Which releases a bisection may probe: real files from a loopback index (tests/bisect_index.py),
read as PEP 691 JSON and as PEP 503 HTML, filtered by pre-release, yanked, Requires-Python and
wheel tags, each exclusion with its reason; the changelog link from PEP 658 metadata."""

from __future__ import annotations

import socket

import pytest

from bisect_index import FileCache, IndexServer, cache_dir
from reprex.bisect.index import IndexUnreachable, fetch_releases, public
from reprex.bisect.releases import changelog_url, list_releases

PY = "3.11.7"


@pytest.fixture(scope="module")
def indexes():
    """Two servers over the same real files: one speaks JSON, one only HTML. This module's own
    (not the session's shared index): it changes facts (a yank, a Requires-Python) others rely on."""
    files = FileCache(cache_dir())
    servers = []
    for json_api in (True, False):
        index = IndexServer(files, json_api=json_api)
        index.add("itsdangerous", ["2.0.0rc2", "2.0.0", "2.0.1", "2.1.1", "2.1.2"])
        index.add("itsdangerous", ["2.1.0"], yanked="removed deprecated code too early")
        for f in index.add("itsdangerous", ["2.2.0"]):
            f.requires_python = ">=3.12"  # the index says so: a 3.11 bundle can't install it
        index.add("markupsafe", ["2.1.1"], python="3.10")  # its newest wheels are cp310: none for 3.11
        index.add("markupsafe", ["2.1.2", "2.1.3"])
        index.add("markupsafe", ["1.0"], sdist=True)  # no wheel at all
        servers.append(index.start())
    yield servers
    for index in servers:
        index.stop()


@pytest.mark.parametrize("which", ["json", "html"])
def test_filters_each_with_a_reason(indexes, which):
    index = indexes[0 if which == "json" else 1]
    listing = list_releases("itsdangerous", python=PY, machine="x86_64", environ=index.environ())
    assert listing.versions() == ["2.0.0", "2.0.1", "2.1.1", "2.1.2"]
    why = dict(listing.excluded)
    assert why["2.0.0rc2"] == "pre-release (use --pre)"
    assert why["2.1.0"].startswith("yanked") and "--yanked" in why["2.1.0"]
    assert why["2.2.0"] == f"requires Python >=3.12; the bundle ran {PY}"
    if which == "json":  # PEP 691 carries the yank's reason; the HTML attribute does too
        assert "removed deprecated code too early" in why["2.1.0"]
    accept = [r for r in index.requests if r.startswith("/simple/itsdangerous")]
    assert accept, index.requests


def test_opt_ins_and_kept_versions(indexes):
    env = indexes[0].environ()
    both = list_releases("itsdangerous", python=PY, machine="x86_64", pre=True, yanked=True, environ=env)
    assert both.versions() == ["2.0.0rc2", "2.0.0", "2.0.1", "2.1.0", "2.1.1", "2.1.2"]
    # a version the user named (or the bundle's pin) passes the yanked/pre filters, never Requires-Python
    kept = list_releases("itsdangerous", python=PY, machine="x86_64", keep=("2.1.0", "2.2.0"), environ=env)
    assert "2.1.0" in kept.versions() and "2.2.0" not in kept.versions()


def test_wheel_tags_for_the_bundles_python_and_machine(indexes):
    env = indexes[0].environ()
    listing = list_releases("markupsafe", python=PY, machine="x86_64", environ=env)
    assert listing.versions() == ["2.1.2", "2.1.3"]
    why = dict(listing.excluded)
    assert why["2.1.1"] == "no cp311 wheel for x86_64"
    assert why["1.0"] == "no wheel (sdist only) for cp311"
    # the same index for a 3.10 bundle: 2.1.1's cp310 wheel is what it wants, 2.1.2's cp311 one is not
    old = list_releases("markupsafe", python="3.10.12", machine="x86_64", environ=env)
    assert "2.1.1" in old.versions()
    # another machine: the x86_64 wheels don't install on aarch64
    arm = list_releases("markupsafe", python=PY, machine="aarch64", environ=env)
    assert arm.versions() == [] and dict(arm.excluded)["2.1.3"] == "no cp311 wheel for aarch64"


def test_changelog_from_pep658_metadata(indexes):
    for index in indexes:
        env = index.environ()
        listing = list_releases("itsdangerous", python=PY, machine="x86_64", environ=env)
        link = changelog_url(listing.candidates[-1], "itsdangerous", environ=env)
        assert link == "https://itsdangerous.palletsprojects.com/changes/"
        assert any(r.endswith(".whl.metadata") for r in index.requests)


def test_credentials_go_as_basic_auth_and_are_never_shown(indexes):
    index = indexes[0]
    env = index.environ()
    env["PIP_INDEX_URL"] = env["UV_INDEX_URL"] = index.url.replace("127.0.0.1", "alice:s3cr%40t@127.0.0.1")
    releases, where = fetch_releases("itsdangerous", environ=env)
    assert [r.version for r in releases][-1] == "2.2.0"
    assert "s3cr" not in where and "alice" not in where and "127.0.0.1" in where
    assert public("https://u:p@example.org:8443/simple/") == "https://example.org:8443/simple/"


def test_unknown_project_and_dead_index(indexes):
    env = indexes[0].environ()
    assert list_releases("no-such-project", python=PY, machine="x86_64", environ=env).candidates == []
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env["PIP_INDEX_URL"] = env["UV_INDEX_URL"] = f"http://127.0.0.1:{port}/simple/"
    with pytest.raises(IndexUnreachable) as exc:
        fetch_releases("itsdangerous", environ=env)
    assert exc.value.exit_code == 3 and "\n" not in exc.value.message and f"127.0.0.1:{port}" in exc.value.message
    with pytest.raises(Exception, match="not a package name"):
        fetch_releases("../etc", environ=env)


def test_uvs_own_index_wins_as_for_installs(indexes):
    """A user who configured uv (UV_INDEX_URL) and not pip gets the releases uv installs from."""
    env = {k: v for k, v in indexes[0].environ().items() if not k.startswith("PIP_INDEX")}
    env["PIP_INDEX_URL"] = "http://127.0.0.1:9/simple/"  # pip's points elsewhere: not what probes use
    releases, where = fetch_releases("itsdangerous", environ=env)
    assert releases and where == indexes[0].url
    env["UV_EXTRA_INDEX_URL"] = indexes[1].url
    assert fetch_releases("itsdangerous", environ=env)[1] == f"{indexes[0].url}, {indexes[1].url}"
