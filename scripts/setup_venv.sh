#!/usr/bin/env bash
# Create .venv (system python3 >= 3.10; python3-venv is apt-installed if missing) and
# `pip install -e '.[test,ray,docker,fetch]'` (the tests need every optional feature: the docker
# SDK and smart_open are extras now), skipped when pyproject.toml is unchanged since the last
# install. Used by scripts/test.sh and scripts/demo.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
VENV=$ROOT/.venv
say() { echo "setup_venv.sh: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
t0=$SECONDS

# --- virtualenv -------------------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
apt_install() {
    apt-get install -y -q "$@" >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; }
}
PY=${REPREX_PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1; then
    [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null || die "no $PY found; install Python >= 3.10"
    say "installing python3 with apt-get"
    apt_install python3 python3-venv || die "apt-get install python3 failed"
fi
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "$PY is $("$PY" -V 2>&1); reprex needs Python >= 3.10"

if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c '' 2>/dev/null; then
    say "creating .venv with $("$PY" -V 2>&1) ($(command -v "$PY"))"
    rm -rf "$VENV"
    if ! "$PY" -m venv "$VENV" 2>/dev/null; then
        # Debian's python3 lacks ensurepip until python3-venv is installed.
        rm -rf "$VENV"
        [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null \
            || die "'$PY -m venv' failed (on Debian: apt-get install python3-venv)"
        say "installing python3-venv with apt-get"
        apt_install python3-venv || die "apt-get install python3-venv failed"
        "$PY" -m venv "$VENV" || die "'$PY -m venv' failed"
    fi
fi

# Re-install only when the project metadata changed (the install is editable).
stamp=$VENV/.reprex-install-stamp
want=$(sha256sum <pyproject.toml | cut -d" " -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    say "pip install -e '.[test,ray,docker,fetch]'"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    log=$VENV/pip-install.log
    # pip's output goes to a log (the host's pip config makes it chatty); shown on failure.
    if ! "$VENV/bin/python" -m pip install -e '.[test,ray,docker,fetch]' >"$log" 2>&1; then
        grep -v 'is ignored: it is neither a file nor a directory' "$log" | tail -n 30 >&2
        die "pip install -e '.[test,ray,docker,fetch]' failed (full log: $log)"
    fi
    echo "$want" >"$stamp"
    say "venv ready after $((SECONDS - t0)) s"
fi

