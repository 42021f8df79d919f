"""Project-name normalization (PEP 503), kept import-light for the CLI start."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[-_.]+")


def normalize(name: str) -> str:
    """PEP 503 normalized form: lowercase, runs of -_. become one dash."""
    return _SEPARATORS.sub("-", name).lower()
