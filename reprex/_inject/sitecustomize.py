"""reprex recorder: injected into a Python process through PYTHONPATH.

Standard library only and importable as a single file, because in a replay
container or venv only the bundle's pins are installed, not reprex. Capture and
replay inject this same file, so outcomes are recorded the same way everywhere.

It is inert unless REPREX_RECORD_DIR is set. The first Python process that
claims the directory (an O_EXCL file) is the one recorded; children (multiprocessing,
Ray workers) see the claim and only chain to the next sitecustomize.

Everything is written ahead, one JSON line per event with os.write on a descriptor
opened at start, so a crash still leaves what happened before it; faulthandler
writes hard crashes and hang dumps (SIGUSR1) to a file opened before the program runs.
"""

import os
import sys

_DIR = os.environ.get("REPREX_RECORD_DIR")
_MAX_REPR = 300
_MAX_ARG_REPR = 20000
_MAX_PICKLE = 65536
_MAX_LOCALS = 40
_MAX_FRAMES = 200


def _chain_next_sitecustomize():
    """Run the sitecustomize we shadow (Debian and some distros ship one)."""
    try:
        import importlib.machinery
        import importlib.util

        here = os.path.dirname(os.path.abspath(__file__))
        path = [p for p in sys.path if os.path.abspath(p or ".") != here]
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception:
        pass


