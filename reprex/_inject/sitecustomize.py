"""reprex recorder: injected into a Python process through PYTHONPATH.

Standard library only and importable as a single file, because in a replay
container or venv only the bundle's pins are installed, not reprex. Capture and
replay inject this same file, so outcomes are recorded the same way everywhere.

It is inert unless REPREX_RECORD_DIR is set. The first Python process that
claims the directory (an O_EXCL file) is the one recorded. Python children of the run
(subprocess, `python -m tool`, a shell wrapper's python, their own children) see the
claim and record only two things, under children/ and never into the main record: the
modules they imported (one file per distinct set, for the pins) and their own uncaught
exception (one file per process, the newest _MAX_CHILD_FAILURES kept). A recorded
process whose CalledProcessError came from such a child takes the child's exception as
its cause, so the signature names the child's failure, not only `check=True`.

Everything is written ahead, one JSON line per event with os.write on a descriptor
opened at start, so a crash still leaves what happened before it; faulthandler
writes hard crashes and hang dumps (SIGUSR1) to a file opened before the program runs.

In reprex's own process (reprex.record.recorder()) its public names serve the library:
`Recorder(None)` records nothing to disk, `exception_record(exc)` describes a caught
exception exactly as a recorded run would, `facts()` and `ray_runtime_env_summary(env)`.

Over 400 lines on purpose: a second file could not be injected as one `sitecustomize`,
and reprex's own modules are not importable where it runs.

PYTEST_DONT_REWRITE: loaded as a pytest plugin (`-p sitecustomize`) after Python imported it,
so pytest would warn that it can't rewrite it, an error under `filterwarnings = error`.
"""

import os
import sys

_DIR = os.environ.get("REPREX_RECORD_DIR")
_CHILD = None
_MAX_REPR = 300
_MAX_ARG_REPR = 20000
_MAX_PICKLE = 65536
_MAX_LOCALS = 40
_MAX_FRAMES = 200
_CHILD_DIR = "children"  # in the record dir; made by the recorded process, written by its children
_PARENT_VAR = "REPREX_RECORD_PARENT"  # pid of the nearest recorded ancestor (set for our children)
_MAX_CHILD_FAILURES = 64  # child exception files kept (the newest); a run may spawn thousands
_MAX_CHILD_MODULE_SETS = 256  # distinct imported-module sets kept
_MAX_CHILD_RECORD = 512 * 1024  # bytes of one child file
_MAX_SPAWNS = 200  # process starts remembered by one process (for matching a CalledProcessError)
_SPAWN_EVENTS = ("subprocess.Popen", "os.system", "os.posix_spawn", "os.spawn")


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


