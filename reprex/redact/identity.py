"""This machine's identity in text: home directory, hostname and user name become
``<home>``, ``<hostname>``, ``<user>`` (home first, so ``/home/alice/x`` -> ``<home>/x``).
Common names (``root``, ``localhost``, ``ubuntu``) are left alone: they identify nobody.
"""

from __future__ import annotations

import os
import re

from reprex.redact.text import HOME_PLACEHOLDER, HOSTNAME_PLACEHOLDER, PLACEHOLDER_SRC, USER_PLACEHOLDER, lower

_COMMON_USERNAMES = frozenset(
    {
        "root", "admin", "administrator", "user", "users", "ubuntu", "debian",
        "runner", "test", "tests", "guest", "nobody", "app", "dev", "developer",
        "docker", "jenkins", "vagrant", "home", "hostname", "redacted", "python",
        "vscode", "codespace", "node", "daemon", "system", "default", "local",
        "main", "master", "build", "worker", "ray", "data", "model", "ec2-user",
        "centos", "fedora", "alpine", "www-data", "postgres", "mysql", "git",
        "runneradmin", "circleci", "gitpod", "colab", "kaggle", "nvidia", "jovyan",
    }
)
_COMMON_HOSTNAMES = frozenset(
    {"localhost", "localhost.localdomain", "ubuntu", "debian", "raspberrypi", "host", "unknown"}
)
_NAMES = {"home": HOME_PLACEHOLDER, "hostname": HOSTNAME_PLACEHOLDER, "username": USER_PLACEHOLDER}


class Identity:
    """One lower-case pattern for placeholders (kept), home, hostname and user name."""

    def __init__(self, hostname: str | None, username: str | None, home: str | None) -> None:
        if hostname is None:
            try:
                import socket

                hostname = socket.gethostname()
            except Exception:
                hostname = ""
        if username is None:
            try:
                import getpass

                username = getpass.getuser()
            except Exception:
                username = ""
        if home is None:
            try:
                from pathlib import Path

                home = str(Path.home())
            except Exception:
                home = ""
        self.hostname = hostname or ""
        self.username = username or ""
        self.home = home or ""
        self.kind: dict[str, str] = {}
        self.pattern = self._build()

    def _build(self) -> re.Pattern[str] | None:
        """No named groups: they would cost the engine its fast first-char scan;
        :meth:`replace` tells the alternatives apart by the matched text."""
        alts: list[str] = []
        home = self.home.rstrip("/\\")
        if len(home) >= 2:
            variants = {home}
            if os.path.isabs(home):  # e.g. /Users/x vs /private/var/... via symlinks
                try:
                    real = os.path.realpath(home)
                    if len(real) >= 2:
                        variants.add(real)
                except (OSError, ValueError):
                    pass
            for h in list(variants):
                if "\\" in h:
                    variants.add(h.replace("\\", "/"))
                    variants.add(h.replace("\\", "\\\\"))
            lows = sorted({lower(v) for v in variants}, key=len, reverse=True)
            self.kind.update(dict.fromkeys(lows, "home"))
            alts.append(r"(?:%s)(?![a-z0-9_.-])" % "|".join(re.escape(v) for v in lows))
        host = self.hostname
        hosts = []
        if (
            len(host) >= 3
            and host.lower() not in _COMMON_HOSTNAMES
            and not re.fullmatch(r"[\d.]+|[0-9a-fA-F:]*:[0-9a-fA-F:]*", host)
        ):
            hosts.append(host)
            short = host.split(".")[0]
            if short != host and len(short) >= 3 and short.lower() not in _COMMON_HOSTNAMES:
                hosts.append(short)
        if hosts:
            lows = [lower(h) for h in hosts]
            for h in lows:
                self.kind.setdefault(h, "hostname")
            alts.append(r"(?:%s)(?![a-z0-9])" % "|".join(re.escape(h) for h in lows))
        user = self.username
        if len(user) >= 3 and user.lower() not in _COMMON_USERNAMES:
            self.kind.setdefault(lower(user), "username")
            alts.append(r"%s(?![a-z0-9])" % re.escape(lower(user)))
        if not alts:
            return None
        return re.compile(r"%s|%s" % (PLACEHOLDER_SRC, "|".join(alts)))

    def replace(self, s: str, low: str, where: str, counts: dict) -> str:
        """``s`` with this machine's identity replaced (``low`` is its lower-cased twin)."""
        if self.pattern is None:
            return s
        # Inline loop: home paths can occur tens of thousands of times in a log.
        found = {"home": 0, "hostname": 0, "username": 0}
        kinds = self.kind
        parts: list[str] = []
        last = 0
        for m in self.pattern.finditer(low):
            ident = kinds.get(m.group())
            if ident is None:  # a placeholder
                continue
            st = m.start()
            if ident != "home" and st and low[st - 1].isalnum():
                continue  # hostname / user name only as a whole word
            parts.append(s[last:st])
            parts.append(_NAMES[ident])
            last = m.end()
            found[ident] += 1
        if parts:
            parts.append(s[last:])
            s = "".join(parts)
            for kind, k in found.items():
                if k:
                    counts[(kind, where)] = counts.get((kind, where), 0) + k
        return s
