#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info`; idempotent.
#
#  1. If `docker info` already works (DOCKER_HOST is respected), do nothing.
#  2. Otherwise, as root on Debian: install docker.io if dockerd is missing
#     (apt-get update only when the package lists are empty or the install fails),
#     start dockerd in the background (no systemd here), and wait up to
#     REPREX_DOCKERD_WAIT seconds (default 60) for `docker info`.
#  3. If no engine can be had: print one line "ensure_docker: ..." to stderr and exit 1.
#
# API versions: the machine's docker CLI may be newer (28.x, API 1.50) than Debian's
# dockerd (20.10, API 1.41). The CLI negotiates the API version by itself, as does the
# Python docker SDK (docker.from_env() uses version="auto"), so no DOCKER_API_VERSION
# is needed; we still check it below and print the versions seen.
set -euo pipefail

LOG=${REPREX_DOCKERD_LOG:-/tmp/reprex-dockerd.log}
PIDFILE=${REPREX_DOCKERD_PIDFILE:-/tmp/reprex-dockerd.pid}
WAIT=${REPREX_DOCKERD_WAIT:-60}

say()  { echo "ensure_docker: $*" >&2; }
die()  { say "ERROR: $*"; exit 1; }

docker_ok() { command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1; }

report_ok() {
    local v
    v=$(timeout 10 docker version --format 'client {{.Client.Version}} (API {{.Client.APIVersion}}), server {{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null || echo "versions unknown")
    say "Docker engine reachable: $v"
}

if docker_ok; then
    report_ok
    exit 0
fi

# Somebody else's engine was asked for explicitly: don't start our own over it.
if [[ -n "${DOCKER_HOST:-}" && "${DOCKER_HOST}" != unix:///var/run/docker.sock ]]; then
    die "DOCKER_HOST=$DOCKER_HOST is set but 'docker info' fails there; not starting a local daemon"
fi

[[ $(id -u) -eq 0 ]] || die "no Docker engine reachable and not root, cannot install/start dockerd (start Docker yourself or run as root)"
command -v apt-get >/dev/null 2>&1 || die "no Docker engine reachable and no apt-get (not Debian?); start Docker yourself"

export DEBIAN_FRONTEND=noninteractive
apt_install() {
    # apt-get update only if needed: empty lists, or a first install attempt fails.
    if ! compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null \
        || ! apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1; then
        say "apt-get update"
        apt-get update -q >/dev/null || return 1
        apt-get install -y -q --no-install-recommends "$@" >/dev/null || return 1
    fi
}

if ! command -v dockerd >/dev/null 2>&1; then
    say "installing docker.io (dockerd, containerd, runc) with apt-get"
    # iptables is needed by the bridge network driver; docker.io only recommends it.
    apt_install docker.io iptables ca-certificates || die "apt-get install docker.io failed"
    command -v dockerd >/dev/null 2>&1 || die "docker.io installed but no dockerd on PATH"
fi
if ! command -v docker >/dev/null 2>&1; then
    die "dockerd present but no docker CLI on PATH"
fi

# A previous dockerd of ours may still be running but not answering yet.
if [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    pid=$(cat "$PIDFILE")
    say "dockerd already running (pid $pid), waiting for it"
else
    # Stale pidfiles from a dead daemon make dockerd/containerd refuse to start.
    rm -f "$PIDFILE" /var/run/docker.pid /var/run/docker/containerd/containerd.pid 2>/dev/null || true
    say "starting dockerd (log: $LOG)"
    nohup dockerd --pidfile "$PIDFILE" >>"$LOG" 2>&1 </dev/null &
    pid=$!   # dockerd writes $PIDFILE itself (and refuses to start if it exists)
    disown || true
fi

start=$SECONDS
while (( SECONDS - start < WAIT )); do
    if docker_ok; then
        say "dockerd up after $((SECONDS - start)) s"
        report_ok
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        die "dockerd exited during startup; last log line: $(tail -n 1 "$LOG" 2>/dev/null)"
    fi
    sleep 0.5
done
die "dockerd did not answer 'docker info' within ${WAIT} s; see $LOG (last line: $(tail -n 1 "$LOG" 2>/dev/null))"