class Recorder:
    def __init__(self, directory):
        import json
        import time

        self.json = json
        self.dir = directory
        self.t0 = time.time()
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        # No directory: used in-process by reprex.capture_exception, nothing written.
        self.fd = os.open(os.path.join(directory, "events.jsonl"), flags, 0o600) if directory else None
        self.pid = os.getpid()
        self.seen_opens = set()
        self.seen_top = set()
        self.skip_prefixes = self._skip_prefixes()
        self.stdlib, self.site_dirs = self._layout()
        self.install_roots = {}
        self.done_final = False
        self.children_dir = None  # where this run's child processes leave their failures
        self.spawns = []  # [(time, argv)] of the processes this one started
        self.used_children = set()  # child failure files already made a cause

    # -- writing -----------------------------------------------------------
    def emit(self, event, **data):
        if self.fd is None or os.getpid() != self.pid:
            return  # a forked child is not the recorded process
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

    def is_install_root(self, root):
        """A sys.path dir that pip installed into (`pip install --target`, as replay's --with
        overlay does): it holds *.dist-info, so its files are a package's, not the app's."""
        known = self.install_roots.get(root)
        if known is None:
            try:
                known = any(n.endswith(".dist-info") for n in os.listdir(root))
            except OSError:
                known = False
            self.install_roots[root] = known
        return known

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
            if best in self.site_dirs or os.path.basename(best) in ("site-packages", "dist-packages") \
                    or self.is_install_root(best):
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
            # reprlib shortens long strings in the middle (head...tail), which can leave
            # a fragment of a secret too short for the redactor to recognise: let strings
            # through whole here and cut once, below, between tokens.
            r.maxstring = r.maxother = 8 * limit
            r.maxlong = 200
            r.maxlist = r.maxtuple = r.maxset = r.maxdict = 30
            text = r.repr(value)
        except Exception as exc:  # a __repr__ that raises must not hide the failure
            text = "<repr failed: %s>" % type(exc).__name__
        return cut_between_tokens(text, limit)

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
            "message": cut_between_tokens(message, 20000),
            "notes": [str(n)[:2000] for n in (getattr(exc, "__notes__", None) or [])],
            "frames": frames,
            "suppress_context": bool(exc.__suppress_context__),
            "cause": self.exception_record(exc.__cause__, depth + 1, seen),
            "context": self.exception_record(exc.__context__, depth + 1, seen),
        }
        children = getattr(exc, "exceptions", None)
        if isinstance(children, (list, tuple)) and isinstance(exc, BaseException) and hasattr(exc, "derive"):
            rec["children"] = [self.exception_record(c, depth + 1, seen) for c in children[:20]]
        remote = _ray_remote_record(self, exc)
        if remote is not None:
            rec["remote"] = remote
        if self.children_dir and rec["cause"] is None and _is_called_process_error(exc):
            child = self.child_failure(self.spawn_time(getattr(exc, "cmd", None)))
            if child is not None:
                rec["cause"] = child
        return rec

    # -- child processes ------------------------------------------------------------
    def note_spawn(self, event, args):
        """A process this one starts: when, and its argv (to match a CalledProcessError's cmd)."""
        try:
            if event == "subprocess.Popen":
                argv = args[1]
            elif event == "os.system":
                argv = ["/bin/sh", "-c", args[0]]
            elif event == "os.posix_spawn":
                argv = args[1]
            else:
                argv = args[2]
            if isinstance(argv, (str, bytes)) or not hasattr(argv, "__iter__"):
                argv = [argv]
            argv = [os.fsdecode(a) if isinstance(a, bytes) else str(a) for a in list(argv)[:100]]
            import time

            if len(self.spawns) >= _MAX_SPAWNS:
                del self.spawns[0]
            self.spawns.append((time.time(), argv))
            # A file in the working tree the command names (`sh run.sh`, `python tool.py`,
            # its input): the child will read it, and no recorder may see it do so.
            here = os.getcwd() + os.sep
            envs = tuple(os.path.realpath(p) + os.sep for p in {sys.prefix, sys.base_prefix, sys.exec_prefix})
            for arg in argv[:50]:
                if arg and not arg.startswith("-") and len(arg) < 1000:
                    path = os.path.abspath(arg)
                    if path.startswith(here) and not os.path.realpath(path).startswith(envs) \
                            and os.path.isfile(path):
                        self.saw_file(path)
        except Exception:
            pass

    def saw_file(self, path):
        if path not in self.seen_opens:
            self.seen_opens.add(path)
            self.emit("open", path=path)

    def spawn_time(self, cmd):
        """When the process a CalledProcessError names was started (the latest start with that
        command line), or None when it can't be told."""
        try:
            if isinstance(cmd, (str, bytes)) or not hasattr(cmd, "__iter__"):
                want = os.fsdecode(cmd) if isinstance(cmd, bytes) else str(cmd)
                wanted = None
            else:
                want = None
                wanted = [os.fsdecode(a) if isinstance(a, bytes) else str(a) for a in list(cmd)[:100]]
            for when, argv in reversed(self.spawns):
                if argv == wanted or (want is not None and (argv[-1:] == [want] or argv[:1] == [want])):
                    return when
        except Exception:
            pass
        return None

    def child_failure(self, since=None):
        """The newest uncaught exception of a Python child this process started (directly or
        through a shell or another non-Python process), started at or after `since`."""
        try:
            names = [n for n in os.listdir(self.children_dir) if n.startswith("x-") and n.endswith(".json")]
        except OSError:
            return None
        best = None
        for name in names[:4 * _MAX_CHILD_FAILURES]:
            if name in self.used_children:
                continue
            data = _read_small(os.path.join(self.children_dir, name), _MAX_CHILD_RECORD)
            try:
                item = self.json.loads(data) if data else None
            except Exception:
                continue
            if not isinstance(item, dict) or not isinstance(item.get("exception"), dict):
                continue
            if str(item.get("parent")) != str(self.pid):
                continue
            ended = item.get("ended") if isinstance(item.get("ended"), (int, float)) else 0
            started = item.get("started") if isinstance(item.get("started"), (int, float)) else 0
            if since is not None and started < since:
                continue
            if best is None or ended > best[0]:
                best = (ended, name, item)
        if best is None:
            return None
        _, name, item = best
        self.used_children.add(name)
        exc = item["exception"]
        exc["child"] = {"pid": item.get("pid"), "argv": item.get("argv") or []}
        return exc

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
        elif event in _SPAWN_EVENTS:
            self.note_spawn(event, args)
        elif event == "import":
            try:
                top = args[0].partition(".")[0]
                if top not in self.seen_top:
                    self.seen_top.add(top)
                    self.emit("import", module=top)
                    if top == "ray" and "ray" not in sys.modules:
                        sys.meta_path.insert(0, _RayImportHook(self))
                    elif top == "unittest" and "unittest" not in sys.modules:
                        sys.meta_path.insert(0, _RayImportHook(self, "unittest", _patch_unittest))
            except Exception:
                pass

    def final(self, why):
        """Facts only the target interpreter knows: imported modules and distributions."""
        if self.done_final or os.getpid() != self.pid:
            return
        self.done_final = True
        if self.children_dir:
            try:
                # A run that exits non-zero without an exception of its own may be passing on
                # a child's failure (sys.exit(subprocess.call(...))): the reader decides. Only
                # a child of the last command started: one that failed earlier was handled.
                child = self.child_failure(self.spawns[-1][0] if self.spawns else None)
                if child is not None:
                    self.emit("child_exception", exception=child)
            except Exception:
                pass
        try:
            self.emit("modules", why=why, modules=self.imported_modules(), package_modules=self.package_modules())
            # REPREX_RECORD_FACTS=0: the replayer knows the environment already (docker
            # images carry theirs), and reading every distribution is most of our exit cost.
            data = {} if os.environ.get("REPREX_RECORD_FACTS") == "0" else facts()
            if getattr(self, "ray_runtime_envs", None):
                data["ray_runtime_envs"] = self.ray_runtime_envs
            self.emit("facts", **data)
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

    @staticmethod
    def package_modules(limit=10000):
        """Dotted names of the installed (site-packages) source modules the run imported: a docker
        replay byte-compiles just these when it builds its image (templates/docker-compile.py)."""
        marks = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)
        out = []
        for name, module in list(sys.modules.items()):
            try:  # the instance dict: no attribute hook runs (a lazy module would load at exit)
                path = object.__getattribute__(module, "__dict__").get("__file__")
            except Exception:
                continue
            if isinstance(path, str) and path.endswith(".py") and (marks[0] in path or marks[1] in path):
                out.append(name)
        return sorted(out)[:limit]