class _Recorder:
    def __init__(self, directory):
        import json
        import time

        self.json = json
        self.dir = directory
        self.t0 = time.time()
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        # No directory: used in-process by reprex.capture_exception, nothing written.
        self.fd = os.open(os.path.join(directory, "events.jsonl"), flags, 0o600) if directory else None
        self.seen_opens = set()
        self.seen_top = set()
        self.skip_prefixes = self._skip_prefixes()
        self.stdlib, self.site_dirs = self._layout()
        self.done_final = False

    # -- writing -----------------------------------------------------------
    def emit(self, event, **data):
        if self.fd is None:
            return
        data["ev"] = event
        try:
            line = self.json.dumps(data, default=repr, ensure_ascii=False) + "\n"
            os.write(self.fd, line.encode("utf-8", "surrogateescape"))
        except Exception:
            pass

    # -- layout: which frames are app, package or stdlib ------------------------
    @staticmethod
    def _layout():
        import sysconfig

        paths = sysconfig.get_paths()
        stdlib = {os.path.realpath(paths.get(k, "")) for k in ("stdlib", "platstdlib") if paths.get(k)}
        site_dirs = set()
        for k in ("purelib", "platlib"):
            if paths.get(k):
                site_dirs.add(os.path.realpath(paths[k]))
        try:
            import site

            for p in site.getsitepackages() + [site.getusersitepackages()]:
                site_dirs.add(os.path.realpath(p))
        except Exception:
            pass
        return stdlib, site_dirs

    def _skip_prefixes(self):
        prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.abspath(__file__))}
        return tuple(os.path.realpath(p) + os.sep for p in prefixes if p)

    def locate(self, filename):
        """(kind, location) with no line numbers: app files by name, packages by package path."""
        if not filename or filename.startswith("<"):
            if filename.startswith("<frozen "):
                return "frozen", filename
            return "app", filename or "<unknown>"
        real = os.path.realpath(filename)
        best = None
        for entry in sys.path:
            if not entry:
                continue
            root = os.path.realpath(entry)
            if real.startswith(root + os.sep) and (best is None or len(root) > len(best)):
                best = root
        recorder_dir = os.path.dirname(os.path.realpath(__file__))
        if real.startswith(recorder_dir + os.sep):
            return "recorder", os.path.basename(real)
        if best is not None:
            rel = os.path.relpath(real, best).replace(os.sep, "/")
            if best in self.stdlib:
                return "stdlib", rel
            if best in self.site_dirs or os.path.basename(best) in ("site-packages", "dist-packages"):
                return "package", rel
        for root in self.stdlib:
            if real.startswith(root + os.sep):
                rel = os.path.relpath(real, root).replace(os.sep, "/")
                if rel.startswith(("site-packages/", "dist-packages/")):
                    return "package", rel.split("/", 1)[1]
                return "stdlib", rel
        return "app", os.path.basename(real)

    # -- exceptions -----------------------------------------------------------
    @staticmethod
    def qualified_type(exc):
        cls = type(exc)
        module = getattr(cls, "__module__", "") or ""
        name = getattr(cls, "__qualname__", cls.__name__)
        return name if module in ("builtins", "__main__", "") else module + "." + name

    def safe_repr(self, value, limit):
        try:
            import reprlib

            r = reprlib.Repr()
            r.maxstring = limit
            r.maxother = limit
            r.maxlong = 200
            r.maxlist = r.maxtuple = r.maxset = r.maxdict = 30
            text = r.repr(value)
        except Exception as exc:  # a __repr__ that raises must not hide the failure
            text = "<repr failed: %s>" % type(exc).__name__
        return text if len(text) <= limit else text[:limit] + "..."

    def frame_record(self, frame, lineno, with_locals=True):
        import linecache

        code = frame.f_code
        filename = code.co_filename
        kind, loc = self.locate(filename)
        rec = {
            "file": filename,
            "line": lineno,
            "function": code.co_name,
            "qualname": getattr(code, "co_qualname", code.co_name),
            "module": frame.f_globals.get("__name__"),
            "kind": kind,
            "loc": loc,
            "source": (linecache.getline(filename, lineno) or "").strip()[:500],
        }
        if with_locals and kind not in ("recorder", "frozen"):
            nargs = code.co_argcount + code.co_kwonlyargcount
            nargs += bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)
            rec["args"] = list(code.co_varnames[:nargs])
            n_named = code.co_argcount + code.co_kwonlyargcount
            rec["argspec"] = {
                "positional": code.co_argcount,
                "varargs": code.co_varnames[n_named] if code.co_flags & 0x04 else None,
                "varkw": code.co_varnames[n_named + bool(code.co_flags & 0x04)] if code.co_flags & 0x08 else None,
            }
            local_items = list(frame.f_locals.items())[:_MAX_LOCALS]
            rec["locals"] = {str(k): self.safe_repr(v, _MAX_REPR) for k, v in local_items}
            rec["arg_values"] = self.arg_values(frame.f_locals, rec["args"]) if kind != "stdlib" else {}
        return rec

    def arg_values(self, f_locals, names):
        """Full reprs (and pickles) of a frame's arguments, for extracting the call later."""
        out = {}
        for name in names:
            if name not in f_locals:
                continue
            value = f_locals[name]
            item = {"type": type(value).__module__ + "." + type(value).__qualname__}
            try:
                text = repr(value)
                if len(text) <= _MAX_ARG_REPR:
                    item["repr"] = text
            except Exception:
                pass
            try:
                import base64
                import pickle

                blob = pickle.dumps(value, protocol=4)
                if len(blob) <= _MAX_PICKLE:
                    item["pickle"] = base64.b64encode(blob).decode("ascii")
            except Exception:
                pass
            out[name] = item
        return out

    def exception_record(self, exc, depth=0, seen=None):
        seen = set() if seen is None else seen
        if exc is None or id(exc) in seen or depth > 20:
            return None
        seen.add(id(exc))
        frames = []
        tb = exc.__traceback__
        while tb is not None and len(frames) < _MAX_FRAMES:
            frames.append(self.frame_record(tb.tb_frame, tb.tb_lineno))
            tb = tb.tb_next
        try:
            message = str(exc)
        except Exception:
            message = "<str failed>"
        rec = {
            "type": self.qualified_type(exc),
            "message": message[:20000],
            "notes": [str(n)[:2000] for n in (getattr(exc, "__notes__", None) or [])],
            "frames": frames,
            "suppress_context": bool(exc.__suppress_context__),
            "cause": self.exception_record(exc.__cause__, depth + 1, seen),
            "context": self.exception_record(exc.__context__, depth + 1, seen),
        }
        children = getattr(exc, "exceptions", None)
        if isinstance(children, (list, tuple)) and isinstance(exc, BaseException) and hasattr(exc, "derive"):
            rec["children"] = [self.exception_record(c, depth + 1, seen) for c in children[:20]]
        return rec

    # -- hooks -------------------------------------------------------------------
    def excepthook(self, etype, value, tb):
        try:
            if value is not None and value.__traceback__ is None:
                value = value.with_traceback(tb)
            self.emit("exception", thread="MainThread", exception=self.exception_record(value))
            self.final("excepthook")
        except Exception:
            pass

    def thread_excepthook(self, args):
        try:
            name = getattr(args.thread, "name", None)
            self.emit("exception", thread=name, exception=self.exception_record(args.exc_value))
        except Exception:
            pass

    def audit(self, event, args):
        if event == "open":
            try:
                path, mode, flags = args
                if isinstance(path, int) or path is None:
                    return
                path = os.fsdecode(path)
                if mode is not None:
                    reading = "r" in mode and "+" not in mode
                else:
                    reading = (flags or 0) & 3 == os.O_RDONLY
                if not reading or path in self.seen_opens:
                    return
                self.seen_opens.add(path)
                full = os.path.abspath(path)
                if full.startswith(self.skip_prefixes) or full.endswith((".pyc", ".so")):
                    return
                self.emit("open", path=full)
            except Exception:
                pass
        elif event == "socket.connect":
            try:
                address = args[1]
                key = repr(address)
                if key not in self.seen_opens:
                    self.seen_opens.add(key)
                    family = getattr(args[0], "family", None)
                    self.emit("connect", address=address if isinstance(address, (str, tuple)) else key,
                              family=int(family) if family is not None else None)
            except Exception:
                pass
        elif event == "import":
            try:
                top = args[0].partition(".")[0]
                if top not in self.seen_top:
                    self.seen_top.add(top)
                    self.emit("import", module=top)
            except Exception:
                pass

    def final(self, why):
        """Facts only the target interpreter knows: imported modules and distributions."""
        if self.done_final:
            return
        self.done_final = True
        try:
            self.emit("modules", why=why, modules=self.imported_modules())
            self.emit("facts", **facts())
        except Exception as exc:
            self.emit("facts_error", error=repr(exc))

    @staticmethod
    def imported_modules():
        out = {}
        for name, module in list(sys.modules.items()):
            if "." in name or module is None:
                continue
            out[name] = getattr(module, "__file__", None)
        return out


