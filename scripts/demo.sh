#!/usr/bin/env bash
# The main job on a shipped example: capture a failing run into a bundle, render its
# GitHub issue body, and replay it with the best backend available (Docker when an
# engine and base image can be had, else a local virtualenv).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
bash scripts/setup_venv.sh >&2
export PATH=$ROOT/.venv/bin:$PATH

work=$(mktemp -d /tmp/reprex-demo.XXXXXX)
cp -r examples/quickstart/. "$work/"
cd "$work"
echo "== reprex capture -- python train.py config.json   (in $work)"
reprex capture -- python train.py config.json || [[ $? -eq 1 ]]   # exits with the program's status (1)
echo
echo "== reprex show train.reprex.zip"
reprex show train.reprex.zip
echo
echo "== reprex render train.reprex.zip --venue gh   (first 25 lines)"
reprex render train.reprex.zip --venue gh | head -n 25
echo
# Best backend available: Docker when an engine and a base image can be had (as root on
# Debian this starts one), else a local virtualenv; `--backend auto` makes that choice.
if [[ $(id -u) -eq 0 ]]; then
    { bash "$ROOT/scripts/ensure_docker.sh" && bash "$ROOT/scripts/base_image.sh"; } >/dev/null 2>&1 \
        || echo "(no Docker engine here: replaying in a local virtualenv)"
fi
echo "== reprex replay train.reprex.zip --backend auto"
reprex replay train.reprex.zip --backend auto
echo
echo "== after the fix (config.json: target_column -> label), replay against the fixed files"
python - <<'PY'
import json
from reprex.bundle import Bundle
b = Bundle.read("train.reprex.zip")
cfg = json.loads(b.files["files/config.json"])
cfg["target_column"] = "label"
b.files["files/config.json"] = (json.dumps(cfg) + "\n").encode()
b.finalize().write("train-fixed.reprex.zip")
PY
reprex replay train-fixed.reprex.zip --backend auto --expect fixed