# -- Ray: the remote cause of a task failure, and the runtime_envs the driver asked for ----
# No `import ray` here: errors are recognised by class names in the MRO, and ray is
# patched only if the program imports it (a one-shot finder wraps ray's loader).

# Every ray.exceptions.RayError is recognised (by class hierarchy); these bases name the kind.
_RAY_ERRORS = {"RayTaskError": "task", "RayActorError": "actor", "RuntimeEnvSetupError": "runtime_env",
               "ObjectLostError": "object", "RayError": "system"}
_RAY_REASON = (r"Worker exit type: (?P<exit_type>[A-Z_]+)", r"exit code:? (?P<exit_code>-?\d+)",
               r"exit_code[=:] ?(?P<exit_code2>-?\d+)")
_RAY_HEADER = (r"(?P<title>[\w.:<>-]+)\(\) \(pid=(?P<pid>\d+), ip=(?P<ip>[^,)\s]+)"
               r"(?:, actor_id=(?P<actor_id>\w+), repr=.*)?\)\s*$")
_RAY_ENV_VALUE_KEYS = ("pip", "uv", "conda", "excludes", "container", "image_uri", "py_executable", "config",
                       "java_jars", "nsight", "_ray_release")


def _ray_remote_record(rec, exc):
    """What Ray knows of a failure in a worker, as it surfaces in the driver.

    Ray raises a task's exception as a dynamic `RayTaskError(Cause)` whose `cause` is the
    original exception (unpickled, so without frames) and whose message is the remote
    traceback with a `ray::f() (pid=.., ip=..)` header in place of `Traceback ...`.
    """
    try:
        kind = None
        error = None  # the Ray error class itself (the dynamic RayTaskError(Cause) is named by its base)
        for cls in type(exc).__mro__:
            if cls.__name__ in _RAY_ERRORS and (getattr(cls, "__module__", "") or "").startswith("ray"):
                kind = cls.__name__
                break
            if error is None and (getattr(cls, "__module__", "") or "") == "ray.exceptions":
                error = cls
        if kind is None:
            return None
        import re

        # __dict__, not getattr(): the dual class forwards unknown attributes to the cause.
        state = getattr(exc, "__dict__", None) or {}
        out = {"kind": _RAY_ERRORS[kind]}
        error = error if error is not None and kind != "RayTaskError" else type(exc)
        if kind != "RayTaskError":
            out["error"] = "%s.%s" % (error.__module__, error.__qualname__)
        target = state.get("_reprex_ray_target")
        if isinstance(target, str):
            out["target"] = target
        for key, attr in (("pid", "pid"), ("ip", "ip"), ("function", "function_name"), ("proctitle", "proctitle"),
                          ("actor_id", "_actor_id"), ("actor_id", "actor_id"), ("actor_repr", "actor_repr")):
            value = state.get(attr)
            if value is not None and key not in out:
                out[key] = value if isinstance(value, (int, str)) else rec.safe_repr(value, _MAX_REPR)
        text = state.get("traceback_str")
        if not isinstance(text, str):
            text = state.get("error_msg") if kind == "RayActorError" else state.get("error_message")
        if not isinstance(text, str):
            text = str(exc)
        text = re.sub(r"\x1b\[[0-9;]*m", "", text)
        header = re.compile(_RAY_HEADER)
        lines = []
        for line in text.splitlines():
            m = header.search(line)
            if m is None:
                head, sep, rest = line.partition("Traceback (most recent call last):")
                if sep and head.strip() and not rest.strip():  # "[Node 10.0.0.1] Traceback ..."
                    lines.extend([head.rstrip(), sep])
                else:
                    lines.append(line)
                continue
            before = line[:m.start()].rstrip()
            if before:
                lines.append(before)
            lines.append("Traceback (most recent call last):")
            title = m.group("title")
            out.setdefault("proctitle", title)
            out.setdefault("pid", int(m.group("pid")))
            out.setdefault("ip", m.group("ip"))
            if m.group("actor_id"):
                out.setdefault("actor_id", m.group("actor_id"))
        out["traceback"] = "\n".join(lines)[:100000]
        if kind != "RayTaskError":
            for pattern in _RAY_REASON:  # why a worker or actor died: exit type, exit code
                m = re.search(pattern, text)
                if m:
                    for key, value in m.groupdict().items():
                        out.setdefault(key.rstrip("2"), int(value) if key.startswith("exit_code") else value)
            if state.get("_actor_init_failed"):
                out["reason"] = "actor creation failed"
            elif state.get("_preempted"):
                out["reason"] = "node preempted"
        title = out.get("proctitle")
        if "function" not in out and isinstance(title, str) and title.startswith("ray::"):
            out["function"] = title[len("ray::"):]
        cause = state.get("cause")
        if isinstance(cause, BaseException):
            out["type"] = rec.qualified_type(cause)
            try:
                out["message"] = str(cause)[:20000]
            except Exception:
                out["message"] = "<str failed>"
            out["notes"] = [str(n)[:2000] for n in (getattr(cause, "__notes__", None) or [])]
        return out
    except Exception:
        return None


