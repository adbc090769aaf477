#!/usr/bin/env bash
# Make sure a Python 3.11 base image exists in the local Docker engine; idempotent.
# Progress goes to stderr; the last (only) line on stdout is the image name to use.
#
#  1. `python:3.11-slim` already present locally      -> use it.
#  2. `docker pull python:3.11-slim` (short timeout)  -> use it.  (Fails offline.)
#  3. Build one offline from Debian packages: debootstrap a minimal bookworm rootfs with
#     python3 + venv + pip, add `python -> python3`, and `docker import` it as
#     reprex-base:py3.11. The rootfs tarball is cached under $REPREX_BASE_CACHE
#     (default /var/cache/reprex-base) so a fresh daemon doesn't debootstrap again.
#
# In case 3 the image is ALSO tagged `python:3.11-slim` (when that tag doesn't exist), so
# that reprex's default replay image name resolves offline. It is NOT the official image:
# Debian's python3 (3.11.2) lives in /usr/bin and is marked "externally managed" (PEP 668),
# so anything built on it must install packages into a venv (`python3 -m venv`), never with
# a bare `pip install` into the system interpreter.
set -euo pipefail

OFFICIAL=${REPREX_OFFICIAL_IMAGE:-python:3.11-slim}
LOCAL=${REPREX_BASE_IMAGE:-reprex-base:py3.11}
SUITE=${REPREX_BASE_SUITE:-bookworm}
CACHE=${REPREX_BASE_CACHE:-/var/cache/reprex-base}
TARBALL=$CACHE/rootfs-$SUITE.tar
PULL_TIMEOUT=${REPREX_PULL_TIMEOUT:-20}

say() { echo "base_image: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

t0=$SECONDS
# Our own build first, so that re-runs print the same name as the run that built it.
if have_image "$LOCAL"; then
    say "$LOCAL present locally"
    if ! have_image "$OFFICIAL"; then
        docker tag "$LOCAL" "$OFFICIAL"
        say "tagged $LOCAL also as $OFFICIAL (offline stand-in, not the official image)"
    fi
    echo "$LOCAL"; exit 0
fi
if have_image "$OFFICIAL"; then
    say "$OFFICIAL present locally"
    echo "$OFFICIAL"; exit 0
fi

if [[ "${REPREX_NO_PULL:-}" != 1 ]]; then
    say "trying docker pull $OFFICIAL (timeout ${PULL_TIMEOUT} s)"
    if timeout "$PULL_TIMEOUT" docker pull -q "$OFFICIAL" >/dev/null 2>&1; then
        say "pulled $OFFICIAL in $((SECONDS - t0)) s"
        echo "$OFFICIAL"; exit 0
    fi
    say "pull failed (offline?); building $LOCAL from Debian packages instead"
fi

[[ $(id -u) -eq 0 ]] || die "no $OFFICIAL and not root: cannot debootstrap $LOCAL"
mkdir -p "$CACHE"

if [[ ! -s $TARBALL ]]; then
    export DEBIAN_FRONTEND=noninteractive
    if ! command -v debootstrap >/dev/null 2>&1; then
        say "installing debootstrap"
        apt-get install -y -q debootstrap >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null && apt-get install -y -q debootstrap >/dev/null; } \
            || die "apt-get install debootstrap failed"
    fi
    rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    say "debootstrap $SUITE into $rootfs (about a minute)"
    debootstrap --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates \
        "$SUITE" "$rootfs" >"$CACHE/debootstrap.log" 2>&1 \
        || die "debootstrap failed; see $CACHE/debootstrap.log"
    # Debian has no `python`; scripts and `docker run IMG python ...` expect one.
    ln -sf python3 "$rootfs/usr/bin/python"
    # Keep the image lean: apt caches and package lists are not needed at runtime.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
           "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/tmp/*
    say "debootstrap done after $((SECONDS - t0)) s; caching rootfs tarball"
    tar --numeric-owner -C "$rootfs" -cf "$TARBALL.part" .
    mv "$TARBALL.part" "$TARBALL"
    rm -rf "$rootfs"; trap - EXIT
else
    say "using cached rootfs $TARBALL"
fi

say "docker import -> $LOCAL"
docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "reprex offline base: debootstrap $SUITE minbase + python3" \
    "$TARBALL" "$LOCAL" >/dev/null || die "docker import failed"

docker run --rm --network none "$LOCAL" sh -c 'python3 --version && python --version' >&2 \
    || die "$LOCAL imported but python3/python do not run in it"

if ! have_image "$OFFICIAL"; then
    docker tag "$LOCAL" "$OFFICIAL"
    say "tagged $LOCAL also as $OFFICIAL (offline stand-in, not the official image)"
fi
say "ready after $((SECONDS - t0)) s"
echo "$LOCAL"