def facts():
    """Interpreter and installed-distribution facts, read in the target interpreter."""
    import json
    import platform
    from importlib import metadata

    dists = []
    seen = set()
    for dist in metadata.distributions():
        try:
            name = dist.metadata["Name"]
            if not name or name.lower() in seen:
                continue
            seen.add(name.lower())
            direct = dist.read_text("direct_url.json")
            top = dist.read_text("top_level.txt")
            dists.append(
                {
                    "name": name,
                    "version": dist.version,
                    "requires": dist.requires or [],
                    "direct_url": json.loads(direct) if direct else None,
                    "installer": (dist.read_text("INSTALLER") or "").strip() or None,
                    "top_level": top.split() if top else None,
                    "location": str(getattr(dist, "_path", "") or ""),
                }
            )
        except Exception:
            continue
    main = sys.modules.get("__main__")
    console = None
    module_dists = _module_distributions(dists)
    argv0 = os.path.basename(sys.argv[0]) if sys.argv else ""
    if argv0 and not argv0.endswith(".py") and argv0 not in ("-c", "-m"):
        try:
            for ep in metadata.entry_points(group="console_scripts", name=argv0):
                console = {"name": ep.name, "value": ep.value}
                break
        except Exception:
            pass
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
            "prefix": sys.prefix,
            "base_prefix": sys.base_prefix,
            "sys_path": list(sys.path),
        },
        "argv": list(sys.argv),
        "orig_argv": list(getattr(sys, "orig_argv", [])),
        "main_file": getattr(main, "__file__", None),
        "main_spec": getattr(getattr(main, "__spec__", None), "name", None),
        "console_script": console,
        "distributions": dists,
        "module_dists": module_dists,
    }


