"""A bundle before it is sealed: the one place a bundle's README, redactions list and id are made.

Capture assembles a Draft (reprex.capture.pipeline.assemble); extract, check-serve and
the pytest plugin change that draft (or a Draft opened from a finished bundle) and seal
it once. Sealing renders README.md from the final manifest, scrubs it with the same
redactor that scrubbed the rest, lists the redactions and sets the content id, so no
caller re-renders, re-scrubs or re-lists after the fact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from reprex.bundle import Bundle, canonical_json


@dataclass
class Draft:
    manifest: dict
    files: dict[str, bytes]  # every entry but reprex.json and README.md
    redactor: object  # the reprex.redact.Redactor that scrubbed what is in here
    # Redactions a bundle this draft was opened from already lists; seal appends this redactor's.
    prior_redactions: list[dict] = field(default_factory=list)
    # Lines shown under the README's title (check-serve's hint), scrubbed with the rest.
    readme_notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, bundle: Bundle, redactor) -> "Draft":
        """A finished bundle, opened for changes: a deep copy, its redactions kept as prior."""
        manifest = json.loads(canonical_json(bundle.manifest))
        prior = manifest.pop("redactions", None)
        files = {k: v for k, v in bundle.files.items() if k != "README.md"}
        return cls(manifest=manifest, files=files, redactor=redactor,
                   prior_redactions=list(prior) if isinstance(prior, list) else [])

    def add(self, key: str, value, where: str = "reprex.json") -> None:
        """An extra manifest key, scrubbed; never overrides one already there (a contract key)."""
        self.manifest.setdefault(key, self.redactor.obj(value, where))


def seal(draft: Draft, redactor=None) -> Bundle:
    """Render README.md once from the final manifest, scrub it, list the redactions, set the id."""
    from reprex.render import render

    red = draft.redactor if redactor is None else redactor
    manifest = draft.manifest

    def listed() -> list[dict]:
        return list(draft.prior_redactions) + red.preview()

    manifest["redactions"] = listed()
    bundle = Bundle(manifest=manifest, files=dict(draft.files))
    readme = render(bundle, venue="gh")
    if draft.readme_notes:
        head, _, rest = readme.partition("\n")
        readme = f"{head}\n\n" + "\n".join(draft.readme_notes) + f"\n{rest}"
    # The README is made from redacted parts; scrub once more so nothing can slip through.
    bundle.files["README.md"] = red.bytes(readme.encode(), "README.md")
    manifest["redactions"] = listed()
    return bundle.finalize()
