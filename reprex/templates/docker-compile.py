"""Byte-compile, while an env image is built, only the installed modules the bundle's run imported.

Run by docker-build.sh (both modes) with the env's python, standard library only:
`python -I docker-compile.py LIST`. A replay's root is read-only, so a module without a .pyc
is compiled in memory on every import; compiling every module of every package at build time
instead was most of what a cold docker replay paid over a hand-made image (which compiles
nothing and lets each run compile what it imports). A run that imports more than the list
still works: Python compiles those in memory and writes nothing.

LIST (reprex/replay/docker/compile_list.py writes it from the bundle, checked there and again
here) starts with its mode line:
  modules   dotted names, each found by path only (`a/b/c.py` or `a/b/c/__init__.py` under
            site-packages, with its packages' `__init__.py`): nothing is imported, extension
            modules have no source and are skipped;
  packages  top-level names (an older bundle): the whole of each, but its test suites;
  *         no list: every package, but their test suites.

Timestamp pycs whatever SOURCE_DATE_EPOCH says: the files don't change once installed, and a
timestamp check costs a stat where a checked hash reads and hashes the source on every import.
Up-to-date pycs are kept, so the --with step recompiles only what it replaced.
"""

import compileall
import os
import py_compile
import re
import sys
import sysconfig

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}(\.[A-Za-z_][A-Za-z0-9_]{0,99}){0,15}")
MAX_NAMES = 10000
MODE = py_compile.PycInvalidationMode.TIMESTAMP


def site_dirs():
    found = []
    for key in ("purelib", "platlib"):
        path = os.path.realpath(sysconfig.get_paths()[key])
        if os.path.isdir(path) and path not in found:
            found.append(path)
    return found


def module_files(names, site):
    """The source files of `names` and of their packages' __init__, by path lookup only."""
    found = set()
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            base = os.path.join(site, *parts[:i])
            for candidate in (os.path.join(base, "__init__.py"), base + ".py"):
                if os.path.isfile(candidate):
                    found.add(candidate)
                    break
    return sorted(found)


def compile_one(path):
    return compileall.compile_file(path, quiet=2, invalidation_mode=MODE)


def compile_files(files):
    """Over the CPUs when there are enough files to pay for the worker processes."""
    workers = min(os.cpu_count() or 1, 8)
    if workers > 1 and len(files) > 100:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(compile_one, files, chunksize=16))
    else:
        for path in files:
            compile_one(path)


def tree_files(path):
    """The source files of a package (or a top-level module), but its test suites."""
    if not os.path.isdir(path):
        return [path + ".py"] if os.path.isfile(path + ".py") else []
    found = []
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d not in ("test", "tests", "__pycache__")]
        found.extend(os.path.join(root, f) for f in files if f.endswith(".py"))
    return found


def read_list(path):
    """(mode, names); ("*", []) for anything unexpected."""
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            lines = fh.read(4 << 20).splitlines()
    except OSError:
        return "*", []
    mode, names = (lines[0] if lines else "*"), lines[1:MAX_NAMES + 2]
    if mode not in ("modules", "packages") or len(names) > MAX_NAMES:
        return "*", []
    return mode, [n for n in names if NAME.fullmatch(n) and (mode == "modules" or "." not in n)]


def main(argv):
    mode, names = read_list(argv[1]) if len(argv) > 1 else ("*", [])
    for site in site_dirs():
        if mode == "modules":
            files = module_files(names, site)
        elif mode == "packages":
            files = [f for name in names for f in tree_files(os.path.join(site, name))]
        else:
            files = tree_files(site)
        # nothing outside site-packages, whatever a link in an installed package points at
        compile_files([f for f in files if os.path.realpath(f).startswith(site + os.sep)])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
