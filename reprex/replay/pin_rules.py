"""What of a bundle's pins the host will fetch or install: the requirement lines as a stranger's input.

Replay (both backends' wheels), lock and the pytest plugin apply these same rules before pip runs:

* every line is checked first (check_bundle_requirements): only `name==version` (extras
  and environment markers allowed) and `name @ https://...` / `name @ git+https://...`
  direct references; option lines, `-e`, `-r`, `file:` URLs and local paths are refused
  (InfraError) before pip runs;
* a `name @ https://...whl` pin is downloaded from the address the bundle names, so it is
  fetched only when the user grants it (`--allow-urls`, check_url_grant); without the grant
  the bundle is env-incompatible, naming the hosts;
* a git or sdist reference (source_reference) has no wheel and would be built: never on the host.
"""

from __future__ import annotations

from reprex.replay.base import MAX_PINS, EnvIncompatible, InfraError

REFUSED = "only name==version pins and https direct references are installed"


def check_bundle_requirement(line: str):
    """The parsed requirement if `line` (from a bundle's requirements.txt) is one we install:
    `name==version` (extras, markers allowed) or `name @ https://...` / `name @ git+https://...`.
    Anything else (options, -e/-r, file: or local paths, ranges, other schemes) -> InfraError."""
    from urllib.parse import urlsplit

    from packaging.requirements import InvalidRequirement, Requirement

    shown = line if len(line) <= 200 else line[:200] + "..."
    refused = InfraError(f"refusing requirement line {shown!r} from the bundle: {REFUSED}")
    text = line.strip()
    if not text or not text[0].isalnum() or not text.isprintable():
        raise refused
    try:
        req = Requirement(text)
    except InvalidRequirement:
        raise refused from None
    if req.url is not None:
        url = req.url
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in ("https", "git+https") or req.specifier:
            raise refused
        try:
            parts = urlsplit(url[len("git+"):] if scheme == "git+https" else url)
        except ValueError:
            raise refused from None
        if not parts.hostname or any(c.isspace() for c in url):
            raise refused
        return req
    specs = list(req.specifier)
    if len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
        raise refused
    return req


def check_bundle_requirements(lines: list[str]) -> None:
    if len(lines) > MAX_PINS:
        raise InfraError(f"refusing the bundle: its requirements.txt has {len(lines)} pins, over the "
                         f"{MAX_PINS} a replay installs")
    for line in lines:
        check_bundle_requirement(line)


ALLOW_URLS = "--allow-urls (pytest: --reprex-allow-urls)"


def url_hosts(lines: list[str]) -> list[str]:
    """The hosts (with ports) that the bundle's `name @ https://...whl` pins would make this
    machine download from: the only lines fetched by URL (git and sdist references are never
    fetched; they have no wheel, see fetch_pins)."""
    from urllib.parse import urlsplit

    hosts: list[str] = []
    for line in lines:
        req = check_bundle_requirement(line)
        if req.url is None or source_reference(line):
            continue
        parts = urlsplit(req.url)
        try:
            port = parts.port
        except ValueError:
            port = None
        host = f"{parts.hostname}:{port}" if port else str(parts.hostname)
        if host not in hosts:
            hosts.append(host)
    return hosts


def check_url_grant(lines: list[str], allow_urls: bool) -> None:
    """A URL pin makes the host open a connection to an address a stranger chose (SSRF): only
    the user's --allow-urls grants that; without it the bundle is env-incompatible."""
    if allow_urls:
        return
    hosts = url_hosts(lines)
    if hosts:
        named = ", ".join(hosts[:5]) + (f" and {len(hosts) - 5} more" if len(hosts) > 5 else "")
        raise EnvIncompatible(f"the bundle's `name @ https://...` pins would make this machine download from "
                              f"addresses the bundle names ({named}); only the user grants that, with {ALLOW_URLS}")


def source_reference(line: str) -> bool:
    """A direct reference that is not a wheel (a git repository, an sdist archive): pip
    would build it, running its code, to get a wheel."""
    from urllib.parse import urlsplit

    req = check_bundle_requirement(line)
    if req.url is None:
        return False
    if req.url.lower().startswith("git+"):
        return True
    return not urlsplit(req.url).path.lower().endswith(".whl")
