"""`reprex cache info|prune`: last use comes from the items' lock files; held items, images a
container uses, and recent items stay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from reprex.cache import inventory, prune
from reprex.fsutil import hold_in_use, lock_for, locked, use_lock

DAY = 86400


def make_item(root: Path, name: str, size: int, age_days: float) -> Path:
    """A cached dir as the backends leave it: built under its lock, used `age_days` ago."""
    item = root / name
    with locked(lock_for(item)):
        item.mkdir(parents=True)
        (item / "payload.bin").write_bytes(b"x" * size)
    stamp = time.time() - age_days * DAY
    os.utime(lock_for(item), (stamp, stamp))
    return item


def test_lock_files_are_per_item_and_record_last_use(tmp_path):
    """Env and wheel dir names have dots: each still gets its own lock (not `py3.lock` for all)."""
    a, b = tmp_path / "py3.11-aaaa", tmp_path / "py3.11-bbbb"
    assert lock_for(a) != lock_for(b) and lock_for(a).name == "py3.11-aaaa.lock"
    with locked(lock_for(a)):
        pass
    old = time.time() - 10 * DAY
    os.utime(lock_for(a), (old, old))
    with locked(lock_for(a)):
        pass
    assert time.time() - lock_for(a).stat().st_mtime < 60


def test_prune_removes_unused_items_and_keeps_recent_and_held_ones(tmp_path):
    cache = tmp_path / "cache"
    old_env = make_item(cache / "envs", "py3.11-0ld0", 1000, age_days=40)
    new_env = make_item(cache / "envs", "py3.11-new0", 10, age_days=1)
    held_env = make_item(cache / "envs", "py3.11-he1d", 10, age_days=40)
    old_wheels = make_item(cache / "wheels", "abc-py3.11-x86_64-host-binary", 500, age_days=90)
    marker = cache / "validated" / "ab" / "ab12"
    marker.parent.mkdir(parents=True)
    marker.touch()
    os.utime(marker, (time.time() - 40 * DAY,) * 2)
    resolved = cache / "resolved" / "cd" / "cd34.json"  # a --with resolution (replay/with_resolve.py)
    resolved.parent.mkdir(parents=True)
    resolved.write_text('{"lines": null}')
    os.utime(resolved, (time.time() - 40 * DAY,) * 2)

    items, _ = inventory(cache, docker=False)
    by_name = {i.name: i for i in items}
    assert by_name["py3.11-0ld0"].size == 1000 and by_name["1 schema checks"].kind == "validated"
    assert by_name["1 --with resolutions"].kind == "resolved" and by_name["1 --with resolutions"].size == 15

    with hold_in_use(lock_for(held_env)):  # a replay is using it right now, as the backends hold it
        dry = prune(30 * DAY, dry_run=True, cache=cache, docker=False)
        assert {i.name for i in dry.removed} == {"py3.11-0ld0", "abc-py3.11-x86_64-host-binary", "1 schema checks",
                                                 "1 --with resolutions"}
        assert old_env.exists() and marker.exists()  # a dry run removes nothing
        result = prune(30 * DAY, cache=cache, docker=False)
    assert result.freed == 1515
    assert not old_env.exists() and not old_wheels.exists()
    assert lock_for(old_env).exists() and use_lock(lock_for(old_env)).exists()  # kept: waiters rely on them
    assert not marker.exists() and not resolved.exists()
    assert new_env.exists() and held_env.exists()
    assert dict((i.name, why) for i, why in result.kept) == {"py3.11-new0": "used recently", "py3.11-he1d": "in use"}
    # being built: the build lock alone keeps it too
    with locked(lock_for(new_env)):
        assert {i.name for i in prune(0, cache=cache, docker=False).removed} == {"py3.11-he1d"}
    # nothing held now, and --older-than 0 takes everything
    assert {i.name for i in prune(0, cache=cache, docker=False).removed} == {"py3.11-new0"}
    assert not [p for p in (cache / "envs").iterdir() if p.is_dir()]


def test_prune_removes_old_env_images_but_not_one_a_container_uses(tmp_path, docker_client, base_image):
    from reprex.replay.docker import connect

    cache = tmp_path / "cache"
    keys = [f"test{uuid.uuid4().hex[:12]}" for _ in range(3)]
    tags = [f"reprex-env:{k}" for k in keys]
    containers = []
    try:
        for key, tag in zip(keys, tags):  # real images as the backend labels them, each its own layer
            dockerfile = f"FROM {base_image}\nRUN echo {key} > /key\nLABEL org.reprex=1\n"
            docker_client.images.build(fileobj=__import__("io").BytesIO(dockerfile.encode()), tag=tag, rm=True)
        (cache / "docker").mkdir(parents=True)
        for key, age in zip(keys, (40, 40, 1)):  # last used 40, 40 and 1 days ago
            lock = cache / "docker" / f"{key}.lock"
            lock.touch()
            os.utime(lock, (time.time() - age * DAY,) * 2)
        containers.append(docker_client.containers.create(tags[1], ["true"], labels={"org.reprex.test": "cache"}))

        engine = connect()
        result = prune(30 * DAY, cache=cache, engine=engine)
        removed = {i.name for i in result.removed if i.kind == "image"}
        kept = {i.name: why for i, why in result.kept if i.kind == "image"}
        assert removed == {tags[0]}
        assert kept[tags[1]] == "used by a container" and kept[tags[2]] == "used recently"
        assert engine.image(tags[0]) is None and engine.image(tags[1]) and engine.image(tags[2])
        with hold_in_use(cache / "docker" / f"{keys[2]}.lock"):  # a replay using an old image keeps it
            os.utime(cache / "docker" / f"{keys[2]}.lock", (time.time() - 40 * DAY,) * 2)
            result = prune(30 * DAY, cache=cache, engine=engine)
            assert dict((i.name, why) for i, why in result.kept if i.kind == "image")[tags[2]] == "in use"
            assert engine.image(tags[2])
        assert all(i.size > 0 for i in result.removed)  # its own layer, not the base's
    finally:
        for c in containers:
            c.remove(force=True)
        for tag in tags:
            try:
                docker_client.images.remove(tag, force=True)
            except Exception:
                pass


def test_cache_cli_info_and_prune(tmp_path):
    cache = tmp_path / "cache"
    make_item(cache / "envs", "py3.11-0ld0", 100, age_days=40)
    env = {**os.environ, "REPREX_CACHE_DIR": str(cache), "DOCKER_HOST": f"unix://{tmp_path}/no.sock"}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "reprex", "cache", *args], env=env, capture_output=True,
                              text=True, timeout=60)

    info = json.loads(cli("info", "--json").stdout)
    assert info["cache"] == str(cache) and [i["name"] for i in info["items"]] == ["py3.11-0ld0"]
    assert info["docker"].startswith("no Docker daemon reachable")
    dry = json.loads(cli("prune", "--dry-run", "--json").stdout)
    assert [i["name"] for i in dry["removed"]] == ["py3.11-0ld0"] and dry["freed_bytes"] == 100
    assert (cache / "envs" / "py3.11-0ld0").exists()
    human = cli("prune", "--older-than", "60")
    assert human.returncode == 0 and "removed 0 item(s)" in human.stdout and "1 used in the last 60 days" in human.stdout
    assert "docker images not looked at" in human.stderr
    done = cli("prune")
    assert done.returncode == 0 and "removed local env py3.11-0ld0 (100 B, used 40 days ago)" in done.stdout
    assert not (cache / "envs" / "py3.11-0ld0").exists()
    bad = cli("prune", "--older-than", "-1", "--json")
    assert bad.returncode == 2 and json.loads(bad.stdout)["exit"] == 2
