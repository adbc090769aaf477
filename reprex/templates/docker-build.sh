# An env image's one build step (reprex/replay/docker/build.py), the command of a root container
# of the base image (or, for --with, of the env image) that is then committed as the image:
# `sh -c THIS sh MODE PYTHON_XY BASE_IMAGE`, values passed as data, never spliced in.
# POSIX sh: base images differ. Lines starting "reprex-" tell an unusable image (env-incompatible)
# from a failed build.
#
# /tmp/reprex/ is none of the image's: a read-only bind mount of a host dir inside a tmpfs /tmp
# when the daemon shares our files, else put into the container before it started (the archive
# API) and removed before the commit:
#   uv/uv                    the host's uv when the image's arch is the host's; used when it runs here
#   wheels/*.whl             MODE=pins: the pins, downloaded on the host
#   sitecustomize.py         MODE=pins: the recorder
#   compile.py, modules.txt  MODE=pins: what to byte-compile (docker-compile.py; the list is data,
#                            checked on both sides)
#   with/*.whl               MODE=with: the --with wheels, installed over the pins
# Nothing is fetched while installing (--offline --no-index); uv when it runs here, else pip.
# Bytecode is compiled here (the run's root fs is read-only) for the modules the bundle's run
# imported only: compiling everything was most of what a cold replay paid over a hand-made image.
# The recorder's bytecode and /opt/reprex/facts.json (the environment's facts) are written once
# per image instead of on every run; MODE=with writes the facts again.
set -e
mode=$1; xy=$2; base=$3; ctx=/tmp/reprex; venv=/opt/reprex/venv
uv=$ctx/uv/uv
"$uv" --version >/dev/null 2>&1 || uv=

if [ "$mode" = pins ]; then
  # images without Python (nvidia/cuda runtime images) get the distro's python3 when apt can
  command -v python3 >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 \
    && apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
       --no-install-recommends python3 python3-venv >/dev/null && rm -rf /var/lib/apt/lists/*; } \
    || { echo "reprex-no-python: the image $base has no python3"; exit 1; }
  v=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  if [ "$v" != "$xy" ]; then
    echo "reprex-python-mismatch: the image $base has Python $v, the bundle ran Python $xy"; exit 1
  fi
  if [ -n "$uv" ]; then
    "$uv" venv --quiet --no-config --python "$(command -v python3)" "$venv" \
      || { echo "reprex-no-venv: uv venv fails in $base"; exit 1; }
  else
    python3 -m venv "$venv" || { echo "reprex-no-venv: python3 -m venv fails in $base (install python3-venv)"; exit 1; }
  fi
  if ls "$ctx"/wheels/*.whl >/dev/null 2>&1; then
    if [ -n "$uv" ]; then
      "$uv" pip install --quiet --no-config --python "$venv/bin/python" --offline --no-index --no-deps --no-cache \
        --link-mode copy "$ctx"/wheels/*.whl
    else
      "$venv/bin/python" -m pip install --no-index --no-deps --no-cache-dir --disable-pip-version-check \
        --no-warn-script-location --no-compile "$ctx"/wheels/*.whl
    fi
  fi
  mkdir -p /opt/reprex/inject /opt/reprex/build
  cp "$ctx/sitecustomize.py" /opt/reprex/inject/sitecustomize.py
  cp "$ctx/compile.py" "$ctx/modules.txt" /opt/reprex/build/
  echo "reprex:x:10001:10001:reprex replay:/home/reprex:/bin/sh" >> /etc/passwd
  echo "reprex:x:10001:" >> /etc/group
  mkdir -p /home/reprex /reprex/in /reprex/record
  chown 10001:10001 /home/reprex /reprex/record
  chmod 0700 /reprex/record
  "$venv/bin/python" -m compileall -q /opt/reprex/inject >/dev/null
elif [ "$mode" = with ]; then
  if [ -n "$uv" ]; then
    "$uv" pip install --quiet --no-config --python "$venv/bin/python" --offline --no-index --no-deps --reinstall \
      --no-cache --link-mode copy "$ctx"/with/*.whl
  else
    "$venv/bin/python" -m pip install --no-index --no-deps --force-reinstall --no-cache-dir \
      --disable-pip-version-check --no-warn-script-location --no-compile "$ctx"/with/*.whl
  fi
else
  echo "reprex-build: unknown mode $mode"; exit 2
fi
if [ -w "$ctx" ]; then rm -rf "$ctx"; fi
# up-to-date .pyc are kept: the --with step recompiles only what it replaced
"$venv/bin/python" -I /opt/reprex/build/compile.py /opt/reprex/build/modules.txt >/dev/null 2>&1 || :
"$venv/bin/python" -I /opt/reprex/inject/sitecustomize.py --facts > /opt/reprex/facts.json || echo '{}' > /opt/reprex/facts.json
# only entries that lack the modes: touching a file of a lower layer copies it up whole
find /opt/reprex \( ! -perm -0444 -o -type d ! -perm -0111 \) -exec chmod a+rX {} +
