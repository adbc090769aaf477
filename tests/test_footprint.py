"""reprex's dependency footprint: the shipped manifest validator, and reprex installed into a
project's venv whose pins are older than reprex's own choices (docs/dependencies.md).

The old-pins venv is what broke before: attrs 19.3.0 (pinned by attrs' own test suite)
replaced the attrs jsonschema needed, and `reprex replay` died with `No module named 'attrs'`.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from reprex.bundle import BundleError, validate_manifest
from reprex.schema import bundle_v1, generate
from reprex.schema.errors import JsonSchemaValueException

ROOT = Path(__file__).resolve().parents[1]

MANIFEST = {
    "schema": 1, "id": "0" * 64, "name": "demo", "created": "2026-01-01T00:00:00Z",
    "tool": {"name": "reprex", "version": "0.1.0"}, "entry": {"argv": ["app.py"], "cwd": ".", "kind": "script"},
    "python": {"version": "3.11.2", "implementation": "CPython"},
    "platform": {"system": "Linux", "machine": "x86_64", "libc": "glibc 2.36", "distro": None},
    "gpu": {"count": 1, "models": ["H100"], "driver": "550.1", "compute_capabilities": ["9.0"], "cuda": "12.4"},
    "network": False, "redactions": [{"kind": "aws", "where": "traceback.txt", "count": 1}],
    "expect": {"outcome": "exception", "exception": {"type": "ValueError", "message": "boom"}, "exit_code": 1,
               "signature": {"id": "ab" * 8, "kind": "exception", "types": ["ValueError"], "frames": ["f@app.py"]}},
    "files": {"copied": ["data.csv"], "skipped": [{"path": "big.bin", "size": 9, "reason": "budget"}],
              "total_bytes": 10},
    "pins": {"count": 3, "roots": ["numpy"], "flagged": [], "dropped_editable": []},
    "probes": {"gpu": "ok"},
}
ODD_VALUES = (None, True, 0, -1, 1.0, 1.5, "", "x", "ab\n", "0" * 64, [], ["x"], [1], {}, {"x": 1})


def _paths(value, prefix=()):
    """Every path into the manifest (dict keys and list indexes)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, prefix + (i,))


def _set(doc, path, value, delete=False):
    out = copy.deepcopy(doc)
    parent = out
    for part in path[:-1]:
        parent = parent[part]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return out


def _variants():
    """The manifest with each value swapped for each odd value, each key deleted, extra keys added."""
    for path in _paths(MANIFEST):
        if not path or path == ("schema",):  # `schema` is checked before the validator runs
            continue
        for odd in ODD_VALUES:
            yield _set(MANIFEST, path, odd)
        if isinstance(path[-1], str):
            yield _set(MANIFEST, path, None, delete=True)
    yield _set(MANIFEST, ("redactions", 0, "value"), "leaked")  # additionalProperties: false
    yield _set(MANIFEST, ("future_key",), {"any": "thing"})


def _shipped_ok(doc) -> bool:
    try:
        bundle_v1.validate(doc)
    except JsonSchemaValueException:
        return False
    return True


def test_the_shipped_validator_is_what_the_generator_makes_from_the_shipped_schema():
    fastjsonschema = pytest.importorskip("fastjsonschema", reason="the test extra brings fastjsonschema")
    shipped = (ROOT / "reprex" / "schema" / "bundle_v1.py").read_text()
    if fastjsonschema.VERSION == bundle_v1.VERSION:
        assert generate.source() == shipped, "run: python -m reprex.schema.generate"
        return
    # another fastjsonschema may lay its code out differently: then it must at least judge alike
    scope: dict = {}
    exec(compile(generate.source(), "regenerated", "exec"), scope)
    for doc in _variants():
        try:
            scope["validate"](doc)
            regenerated = True
        except JsonSchemaValueException:
            regenerated = False
        assert regenerated == _shipped_ok(doc), json.dumps(doc)[:300]


def test_the_shipped_validator_judges_like_jsonschema_draft_2020_12():
    """Differential check over ~1000 variants; the one intended difference: a pattern's `$` does
    not match before a trailing newline (Python's re would let "name\\n" through)."""
    jsonschema = pytest.importorskip("jsonschema", reason="the test extra brings jsonschema")
    reference = jsonschema.Draft202012Validator(json.loads(generate.SCHEMA_FILE.read_text()))
    judged = stricter = 0
    for doc in _variants():
        want, got = reference.is_valid(doc), _shipped_ok(doc)
        judged += 1
        if want and not got and any(isinstance(v, str) and v.endswith("\n") for v in _leaves(doc)):
            stricter += 1
            continue
        assert got == want, f"jsonschema says {want}, shipped says {got}: {json.dumps(doc)[:300]}"
    assert judged > 300 and 0 < stricter < 10


def _leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