def _strip_uri(value):
    """A URI without its credentials (user:token@) or query values; local paths as given."""
    if not isinstance(value, str):
        return "<%s>" % type(value).__name__
    try:
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        parts = urlsplit(value)
        if not parts.scheme or not parts.netloc:
            return value
        netloc = parts.netloc.rpartition("@")[2]
        if "@" in parts.netloc:
            netloc = "<redacted:url-credentials>@" + netloc
        query = urlencode([(k, "<redacted>") for k, _ in parse_qsl(parts.query, keep_blank_values=True)], safe="<>")
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except Exception:
        return "<unparsable uri>"


def _strip_deep(value, depth=0):
    import re

    if depth > 6:
        return "..."
    if isinstance(value, str):
        # userinfo is `user:password` (a password may hold `/`, which RFC 3986 forbids and
        # people write anyway) or a bare token without `/`
        return re.sub(r"(://)(?:[^/@\s:]*:[^@\s]*|[^/@\s]+)@", r"\1<redacted:url-credentials>@", value)[:2000]
    if isinstance(value, dict):
        return {str(k): _strip_deep(v, depth + 1) for k, v in list(value.items())[:100]}
    if isinstance(value, (list, tuple)):
        return [_strip_deep(v, depth + 1) for v in list(value)[:200]]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return "<%s>" % type(value).__name__


def ray_runtime_env_summary(env):
    """A runtime_env as it can be shown: URIs without credentials, env var NAMES only."""
    if env is None:
        return None
    try:
        items = dict(env)  # RuntimeEnv is a dict subclass
    except Exception:
        return {"unreadable": type(env).__name__}
    out = {}
    with_credentials = []
    for key, value in items.items():
        key = str(key)
        if key == "working_dir":
            out[key] = _strip_uri(value)
            if isinstance(value, str) and "@" in value.partition("://")[2].partition("/")[0]:
                with_credentials.append(key)
        elif key == "py_modules":
            values = value if isinstance(value, (list, tuple)) else [value]
            out[key] = [_strip_uri(v) for v in values][:100]
            if any(isinstance(v, str) and "@" in v.partition("://")[2].partition("/")[0] for v in values):
                with_credentials.append(key)
        elif key == "env_vars":
            out[key] = sorted(str(k) for k in value) if isinstance(value, dict) else "<%s>" % type(value).__name__
        elif key in _RAY_ENV_VALUE_KEYS:
            out[key] = _strip_deep(value)
        else:
            out.setdefault("other_keys", []).append(key)
    if with_credentials:
        out["credentials_in"] = with_credentials
    return out


class _RayImportHook:
    """One-shot meta-path finder: wraps a module's loader (ray's, unittest's) so the module is
    patched once its __init__ ran."""

    def __init__(self, rec, name="ray", patch=None):
        self.rec = rec
        self.name = name
        self.patch = patch or _patch_ray

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
        try:
            spec = None
            for finder in list(sys.meta_path):
                find = getattr(finder, "find_spec", None)
                if find is not None:
                    spec = find(fullname, path, target)
                    if spec is not None:
                        break
            loader = getattr(spec, "loader", None)
            if loader is None or not hasattr(loader, "exec_module"):
                return spec
            original = loader.exec_module
            rec = self.rec
            patch = self.patch

            def exec_module(module):
                original(module)
                patch(rec, module)

            loader.exec_module = exec_module
            return spec
        except Exception:
            return None


