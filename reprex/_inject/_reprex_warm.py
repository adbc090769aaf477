"""Warm starts for recorded runs: a Python that has already imported a run's heavy
dependencies forks one child per run, and the child runs the entry the way `python
SCRIPT ARGS` or `python -m MODULE ARGS` would, under the recorder.

Host only (reprex.warm starts it with the recorder's environment minus the record
dir, so the recorder here is inert until a child arms it). It lives beside the recorder
so that its frames count as the recorder's own and never enter a signature. Standard
library only: it runs in the interpreter of the project under test.

Protocol, over the SOCK_SEQPACKET socket whose descriptor is argv[1]: after the preloads
it sends {"ready", "loaded", "preloaded"}; then per job it receives one JSON message
{args, cwd, env, record_dir, preloaded} with the child's stdout and stderr descriptors
attached, forks, answers {"pid"} and, once the child is gone, {"exit": returncode}.
"""

import json
import os
import socket
import sys

_BUF = 1 << 20


def _send(sock, **message):
    sock.send(json.dumps(message).encode())


def _site_modules():
    """Top-level modules from site-packages loaded now (what .pth files import at start)."""
    return sorted(n for n, m in list(sys.modules.items()) if "." not in n and m is not None
                  and "-packages" in (getattr(m, "__file__", None) or ""))


def _entry_frames(tb, filename):
    """The traceback from the entry's own first frame, as `python SCRIPT` prints it."""
    first = tb
    while tb is not None:
        if os.path.abspath(tb.tb_frame.f_code.co_filename) == filename:
            return tb
        tb = tb.tb_next
    return first


def _run_script(path):
    """Run a file as `python PATH` does (runpy.run_path would put the absolute path in argv[0])."""
    import builtins
    import importlib.machinery
    import types

    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = builtins
    main.__cached__ = None
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", path)
    sys.modules["__main__"] = main
    with open(path, "rb") as fh:  # io.open_code is what the interpreter uses; same bytes
        source = fh.read()
    exec(compile(source, path, "exec", dont_inherit=True), main.__dict__)


def _child(job, out_fd, err_fd):
    """Become the run: never returns (the process exits as the entry's interpreter would)."""
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    for fd in (null, out_fd, err_fd):
        os.close(fd)
    os.chdir(job["cwd"])
    os.environ.clear()
    os.environ.update(job["env"])
    import tempfile

    tempfile.tempdir = None  # TMPDIR is the run's, not the one the preloads may have read
    args = list(job["args"])
    sys.orig_argv = [sys.executable] + args
    import runpy

    import sitecustomize as recorder  # the recorder, inert in this process until armed here

    recorder._RECORDER = recorder._start(job["record_dir"], preloaded=job["preloaded"])
    script = None
    try:
        if args[0] == "-m":
            sys.argv = [args[1]] + args[2:]
            sys.path[0] = os.getcwd()
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        else:
            script = os.path.abspath(args[0])
            sys.argv = args
            sys.path[0] = os.path.dirname(script)
            _run_script(script)
    except SystemExit:
        raise
    except BaseException as exc:
        if script:  # what Python shows for `python SCRIPT`: from the script's frame down
            exc.__traceback__ = _entry_frames(exc.__traceback__, script)
        sys.excepthook(type(exc), exc, exc.__traceback__)
        if isinstance(exc, KeyboardInterrupt):
            import atexit
            import signal

            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        raise SystemExit(1)
    raise SystemExit(0)


def main():
    sock = socket.socket(fileno=int(sys.argv[1]))
    preloaded = _site_modules()  # before ours: the environment's, as a cold start would find them
    loaded = []
    for name in sys.argv[2:]:
        try:
            __import__(name)
            loaded.append(name)
        except Exception:
            pass
    _send(sock, ready=True, loaded=loaded, preloaded=preloaded)
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, _BUF, 2)
        except OSError:
            os._exit(0)
        if not data:
            os._exit(0)  # the parent is gone
        job = json.loads(data)
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            _send(sock, error="expected two descriptors")
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            sock.close()
            _child(job, fds[0], fds[1])
        for fd in fds:
            os.close(fd)
        _send(sock, pid=pid)
        _, status = os.waitpid(pid, 0)
        _send(sock, exit=os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
