"""The platform a replay installs wheels for (Python X.Y, arch, glibc) and the pip flags that ask for it.

Kept apart from the downloads (reprex.replay.wheels): the docker backend's image choice
needs the arch names alone.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass

_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "armv8": "aarch64"}


def uname_machine(arch: str | None) -> str:
    """Docker/Go arch names (amd64, arm64) -> uname -m style (x86_64, aarch64)."""
    arch = (arch or "").strip().lower()
    return _ARCH_ALIASES.get(arch, arch)


@dataclass(frozen=True)
class Target:
    python_xy: str
    machine: str  # uname style: x86_64, aarch64
    glibc: str = "2.36"  # highest manylinux_2_N asked for in cross mode

    @property
    def same_as_host(self) -> bool:
        host_xy = f"{sys.version_info.major}.{sys.version_info.minor}"
        return (sys.platform.startswith("linux") and host_xy == self.python_xy
                and uname_machine(platform.machine()) == self.machine
                and platform.python_implementation() == "CPython")

    @property
    def key(self) -> str:
        return f"py{self.python_xy}-{self.machine}-{'host' if self.same_as_host else 'glibc' + self.glibc}"

    def pip_target_args(self) -> list[str]:
        nodot = self.python_xy.replace(".", "")
        args = ["--only-binary=:all:", "--python-version", self.python_xy, "--implementation", "cp",
                "--abi", f"cp{nodot}"]
        for tag in platform_tags(self.machine, self.glibc):
            args += ["--platform", tag]
        return args


def platform_tags(machine: str, glibc: str = "2.36") -> list[str]:
    """Every Linux platform tag a glibc-`glibc` `machine` system accepts, newest first.

    pip does not expand `manylinux_2_N` tags to older ones by itself, so list them all.
    """
    try:
        top = int(str(glibc).split(".")[1])
    except (IndexError, ValueError):
        top = 17
    tags = [f"manylinux_2_{n}_{machine}" for n in range(top, 4, -1)]
    legacy = {"x86_64": ["manylinux2014", "manylinux2010", "manylinux1"], "i686": ["manylinux2014", "manylinux2010",
                                                                                  "manylinux1"]}
    tags += [f"{name}_{machine}" for name in legacy.get(machine, ["manylinux2014"])]
    tags.append(f"linux_{machine}")
    return tags
