"""`packages` probe: every installed distribution with its version and where it came from.

Pins alone do not rebuild an environment: an editable checkout (any kind: reprex.editables),
a VCS commit or a local wheel (PEP 610 direct_url.json) and the `+cu121` local version decide
what replay must install, so provenance is kept per distribution. Facts come from the target interpreter.
"""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from reprex.pins import canonical as normalize

from . import _proc, _target_script


def local_version(version: str | None) -> str | None:
    """The PEP 440 local label: '2.3.1+cu121' -> 'cu121'."""
    if version and "+" in version:
        return version.split("+", 1)[1]
    return None


def provenance(direct_url: dict | None) -> dict:
    """Summarize a PEP 610 direct_url.json document."""
    prov = {"editable": False, "vcs": None, "url": None, "local_path": None, "archive_hash": None}
    if not isinstance(direct_url, dict):
        return prov
    url = direct_url.get("url")
    prov["url"] = url
    if isinstance(url, str) and url.startswith("file:"):
        prov["local_path"] = unquote(urlparse(url).path) or None
    dir_info = direct_url.get("dir_info")
    if isinstance(dir_info, dict):
        prov["editable"] = bool(dir_info.get("editable", False))
    vcs_info = direct_url.get("vcs_info")
    if isinstance(vcs_info, dict):
        prov["vcs"] = {
            "vcs": vcs_info.get("vcs"),
            "commit_id": vcs_info.get("commit_id"),
            "requested_revision": vcs_info.get("requested_revision"),
        }
    archive_info = direct_url.get("archive_info")
    if isinstance(archive_info, dict):
        hashes = archive_info.get("hashes")
        prov["archive_hash"] = archive_info.get("hash") or (
            next(iter(f"{k}={v}" for k, v in sorted(hashes.items())), None) if isinstance(hashes, dict) else None
        )
    return prov


def summarize(dists: list[dict]) -> list[dict]:
    """Normalize raw distribution records; the first of several same-named ones wins (as import does)."""
    by_name: dict[str, dict] = {}
    for dist in dists:
        name = dist.get("name")
        if not name:
            continue
        key = normalize(str(name))
        version = dist.get("version")
        if key in by_name:
            by_name[key]["shadowed"].append({"version": version, "location": dist.get("location")})
            continue
        prov = provenance(dist.get("direct_url"))
        editable = dist.get("editable")
        if isinstance(editable, dict):  # reprex.editables.annotate: any kind of development install
            prov = {**prov, "editable": True, "editable_kind": editable.get("kind"),
                    "local_path": prov["local_path"] or editable.get("root")}
        by_name[key] = {
            "name": name,
            "normalized_name": key,
            "version": version,
            "local_version": local_version(version),
            "provenance": prov,
            "installer": dist.get("installer"),
            "requires": list(dist.get("requires") or []),
            "location": dist.get("location"),
            "shadowed": [],
        }
    return [by_name[k] for k in sorted(by_name)]


def probe(ctx) -> dict:
    raw = (ctx.target_facts or {}).get("distributions")
    source, note = "target", None
    if raw is None:
        if _proc.same_interpreter(ctx.python_executable):
            raw, source = _target_script.distributions(), "process"
        else:
            try:
                raw, source = _proc.query_target(ctx, "distributions"), "subprocess"
            except Exception as exc:
                raw, source = _target_script.distributions(), "process"
                note = f"could not query {ctx.python_executable}: {type(exc).__name__}: {exc}"
    from reprex.editables import annotate

    sys_path = ((ctx.target_facts or {}).get("python") or {}).get("sys_path") or ()
    value = {"source": source, "distributions": summarize(annotate(raw, sys_path))}
    if note:
        value["note"] = note
    return value
