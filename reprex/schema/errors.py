"""The exceptions the generated validator (bundle_v1.py) raises, with fastjsonschema's names and
constructor so its code runs unchanged without fastjsonschema installed."""

from __future__ import annotations

import re

_SPLIT = re.compile(r"[.\[\]]+")


class JsonSchemaValueException(ValueError):
    def __init__(self, message, value=None, name=None, definition=None, rule=None):
        super().__init__(message)
        self.message, self.value, self.name, self.definition, self.rule = message, value, name, definition, rule

    @property
    def where(self) -> str:
        """The failing value's path as `files/skipped/0/path` ("(top)" for the manifest itself)."""
        parts = [p for p in _SPLIT.split(self.name or "") if p][1:]  # drop the leading "data"
        return "/".join(parts) or "(top)"

    @property
    def reason(self) -> str:
        """The message without its leading `data.x.y `, which `where` already says."""
        name = self.name or ""
        return self.message[len(name) + 1:] if name and self.message.startswith(name + " ") else self.message


class JsonSchemaValuesException(ValueError):
    """Raised only with fast_fail off, which the generator does not use; here so the code imports."""

    def __init__(self, errors):
        self.errors = errors
        super().__init__("; ".join(e.message for e in errors))