def _patch_ray(rec, ray):
    """Note every runtime_env the driver passes: ray.init, tasks and actors (.options or @remote)."""
    import functools

    rec.ray_runtime_envs = getattr(rec, "ray_runtime_envs", [])

    def note(source, env):
        try:
            summary = ray_runtime_env_summary(env)
            if not summary:
                return
            item = {"source": source, "runtime_env": summary}
            if item not in rec.ray_runtime_envs and len(rec.ray_runtime_envs) < 50:
                rec.ray_runtime_envs.append(item)
                rec.emit("ray_runtime_env", **item)
        except Exception:
            pass

    try:
        init = getattr(ray, "init", None)
        if callable(init) and not getattr(init, "_reprex_wrapped", False):
            @functools.wraps(init)
            def ray_init(*args, **kwargs):
                note("ray.init", kwargs.get("runtime_env"))
                note("ray.init(job_config)", getattr(kwargs.get("job_config"), "runtime_env", None))
                return init(*args, **kwargs)

            ray_init._reprex_wrapped = True
            ray.init = ray_init
    except Exception:
        pass

    rec.ray_refs = getattr(rec, "ray_refs", {})

    def note_refs(result, name):
        """ObjectRef hex -> the task or actor method that makes it (bounded)."""
        try:
            refs = result if isinstance(result, (list, tuple)) else [result]
            for ref in refs[:100]:
                key = getattr(ref, "hex", None)
                if key is not None and isinstance(name, str):
                    if len(rec.ray_refs) >= 10000:
                        rec.ray_refs.pop(next(iter(rec.ray_refs)))
                    rec.ray_refs[key()] = name
        except Exception:
            pass

    def wrap(cls, kind, name_of):
        # _remote sees every submission (decorator defaults included); options() sees an
        # override even when the submission itself fails or never happens.
        for method in ("_remote", "options"):
            original = getattr(cls, method, None)
            if original is None or getattr(original, "_reprex_wrapped", False):
                continue

            def make(original, method):
                @functools.wraps(original)
                def wrapper(self, *args, **kwargs):
                    try:
                        note("%s:%s" % (kind, name_of(self)), kwargs.get("runtime_env"))
                    except Exception:
                        pass
                    result = original(self, *args, **kwargs)
                    if method == "_remote" and kind == "task":
                        note_refs(result, name_of(self))
                    return result

                wrapper._reprex_wrapped = True
                return wrapper

            setattr(cls, method, make(original, method))

    def wrap_actor_method(cls):
        original = getattr(cls, "_remote", None)
        if original is None or getattr(original, "_reprex_wrapped", False):
            return

        @functools.wraps(original)
        def wrapper(self, *args, **kwargs):
            result = original(self, *args, **kwargs)
            try:
                handle = self.__dict__.get("_actor")
                if handle is not None and not hasattr(handle, "_ray_actor_id") and callable(handle):
                    handle = handle()  # a weak reference
                descriptor = getattr(handle, "_ray_actor_creation_function_descriptor", None)
                owner = getattr(descriptor, "class_name", None) or "?"
                note_refs(result, "%s.%s" % (owner, self.__dict__.get("_method_name", "?")))
            except Exception:
                pass
            return result

        wrapper._reprex_wrapped = True
        cls._remote = wrapper

    get = getattr(ray, "get", None)
    if callable(get) and not getattr(get, "_reprex_wrapped", False):
        @functools.wraps(get)
        def ray_get(object_refs, *args, **kwargs):
            try:
                return get(object_refs, *args, **kwargs)
            except BaseException as exc:
                # Ray's own errors (a dead worker or actor, a lost object) don't say which
                # task they belong to: name the submissions these refs came from.
                try:
                    if "traceback_str" not in (getattr(exc, "__dict__", None) or {}):
                        refs = object_refs if isinstance(object_refs, (list, tuple)) else [object_refs]
                        names = sorted({rec.ray_refs.get(r.hex()) for r in refs[:1000]
                                        if hasattr(r, "hex")} - {None})
                        if names:
                            exc.__dict__["_reprex_ray_target"] = ",".join(names[:5])
                except Exception:
                    pass
                raise

        ray_get._reprex_wrapped = True
        ray.get = ray_get

    try:
        module = sys.modules.get("ray.remote_function")
        if module is not None:
            wrap(module.RemoteFunction, "task", lambda f: getattr(f, "_function_name", "?"))
        module = sys.modules.get("ray.actor")
        if module is not None:
            wrap(module.ActorClass, "actor",
                 lambda a: getattr(getattr(a, "__ray_metadata__", None), "class_name", None) or type(a).__name__)
            wrap_actor_method(module.ActorMethod)
    except Exception:
        pass


# -- test runners: pytest and unittest catch a test's exception and only exit 1; record
# which tests failed, with each one's exception chain and frames (the signature is built
# from those). pytest loads this module as a plugin through PYTEST_PLUGINS.

_MAX_TEST_FAILURES = 20


def _test_failure(rec, test_id, when, exc):
    try:
        if getattr(rec, "test_failures", 0) >= _MAX_TEST_FAILURES or exc is None:
            return
        rec.test_failures = getattr(rec, "test_failures", 0) + 1
        rec.emit("test_failure", test=str(test_id)[:500], when=when, exception=rec.exception_record(exc))
    except Exception:
        pass


def _is_pytest(argv):
    """Does this interpreter run pytest (`pytest ...`, `python -m pytest ...`, `py.test`)?"""
    args = list(argv[1:4])
    for i, arg in enumerate(args):
        base = os.path.basename(arg)
        if base in ("pytest", "py.test") or (arg == "-m" and i + 1 < len(args) and args[i + 1] == "pytest"):
            return True
    return False


def _enable_pytest_plugin():
    plugins = os.environ.get("PYTEST_PLUGINS", "")
    names = [p.strip() for p in plugins.split(",") if p.strip()]
    if __name__ not in names:
        os.environ["PYTEST_PLUGINS"] = ",".join(names + [__name__])
        os.environ["REPREX_PYTEST_PLUGINS_WAS"] = plugins


def pytest_configure(config):
    """Read already: children of the run (xdist workers, subprocess pytest) don't inherit it."""
    if "REPREX_PYTEST_PLUGINS_WAS" in os.environ:
        was = os.environ.pop("REPREX_PYTEST_PLUGINS_WAS")
        if was:
            os.environ["PYTEST_PLUGINS"] = was
        else:
            os.environ.pop("PYTEST_PLUGINS", None)


def pytest_exception_interact(node, call, report):
    rec = globals().get("_RECORDER")
    if rec is None or getattr(report, "skipped", False):
        return
    excinfo = getattr(call, "excinfo", None)
    _test_failure(rec, getattr(node, "nodeid", "?"), getattr(report, "when", None) or "collect",
                  getattr(excinfo, "value", None))


