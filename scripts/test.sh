#!/usr/bin/env bash
# THE test command:  bash scripts/test.sh [pytest args...]   (default args: -q)
#
# On a fresh Debian 12 box with root this sets up everything the tests need:
#   1. .venv (system python3 >= 3.10; python3-venv is apt-installed if missing) with
#      `pip install -e '.[test,ray,docker,fetch]'` (skipped when pyproject.toml is unchanged since
#      the last install),
#   2. a Docker engine (scripts/ensure_docker.sh: installs docker.io, starts dockerd),
#   3. a Python 3.11 base image (scripts/base_image.sh: local, pulled, or built offline),
# then runs pytest with REPREX_TEST_IMAGE, RAY_USAGE_STATS_ENABLED=0, RAY_AUTH_MODE=disabled.
#
# With CI=true a missing Docker engine or image is an error (exit 1); locally it is a
# warning and the Docker tests skip with a reason. Pytest exit code 5 (no tests
# collected) is reported as a failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
VENV=$ROOT/.venv
CI=${CI:-}

say() { echo "test.sh: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
is_ci() { [[ $CI == true || $CI == 1 ]]; }
t0=$SECONDS

# --- 1. virtualenv (scripts/setup_venv.sh) -------------------------------------------
bash scripts/setup_venv.sh

# --- 2 + 3. Docker engine and base image ------------------------------------------
export RAY_USAGE_STATS_ENABLED=0
export RAY_AUTH_MODE=disabled
docker_problem=""
if bash scripts/ensure_docker.sh; then
    if image=$(bash scripts/base_image.sh | tail -n 1) && [[ -n $image ]]; then
        export REPREX_TEST_IMAGE=$image
        say "REPREX_TEST_IMAGE=$image"
    else
        docker_problem="could not provide a Python 3.11 base image (scripts/base_image.sh failed)"
    fi
else
    docker_problem="could not reach or start a Docker engine (scripts/ensure_docker.sh failed)"
fi
if [[ -n $docker_problem ]]; then
    if is_ci; then
        die "CI=true and $docker_problem"
    fi
    say "WARNING: $docker_problem; Docker tests will be skipped"
fi
# --- torch, for the CUDA-stack probe tested against a real (CPU) torch ---------------------
# A separate venv: torch is big and reprex itself must not depend on it. Pinned, because a
# bare `torch` pulls a multi-GB CUDA build; on these machines 2.13.0 is a CPU wheel on disk.
if [[ -z ${REPREX_TEST_TORCH_PYTHON:-} ]] && { is_ci || [[ ${REPREX_TEST_TORCH:-} == 1 ]]; }; then
    TORCH_VENV=$ROOT/.venv-torch
    if ! "$TORCH_VENV/bin/python" -c 'import torch' 2>/dev/null; then
        say "creating .venv-torch with torch==2.13.0 (CPU build)"
        rm -rf "$TORCH_VENV"
        "${REPREX_PYTHON:-python3}" -m venv "$TORCH_VENV" \
            && "$TORCH_VENV/bin/python" -m pip install -q torch==2.13.0 >"$ROOT/.venv/torch-install.log" 2>&1 \
            || { tail -n 20 "$ROOT/.venv/torch-install.log" >&2; die "installing torch==2.13.0 failed"; }
    fi
    export REPREX_TEST_TORCH_PYTHON=$TORCH_VENV/bin/python
fi

say "setup took $((SECONDS - t0)) s; running pytest"

# --- 4. pytest --------------------------------------------------------------------
(( $# )) || set -- -q
rc=0
"$VENV/bin/python" -m pytest "$@" || rc=$?
if (( rc == 5 )); then
    say "ERROR: pytest collected no tests (exit code 5) for args: $*"
fi
exit "$rc"