@pytest.mark.parametrize(("path", "value", "message"), [
    (("redactions", 0, "count"), -1, "invalid reprex.json at redactions/0/count: must be bigger than or equal to 0"),
    (("files", "skipped", 0, "path"), 3, "invalid reprex.json at files/skipped/0/path: must be string"),
    (("gpu",), "H100", "invalid reprex.json at gpu: cannot be validated by any definition"),
    (("name",), "../x", "invalid reprex.json at name: must match pattern ^\\w[\\w.-]*$"),
])
def test_a_bad_manifest_is_one_line_saying_where_and_what(path, value, message):
    with pytest.raises(BundleError) as err:
        validate_manifest(_set(MANIFEST, path, value))
    assert str(err.value) == message


# -- reprex in a project's venv with old pins -----------------------------------------------

# What a project's pins force on reprex's dependencies (--no-deps: no resolver to object), each
# at or near the oldest version pyproject.toml allows; attrs 19.3.0 is the pin that broke jsonschema.
OLD_PINS = ["attrs==19.3.0", "urllib3==1.26.18", "packaging==20.9", "pyparsing==2.4.7", "click==8.0.0",
            "rich==10.0.0", "typing_extensions==4.12.2", "platformdirs==2.0.0", "pygments==2.10.0",
            "uv==0.5.0"]
# pytest 7.0 and its own dependencies at versions of its time (the plugin's lower bound)
OLD_PYTEST = ["pytest==7.0.0", "pluggy==1.0.0", "iniconfig==1.1.1", "py==1.11.0", "tomli==2.0.1"]


def _uv() -> str:
    from reprex import installer

    found = installer.uv()
    if found is None:
        pytest.fail("uv is a dependency of reprex and must run here")
    return found


def _run(argv, *, cwd, env, timeout=300, ok=(0,)):
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    assert proc.returncode in ok, f"{argv}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert "Traceback (most recent call last)" not in proc.stderr, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def old_pins_venv(tmp_path_factory):
    """reprex's wheel (built from this tree) in a fresh venv, then the project's older pins over it."""
    base = tmp_path_factory.mktemp("footprint")
    uv = _uv()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("REPREX_")}
    _run([uv, "build", "--wheel", "-q", "-o", base / "dist", ROOT], cwd=base, env=env)
    wheel = next((base / "dist").glob("reprex-*.whl"))
    venv = base / "venv"
    _run([uv, "venv", "-q", "--python", sys.executable, venv], cwd=base, env=env)
    py = venv / "bin" / "python"
    _run([uv, "pip", "install", "-q", "--python", py, wheel], cwd=base, env=env)
    _run([uv, "pip", "install", "-q", "--python", py, "--no-deps", *OLD_PINS, *OLD_PYTEST], cwd=base, env=env)
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv),
               REPREX_CACHE_DIR=str(base / "cache"))
    listed = _run([uv, "pip", "list", "--python", py, "--format", "json"], cwd=base, env=env).stdout
    installed = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(listed)}
    return {"venv": venv, "py": py, "reprex": venv / "bin" / "reprex", "env": env, "base": base, "uv": uv,
            "installed": installed}  # as set up: the extras' tests below add and remove packages


@pytest.mark.slow
def test_the_core_commands_work_in_a_venv_with_a_projects_old_pins(old_pins_venv, tmp_path):
    v = old_pins_venv
    installed = v["installed"]
    assert {"attrs": "19.3.0", "packaging": "20.9", "click": "8.0.0", "rich": "10.0.0", "pytest": "7.0.0",
            "uv": "0.5.0"}.items() <= installed.items()
    assert not {"jsonschema", "docker", "smart-open", "requests", "rpds-py"} & set(installed)  # extras, not deps
    reprex, env = v["reprex"], v["env"]

    assert _run([reprex, "--version"], cwd=tmp_path, env=env).stdout.startswith("reprex, version ")
    work = tmp_path / "app"
    work.mkdir()
    (work / "app.py").write_text("import attr\n\n\n@attr.s\nclass Point:\n    x = attr.ib()\n\n\n"
                                 "def make():\n    return Point()\n\n\nmake()\n")
    info = json.loads(_run([reprex, "capture", "-q", "--json", "--", v["py"], "app.py"], cwd=work, env=env,
                           ok=(1,)).stdout)
    bundle = Path(info["written"])
    assert info["signature"]["types"] == ["TypeError"]
    with zipfile.ZipFile(bundle) as zf:
        assert "attrs==19.3.0" in zf.read("requirements.txt").decode()  # pins.py ran on packaging 20.9
    shown = _run([reprex, "show", bundle], cwd=tmp_path, env=env).stdout
    assert "TypeError" in shown and "app.py:make" in shown
    assert "## Failure captured by reprex" in _run([reprex, "render", bundle], cwd=tmp_path, env=env).stdout
    replayed = json.loads(_run([reprex, "replay", "--backend", "local", "--json", bundle], cwd=tmp_path,
                               env=env).stdout)  # the venv made and filled by uv 0.5.0
    assert (replayed["verdict"], replayed["signature"]["id"]) == ("reproduced", info["signature"]["id"])


