"""workspace.yaml as ``init`` writes it: the keys in README order, values quoted safely.

The text is written by hand (not ``yaml.dump``) so that it reads like the
README's example; it is then parsed back and compared with the values, so a
quoting mistake here can never write a manifest that means something else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.models import IndexSpec

_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./*-]*$")


@dataclass(frozen=True, slots=True)
class Manifest:
    name: str
    python: str
    platforms: tuple[str, ...]
    indexes: tuple[IndexSpec, ...]
    members: tuple[str, ...]
    exclude: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "version": 1, "name": self.name, "python": self.python,
            "platforms": list(self.platforms),
            "indexes": [{"name": i.name, "url": i.url} for i in self.indexes],
            "members": list(self.members),
        }
        if self.exclude:
            data["exclude"] = list(self.exclude)
        return data

    def render(self, origin: str) -> str:
        """The manifest text; *origin* says what it was made from, in a comment."""
        lines = [
            f"# Written by `orchestrator init` from {origin}; see README.md, \"workspace.yaml\".",
            "version: 1",
            f"name: {_scalar(self.name)}",
            f"python: {json.dumps(self.python)}",
            f"platforms: {_flow(self.platforms)}",
            "indexes:                # searched in order; a package comes from the first "
            "that has it",
            *(f"  - {{name: {_scalar(i.name)}, url: {_scalar(i.url)}}}" for i in self.indexes),
            "members:",
            *(f"  - {_scalar(m)}" for m in self.members),
        ]
        if self.exclude:
            lines += ["exclude:", *(f"  - {_scalar(e)}" for e in self.exclude)]
        text = "\n".join(lines) + "\n"
        _check_round_trip(text, self.as_dict())
        return text


def _scalar(value: str) -> str:
    # JSON strings are YAML strings; a plain scalar only where YAML cannot misread it.
    reserved = ("yes", "no", "true", "false", "null", "on", "off", "y", "n", "~")
    if (_PLAIN.match(value) and value.lower() not in reserved
            and not re.fullmatch(r"[0-9.eE+-]+", value)):
        return value
    return json.dumps(value)


def _flow(values: Sequence[str]) -> str:
    return "[" + ", ".join(_scalar(v) for v in values) + "]"


def _check_round_trip(text: str, expected: dict[str, object]) -> None:
    import yaml

    parsed = yaml.safe_load(text)
    if parsed != expected:  # a bug here, not a user error: fail loudly
        raise AssertionError(f"workspace.yaml rendering changed its meaning: {parsed!r}")
