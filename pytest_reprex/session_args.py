"""The session's own command-line options that a one-node replay must run under too.

A conftest.py or an installed plugin registers options that decide an outcome: a test marked
slow is skipped without `--runslow`, a fixture reads `--env=staging`. The replay carries the
ones typed on the command line (and in PYTEST_ADDOPTS, which the replay's environment drops),
as typed: read from argv, not from `config.option`, so a value a plugin set at configure time
is not passed as if the user had, and the ini file's addopts (which come with `-c`) are not
passed twice. pytest's own options are left out, but for the few that change what one node
does; so are plugins' options that select, parallelize, repeat or write reports.

Which options exist, and which of them are pytest's, is read from pytest's parser: the
session's for every option (conftests and plugins included), a fresh `get_config()`'s for
pytest's own. Both reads use internals that held from pytest 7.0 to 9.x (`Parser._groups`,
`Argument.names()`, argparse's `_option_string_actions`); if they move, nothing is carried
rather than something wrong.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
from pathlib import Path

# pytest's own options that change what a single node does. The rest select tests, report, or
# are carried by capture._session_options (-p, -W, -o, --import-mode, --capture, verbosity).
CORE_CARRIED = frozenset({
    "--runxfail", "--strict", "--strict-markers", "--strict-config", "--assert", "--noconftest", "--log-level",
    "--doctest-modules", "--doctest-glob", "--doctest-report", "--doctest-continue-on-failure",
    "--doctest-ignore-import-errors",
})

# Plugins' options that don't belong in a one-node replay: workers and forks (the recorder sees
# failures in its own process; capture adds `-n 0` itself), repeats (`reprex replay --runs` is the
# way to repeat), report and coverage files (a docker replay's tree is read-only), selection by
# history, the seed capture pins by itself (`--randomly-seed`), and reprex's own.
DROPPED = frozenset({
    "-n", "--numprocesses", "--maxprocesses", "--dist", "-d", "--tx", "--px", "--rsyncdir", "--rsyncignore",
    "--max-worker-restart", "-f", "--looponfail", "--forked", "--boxed",
    "--html", "--self-contained-html", "--css", "--report-log", "--alluredir", "--clean-alluredir",
    "--benchmark-save", "--benchmark-autosave", "--benchmark-save-data", "--benchmark-json",
    "--benchmark-histogram", "--benchmark-storage", "--benchmark-cprofile-dump",
    "--only-rerun", "--rerun-except", "--picked", "--randomly-seed",
})
DROPPED_PREFIXES = ("--reprex-", "--cov", "--no-cov", "--json-report", "--allure", "--md-report", "--testmon",
                    "--reruns")

_NUMBER = re.compile(r"-\d+|-\d*\.\d+")


def carried_options(config) -> list[str]:
    """Argv items (never one shell string) for the session's options a replay runs under."""
    try:
        argparser = _argparser(config._parser)
        actions = dict(argparser._option_string_actions)
        core = _core_options()
        args = shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
    except Exception:  # pytest's internals moved, or an addopts pytest itself would refuse
        return []
    args += [os.fspath(arg) for arg in config.invocation_params.args]
    args = _from_files(args, getattr(argparser, "fromfile_prefix_chars", None), config.invocation_params.dir)
    out: list[str] = []
    for used, action, values in _walk(args, actions):
        if _kept(action.option_strings, core):
            out += _render(used, action, values)
    return out


def _argparser(parser):
    """The argparse parser that knows every option of the session."""
    build = getattr(parser, "_getparser", None)  # pytest < 9 builds it on demand
    return build() if build is not None else parser.optparser


def _from_files(args: list[str], prefixes: str | None, base, depth: int = 0) -> list[str]:
    """`@FILE` arguments (pytest 8.2+) replaced by their lines, as argparse reads them: the
    replay has no such file."""
    if not prefixes:
        return args
    out: list[str] = []
    for arg in args:
        if arg[:1] and arg[0] in prefixes and depth < 8:
            try:
                lines = Path(base, arg[1:]).read_text(encoding="utf-8").splitlines()
            except (OSError, ValueError):
                out.append(arg)
                continue
            out += _from_files(lines, prefixes, base, depth + 1)
        else:
            out.append(arg)
    return out


@functools.lru_cache(maxsize=1)
def _core_options() -> frozenset:
    """pytest's own option strings: those of a config with the builtin plugins only."""
    from _pytest.config import get_config

    parser = get_config()._parser
    return frozenset(name for group in parser._groups for option in group.options for name in option.names())


def _kept(names, core: frozenset) -> bool:
    if any(name in CORE_CARRIED for name in names):
        return True
    if any(name in core or name in DROPPED or name.startswith(DROPPED_PREFIXES) for name in names):
        return False
    return True


def _walk(args: list[str], actions: dict):
    """(option string as used, action, values or None for a flag) for each option in `args`,
    read the way argparse reads them; file and node arguments are skipped."""
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        if token == "--":
            return
        if not _optionlike(token):
            continue
        name, eq, explicit = token.partition("=")
        if name in actions:  # --long, --long=value, -X=value
            action = actions[name]
            if eq:
                yield name, action, [explicit]
                continue
            values, i = _take(action, args, i)
            yield name, action, values
            continue
        if token.startswith("--"):
            continue  # not an option of this session: pytest would have refused it
        for j in range(1, len(token)):  # -abc: flags, until one that takes the rest as its value
            short = "-" + token[j]
            action = actions.get(short)
            if action is None:
                break
            if action.nargs == 0:
                yield short, action, None
                continue
            rest = token[j + 1:]
            if rest:
                yield short, action, [rest]
            else:
                values, i = _take(action, args, i)
                yield short, action, values
            break


def _take(action, args: list[str], i: int) -> tuple[list[str] | None, int]:
    nargs = action.nargs
    if nargs == 0:
        return None, i
    if nargs is None or isinstance(nargs, int):
        count = 1 if nargs is None else nargs
        return args[i:i + count], i + count
    end = i  # "?", "*", "+", ...: what follows, up to the next option
    while end < len(args) and not _optionlike(args[end]) and args[end] != "--":
        end += 1
        if nargs == "?":
            break
    return args[i:end], end


def _optionlike(token: str) -> bool:
    return token.startswith("-") and token != "-" and not _NUMBER.fullmatch(token)


def _render(used: str, action, values: list[str] | None) -> list[str]:
    """One value goes as `--name=value` (a value starting with '-' stays a value), more as items."""
    if values is None:
        return [used]
    if len(values) != 1:
        return [used, *values]
    value = values[0]
    long = next((name for name in action.option_strings if name.startswith("--")), None)
    if long is not None:
        return [f"{long}={value}"]
    return [used + value] if value and not value.startswith("=") else [used, value]