def _patch_unittest(rec, unittest):
    try:
        result = unittest.result.TestResult
        for method, when in (("addError", "error"), ("addFailure", "failure")):
            original = getattr(result, method)
            if getattr(original, "_reprex_wrapped", False):
                continue

            def make(original, when):
                def wrapper(self, test, err):
                    try:
                        _test_failure(rec, test.id() if hasattr(test, "id") else repr(test), when, err[1])
                    except Exception:
                        pass
                    return original(self, test, err)

                wrapper._reprex_wrapped = True
                return wrapper

            setattr(result, method, make(original, when))
    except Exception:
        pass


def exception_record(exc):
    """A caught exception as a recorded run describes it (chain, frames, bounded locals), nothing written."""
    return Recorder(None).exception_record(exc)


_SEPARATORS = " \t\n,;'\"()[]{}<>"


def cut_between_tokens(text, limit):
    """Shorten text without splitting a token: cut at the last separator before the
    limit, so a secret is either whole (and redacted later) or absent, never a fragment."""
    if len(text) <= limit:
        return text
    cut = max(text.rfind(sep, 0, limit) for sep in _SEPARATORS)
    return (text[:cut] if cut > 0 else "") + "..."


def facts():
    """Interpreter and installed-distribution facts, read in the target interpreter."""
    import json
    import platform
    from importlib import metadata

    dists = []
    seen = set()
    for dist in metadata.distributions():
        try:
            md = dist.metadata  # parsed once: .version and .requires would each parse it again
            name = md["Name"]
            if not name or name.lower() in seen:
                continue
            seen.add(name.lower())
            direct = dist.read_text("direct_url.json")
            top = dist.read_text("top_level.txt")
            requires = md.get_all("Requires-Dist")
            dists.append(
                {
                    "name": name,
                    "version": md["Version"],
                    "requires": requires if requires is not None else (dist.requires or []),
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
        "frameworks": _framework_build_facts(),
    }


def _framework_build_facts():
    """What an already-imported torch says of its build, read from attributes only: nothing
    here loads a CUDA library or touches a device. On a host with no GPU the cuda probe
    takes these instead of importing torch again in a subprocess (1.5-2.5 s)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    try:
        version = getattr(torch, "version", None)
        arch = ""
        getter = getattr(getattr(torch, "_C", None), "_cuda_getArchFlags", None)
        if getter is not None:
            arch = getter() or ""
        return {"torch": {"version": str(getattr(torch, "__version__", "")),
                          "cuda": getattr(version, "cuda", None), "hip": getattr(version, "hip", None),
                          "arch_list": str(arch).split()}}
    except Exception as exc:
        return {"torch": {"error": repr(exc)[:300]}}


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
        if not path:  # a namespace package (google, from protobuf): where its parts live
            path = next(iter(getattr(module, "__path__", None) or ()), None)
        if isinstance(path, str) and ("site-packages" in path or "dist-packages" in path):
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


# -- child processes of a recorded run ----------------------------------------------------

def _is_called_process_error(exc):
    return any(c.__name__ == "CalledProcessError" and getattr(c, "__module__", "") == "subprocess"
               for c in type(exc).__mro__)


def _read_small(path, limit):
    """A regular file's text, at most `limit` bytes: no links, FIFOs or devices."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return ""
    try:
        import stat

        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, limit).decode("utf-8", "surrogateescape")
    except OSError:
        return ""
    finally:
        os.close(fd)