def _module_distributions(dists):
    """Map imported top-level modules to the distributions that provide them.

    top_level.txt answers most; RECORD is read only for the few names left, since
    reading every RECORD (packages_distributions) costs more than the rest of capture.
    """
    from importlib import metadata

    imported = {}
    for name, module in list(sys.modules.items()):
        if "." in name or module is None:
            continue
        path = getattr(module, "__file__", None)
        if path and ("site-packages" in path or "dist-packages" in path):
            imported[name] = path
    found = {}
    for d in dists:
        for top in d.get("top_level") or ():
            if top in imported:
                found.setdefault(top, []).append(d["name"])
    missing = {n for n in imported if n not in found}
    if missing:
        for dist in metadata.distributions():
            if not missing:
                break
            try:
                if dist.read_text("top_level.txt"):
                    continue
                record = dist.read_text("RECORD") or ""
            except Exception:
                continue
            heads = {line.split(",", 1)[0].split("/", 1)[0] for line in record.splitlines()}
            for name in list(missing):
                if name in heads or name + ".py" in heads or any(h.startswith(name + ".") and h.endswith((".so", ".pyd")) for h in heads):
                    found.setdefault(name, []).append(dist.metadata["Name"])
                    missing.discard(name)
    return found


def _start(directory):
    claim_path = os.path.join(directory, "claim")
    try:
        claim = os.open(claim_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        # Another process of this run is the recorded one, unless it is us after
        # an exec (a launcher such as repro.py that execs the real entry).
        try:
            with open(claim_path) as fh:
                if fh.read().strip() != str(os.getpid()):
                    return None
        except OSError:
            return None
    else:
        os.write(claim, str(os.getpid()).encode())
        os.close(claim)

    import atexit
    import faulthandler
    import signal
    import threading

    rec = _Recorder(directory)
    # Modules .pth files loaded before the program started: the environment's, not the program's.
    preloaded = sorted(n for n, m in list(sys.modules.items()) if "." not in n and m is not None
                       and "-packages" in (getattr(m, "__file__", None) or ""))
    rec.emit("start", pid=os.getpid(), t=rec.t0, cwd=os.getcwd(), orig_argv=list(getattr(sys, "orig_argv", [])),
             executable=sys.executable, version=sys.version.split()[0], preloaded=preloaded)
    fault = open(os.path.join(directory, "fault.log"), "w")
    rec.fault_file = fault  # keep it open for the life of the process
    faulthandler.enable(file=fault, all_threads=True)
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, file=fault, all_threads=True, chain=False)
    previous_hook = sys.excepthook

    def excepthook(etype, value, tb):
        rec.excepthook(etype, value, tb)
        previous_hook(etype, value, tb)

    sys.excepthook = excepthook
    previous_thread_hook = threading.excepthook

    def thread_excepthook(args):
        rec.thread_excepthook(args)
        previous_thread_hook(args)

    threading.excepthook = thread_excepthook
    sys.addaudithook(rec.audit)
    atexit.register(rec.final, "atexit")
    return rec


if _DIR and os.path.isdir(_DIR):
    try:
        _RECORDER = _start(_DIR)
    except Exception:
        _RECORDER = None
elif __name__ == "__main__" and sys.argv[1:2] == ["--facts"]:
    import json as _json

    print(_json.dumps(facts()))

if __name__ == "sitecustomize":
    _chain_next_sitecustomize()