@pytest.mark.slow
def test_the_plugin_captures_a_failing_test_under_pytest_7(old_pins_venv, tmp_path):
    v = old_pins_venv
    (tmp_path / "test_app.py").write_text("def helper(d):\n    return d['missing']\n\n\n"
                                          "def test_ok():\n    pass\n\n\ndef test_boom():\n    helper({})\n")
    proc = _run([v["py"], "-m", "pytest", "-q", "-p", "no:cacheprovider", "--reprex-capture=caps"],
                cwd=tmp_path, env=v["env"], ok=(1,))
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout[-2000:]
    bundle, = (tmp_path / "caps").glob("*.reprex.zip")
    replayed = json.loads(_run([v["reprex"], "replay", "--backend", "local", "--json", bundle], cwd=tmp_path,
                               env=v["env"]).stdout)
    assert replayed["verdict"] == "reproduced" and replayed["signature"]["types"] == ["KeyError"]
    # and the plugin's other half: a collected bundle replayed as a test
    proc = _run([v["py"], "-m", "pytest", "-q", "-p", "no:cacheprovider", "--reprex-backend", "local", "caps"],
                cwd=tmp_path, env=v["env"])
    assert "replayed bundles: 1 reproduced" in proc.stdout, proc.stdout[-2000:]


@pytest.mark.slow
def test_a_missing_or_old_extra_is_one_line_naming_the_extra(old_pins_venv, tmp_path):
    v = old_pins_venv
    proc = _run([v["reprex"], "show", "https://127.0.0.1:9/x.reprex.zip"], cwd=tmp_path, env=v["env"], ok=(2, 3))
    assert "needs smart_open" in proc.stderr and "reprex[fetch]" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    pull = ("from reprex.replay.docker.daemon import sdk_client\nfrom reprex.replay.base import InfraError\n"
            "try:\n    sdk_client(None)\nexcept InfraError as exc:\n    print(exc.reason)\n")
    assert "pip install 'reprex[docker]'" in _run([v["py"], "-c", pull], cwd=tmp_path, env=v["env"]).stdout
    _run([v["uv"], "pip", "install", "-q", "--python", v["py"], "docker==6.1.3", "urllib3==1.26.18"], cwd=tmp_path,
         env=v["env"])
    try:
        said = _run([v["py"], "-c", pull], cwd=tmp_path, env=v["env"]).stdout
        assert "needs docker>=7 (found 6.1.3)" in said and "reprex[docker]" in said
    finally:
        _run([v["uv"], "pip", "uninstall", "-q", "--python", v["py"], "docker"], cwd=tmp_path, env=v["env"])


@pytest.mark.slow
@pytest.mark.docker
def test_the_docker_extra_works_with_urllib3_1_26(old_pins_venv, tmp_path):
    """docker>=7 asks for urllib3>=1.26: the SDK client reprex makes for pulls talks to the real
    daemon with urllib3 1.26.x, and a docker replay gives its verdict in the old-pins venv."""
    v = old_pins_venv
    image = os.environ.get("REPREX_TEST_IMAGE", "reprex-base:py3.11")
    _run([v["uv"], "pip", "install", "-q", "--python", v["py"], "docker>=7", "urllib3==1.26.18"], cwd=tmp_path,
         env=v["env"])
    try:
        talk = ("import urllib3\nfrom reprex.replay.docker.daemon import connect, sdk_client\n"
                "client = sdk_client(connect())\nprint(urllib3.__version__, bool(client.api.version()['ApiVersion']))")
        assert _run([v["py"], "-c", talk], cwd=tmp_path, env=v["env"]).stdout.split() == ["1.26.18", "True"]
        (tmp_path / "app.py").write_text("def f(x):\n    return 1 / x\n\n\nf(0)\n")
        info = json.loads(_run([v["reprex"], "capture", "-q", "--json", "--", v["py"], "app.py"], cwd=tmp_path,
                               env=v["env"], ok=(1,)).stdout)
        replayed = json.loads(_run([v["reprex"], "replay", "--image", image, "--json", info["written"]],
                                   cwd=tmp_path, env=v["env"]).stdout)
        assert (replayed["verdict"], replayed["backend"]) == ("reproduced", "docker"), replayed["reason"]
    finally:
        _run([v["uv"], "pip", "uninstall", "-q", "--python", v["py"], "docker"], cwd=tmp_path, env=v["env"])


@pytest.mark.slow
def test_the_fetch_extra_at_its_lower_bound_reads_a_bundle_over_http(old_pins_venv, tmp_path):
    """smart_open 6.0.0 (reprex[fetch]'s floor) with requests, from a server on loopback."""
    import functools
    import http.server
    import threading

    v = old_pins_venv
    (tmp_path / "app.py").write_text("raise KeyError('k')\n")
    info = json.loads(_run([v["reprex"], "capture", "-q", "--json", "--", v["py"], "app.py"], cwd=tmp_path,
                           env=v["env"], ok=(1,)).stdout)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _run([v["uv"], "pip", "install", "-q", "--python", v["py"], "smart_open[http]==6.0.0", "urllib3==1.26.18"],
         cwd=tmp_path, env=v["env"])
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{Path(info['written']).name}"
        assert "KeyError" in _run([v["reprex"], "show", url], cwd=tmp_path, env=v["env"]).stdout
    finally:
        server.shutdown()
        _run([v["uv"], "pip", "uninstall", "-q", "--python", v["py"], "smart_open"], cwd=tmp_path, env=v["env"])