def _write_new(path, data):
    """Write a file that did not exist (O_EXCL: never over another's), through a temp name
    when `path` may exist already (the same pid after an exec), so a reader sees it whole."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _strip_exception(exc, depth=0, frames=None):
    """An exception record made smaller: no locals or argument values (and at most `frames`
    frames of each exception), the chain and children kept."""
    if not isinstance(exc, dict) or depth > 40:
        return exc
    out = dict(exc)
    kept = out.get("frames") or []
    if frames is not None:
        kept = kept[-frames:]
        out["message"] = cut_between_tokens(str(out.get("message") or ""), 2000)
    out["frames"] = [{k: v for k, v in f.items() if k not in ("locals", "arg_values")} for f in kept]
    for key in ("cause", "context"):
        if out.get(key):
            out[key] = _strip_exception(out[key], depth + 1, frames)
    if out.get("children"):
        out["children"] = [_strip_exception(c, depth + 1, frames) for c in out["children"]]
    return out


class _Child:
    """What a child process of a recorded run keeps: its imports and its uncaught exception,
    each written once, under the record dir's children/."""

    def __init__(self, children_dir, parent):
        import time

        self.dir = children_dir
        self.parent = parent
        self.pid = os.getpid()
        self.started = time.time()
        self.imports = set()
        self.spawns = []
        self.files = set()  # files in its working tree it read, or named to a command it ran
        self.cwd = os.getcwd() + os.sep
        self.preloaded = {n for n, m in list(sys.modules.items()) if "." not in n and m is not None
                          and "-packages" in (getattr(m, "__file__", None) or "")}
        self.done = False

    def audit(self, event, args):
        if event == "import":
            try:
                if len(self.imports) < 5000:
                    self.imports.add(args[0].partition(".")[0])
            except Exception:
                pass
        elif event == "open":
            try:
                path, mode, flags = args
                if isinstance(path, int) or path is None or len(self.files) >= 500:
                    return
                reading = ("r" in mode and "+" not in mode) if mode is not None else (flags or 0) & 3 == os.O_RDONLY
                if reading:
                    path = os.path.abspath(os.fsdecode(path))
                    if path.startswith(self.cwd) and not path.endswith((".pyc", ".so")):
                        self.files.add(path)
            except Exception:
                pass
        elif event in _SPAWN_EVENTS:
            Recorder.note_spawn(self, event, args)

    def saw_file(self, path):
        if len(self.files) < 500:
            self.files.add(path)

    def recorder(self):
        rec = Recorder(None)
        rec.children_dir = self.dir
        rec.spawns = self.spawns
        return rec

    def excepthook(self, etype, value, tb):
        if os.getpid() != self.pid or value is None:
            return  # a forked copy: not the process that started under this recorder
        try:
            import json
            import time

            if value.__traceback__ is None:
                value = value.with_traceback(tb)
            exc = self.recorder().exception_record(value)
            argv = [cut_between_tokens(str(a), 2000) for a in list(getattr(sys, "orig_argv", None) or sys.argv)[:50]]
            item = {"pid": self.pid, "parent": self.parent, "argv": argv, "executable": sys.executable,
                    "started": self.started, "ended": time.time(), "exception": exc}
            data = json.dumps(item, default=repr, ensure_ascii=False).encode("utf-8", "surrogateescape")
            for frames in (None, 30, 5):
                if len(data) <= _MAX_CHILD_RECORD:
                    break
                item["exception"] = _strip_exception(exc, frames=frames)
                data = json.dumps(item, default=repr, ensure_ascii=False).encode("utf-8", "surrogateescape")
            if len(data) > _MAX_CHILD_RECORD:
                item["exception"] = {"type": exc.get("type"), "message": str(exc.get("message"))[:2000],
                                     "notes": [], "frames": [], "cause": None, "context": None,
                                     "suppress_context": False}
                data = json.dumps(item, default=repr, ensure_ascii=False).encode("utf-8", "surrogateescape")
            _write_new(os.path.join(self.dir, "x-%d.json" % self.pid), data)
            self.evict()
        except Exception:
            pass

    def evict(self):
        """Keep the newest _MAX_CHILD_FAILURES failure files: the one a parent's error came from
        is among the latest written."""
        names = [n for n in os.listdir(self.dir) if n.startswith("x-") and n.endswith(".json")]
        if len(names) <= _MAX_CHILD_FAILURES:
            return
        dated = []
        for name in names:
            try:
                dated.append((os.stat(os.path.join(self.dir, name)).st_mtime, name))
            except OSError:
                continue
        dated.sort()
        for _, name in dated[:len(dated) - _MAX_CHILD_FAILURES]:
            if name != "x-%d.json" % self.pid:
                try:
                    os.unlink(os.path.join(self.dir, name))
                except OSError:
                    pass

    def modules(self):
        """At exit: the non-stdlib modules this child imported, once per distinct set."""
        if self.done or os.getpid() != self.pid:
            return
        self.done = True
        try:
            import hashlib
            import json

            stdlib = getattr(sys, "stdlib_module_names", ())
            stdlib_dir = os.path.dirname(getattr(os, "__file__", "") or "") + os.sep
            mods = {}
            for name, module in list(sys.modules.items()):
                if "." in name or module is None or name in stdlib or name in self.preloaded \
                        or name in ("__main__", "sitecustomize", "_reprex_warm"):
                    continue
                try:
                    path = object.__getattribute__(module, "__dict__").get("__file__")
                    if not path:
                        path = next(iter(object.__getattribute__(module, "__dict__").get("__path__") or ()), None)
                except Exception:
                    path = None
                if isinstance(path, str) and path.startswith(stdlib_dir) and "-packages" not in path:
                    continue  # the standard library (names sys.stdlib_module_names misses)
                mods[name] = path if isinstance(path, str) else None
            for name in self.imports:  # a failed import is gone from sys.modules
                if name not in mods and name not in sys.modules and name not in stdlib and name not in self.preloaded and name != "__main__":
                    mods[name] = None
            if len(mods) > 2000:
                mods = dict(sorted(mods.items())[:2000])
            main_file = None
            main = sys.modules.get("__main__")
            path = getattr(main, "__file__", None)
            if isinstance(path, str) and os.path.isfile(path):
                path = os.path.abspath(path)
                prefixes = tuple(os.path.realpath(p) + os.sep for p in {sys.prefix, sys.base_prefix, sys.exec_prefix})
                if not os.path.realpath(path).startswith(prefixes):
                    main_file = path
            files = sorted(self.files)
            if not mods and main_file is None and not files:
                return
            key = hashlib.sha256(json.dumps([sorted(mods.items()), main_file, files, sys.executable]).encode(
                "utf-8", "surrogateescape")).hexdigest()[:24]
            path = os.path.join(self.dir, "m-%s.json" % key)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            except OSError:
                return  # another child imported the same set (or we can't write): nothing new
            try:
                count = sum(1 for n in os.listdir(self.dir) if n.startswith("m-"))
                if count > _MAX_CHILD_MODULE_SETS:
                    os.close(fd)
                    fd = None
                    os.unlink(path)
                    try:
                        os.close(os.open(os.path.join(self.dir, "capped"), os.O_WRONLY | os.O_CREAT, 0o600))
                    except OSError:
                        pass
                    return
                item = {"pid": self.pid, "parent": self.parent, "executable": sys.executable,
                        "prefix": sys.prefix, "modules": mods, "main_file": main_file, "opened": files,
                        "preloaded": sorted(self.preloaded)[:2000]}
                item.update(_child_distributions(mods))
                data = json.dumps(item, default=repr, ensure_ascii=False).encode("utf-8", "surrogateescape")
                if len(data) > _MAX_CHILD_RECORD:
                    item["modules"] = {k: None for k in list(mods)[:2000]}
                    data = json.dumps(item, default=repr, ensure_ascii=False).encode("utf-8", "surrogateescape")
                os.write(fd, data[:_MAX_CHILD_RECORD])
            finally:
                if fd is not None:
                    os.close(fd)
        except Exception:
            pass


def _child_distributions(mods):
    """{module_dists, versions}: the distributions that provide a child's site-packages modules
    (top_level.txt, else RECORD), read only by the first child with a new set of imports."""
    from importlib import metadata

    wanted = {n for n, p in mods.items() if p and ("site-packages" in p or "dist-packages" in p)}
    found = {}
    versions = {}
    if not wanted:
        return {"module_dists": found, "versions": versions}
    dists = []
    for dist in metadata.distributions():
        try:
            top = dist.read_text("top_level.txt")
            name = dist.metadata["Name"]
        except Exception:
            continue
        if not name:
            continue
        dists.append((dist, name, top))
        for t in (top or "").split():
            if t in wanted:
                found.setdefault(t, []).append(name)
                versions[name] = dist.version
    missing = wanted - set(found)
    for dist, name, top in dists:
        if not missing:
            break
        if top:
            continue
        try:
            record = dist.read_text("RECORD") or ""
        except Exception:
            continue
        heads = {line.split(",", 1)[0].split("/", 1)[0] for line in record.splitlines()}
        for mod in list(missing):
            if mod in heads or mod + ".py" in heads or any(h.startswith(mod + ".") and h.endswith((".so", ".pyd"))
                                                             for h in heads):
                found.setdefault(mod, []).append(name)
                versions[name] = dist.version
                missing.discard(mod)
    return {"module_dists": found, "versions": versions}


def _start_child(directory):
    """A Python child of a recorded run: keep its imports and its uncaught exception."""
    children_dir = os.path.join(directory, _CHILD_DIR)
    if not os.path.isdir(children_dir):
        return None  # a recorder that keeps no children (or no run) made this record dir
    import atexit

    child = _Child(children_dir, os.environ.get(_PARENT_VAR))
    os.environ[_PARENT_VAR] = str(child.pid)  # this child's own children name it
    previous_hook = sys.excepthook

    def excepthook(etype, value, tb):
        child.excepthook(etype, value, tb)
        previous_hook(etype, value, tb)

    sys.excepthook = excepthook
    sys.addaudithook(child.audit)
    atexit.register(child.modules)
    return child


def _start(directory, preloaded=None):
    """Arm the recorder. `preloaded`: for a warm start (reprex/_inject/_reprex_warm.py), the
    site-packages modules a cold start of this interpreter would find loaded already."""
    claim_path = os.path.join(directory, "claim")
    try:
        claim = os.open(claim_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        # Another process of this run is the recorded one, unless it is us after
        # an exec (a launcher such as repro.py that execs the real entry).
        try:
            with open(claim_path) as fh:
                if fh.read().strip() != str(os.getpid()):
                    global _CHILD
                    try:
                        _CHILD = _start_child(directory)
                    except Exception:
                        _CHILD = None
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

    rec = Recorder(directory)
    try:
        children_dir = os.path.join(directory, _CHILD_DIR)
        os.makedirs(children_dir, mode=0o700, exist_ok=True)
        rec.children_dir = children_dir
        os.environ[_PARENT_VAR] = str(os.getpid())
    except OSError:
        pass
    # Modules .pth files loaded before the program started: the environment's, not the program's.
    if preloaded is None:
        preloaded = sorted(n for n, m in list(sys.modules.items()) if "." not in n and m is not None
                           and "-packages" in (getattr(m, "__file__", None) or ""))
    rec.emit("start", pid=os.getpid(), t=rec.t0, cwd=os.getcwd(), orig_argv=list(getattr(sys, "orig_argv", [])),
             executable=sys.executable, version=sys.version.split()[0], preloaded=preloaded)
    fault = open(os.path.join(directory, "fault.log"), "w")
    rec.fault_file = fault  # keep it open for the life of the process
    faulthandler.enable(file=fault, all_threads=True)
    if hasattr(os, "register_at_fork"):
        # A forked child (multiprocessing, subprocess helpers) must not write the
        # parent's crash log or make a successful parent look failed.
        os.register_at_fork(after_in_child=faulthandler.disable)
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
    # Imported already (a warm start's preloads): the import hooks would never see them.
    if "unittest" in sys.modules:
        _patch_unittest(rec, sys.modules["unittest"])
    if "ray" in sys.modules:
        _patch_ray(rec, sys.modules["ray"])
    atexit.register(rec.final, "atexit")
    if _is_pytest(list(getattr(sys, "orig_argv", None) or sys.argv)):
        _enable_pytest_plugin()
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
