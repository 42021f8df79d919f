"""Secrets written into workspace.yaml or a pyproject.toml (a `[tool.orchestrator] env` too).

What is looked for: tokens with a known shape (PyPI ``pypi-AgE...``,
GitHub ``ghp_``/``gho_``/``ghu_``/``ghs_``/``ghr_``/``github_pat_``, AWS
access key ids ``AKIA...``/``ASIA...``), private key blocks, URLs carrying a
password, and values of keys named like a secret (password, secret, token,
api key, credential) that look random: at least 12 characters, no spaces,
not a reference such as ``${VAR}``, a path or a URL, and at least 3 bits of
entropy per character.

Values are found through the parsed document, so each is named by its key
path (``tool.orchestrator.env.API_TOKEN``); the raw text is scanned too, for
what hides in comments. A secret is never reported whole: ``masked`` keeps
the public prefix of its format (``ghp_``) or its first two characters, and
the URL form keeps everything but the password.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

_TOKENS: tuple[tuple[str, re.Pattern[str], int], ...] = (
    # (kind, pattern, how many leading characters are the format's public prefix)
    ("PyPI API token", re.compile(r"pypi-AgE[A-Za-z0-9_-]{16,}"), 5),
    ("GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"), 4),
    ("GitHub token", re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"), 11),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), 4),
    ("private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"), 0),
)
_URL_PASSWORD = re.compile(r"\b([a-z][a-z0-9+.-]*://[^/\s:@'\"]+):([^/\s@'\"]+)@", re.IGNORECASE)
_SECRET_KEY = re.compile(r"pass(word|wd)?|secret|token|api[-_]?key|private[-_]?key|credential",
                         re.IGNORECASE)
_REFERENCE = re.compile(r"^\$\{?[A-Za-z_]|^\{\{|^<[^>]*>$|^\*+$|^(/|\./|~/|[a-z]+://)")


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret found in *file*, at *line* and (when it is a value) *key*."""

    file: Path
    line: int
    key: str | None
    kind: str
    masked: str


def scan_file(path: Path) -> list[Secret]:
    """Every secret in a workspace.yaml or pyproject.toml; unreadable files have none."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    values = _values(text, path.suffix)
    found: dict[str, Secret] = {}
    for key, value in values:
        for kind, secret, masked in _in_value(key, value):
            found.setdefault(secret, Secret(path, _line_of(text, secret), key, kind, masked))
    for kind, secret, masked in _in_text(text):  # comments, and what parsing could not read
        found.setdefault(secret, Secret(path, _line_of(text, secret), None, kind, masked))
    return sorted(found.values(), key=lambda s: (s.line, s.key or ""))


def secret_in(key: str, value: str) -> tuple[str, str] | None:
    """(kind, masked form) of the first secret in *value* stored under *key*, else None."""
    for kind, _secret, masked in _in_value(key, value):
        return kind, masked
    return None


def _values(text: str, suffix: str) -> list[tuple[str, str]]:
    """(key path, string value) for every string in the document."""
    try:
        if suffix == ".toml":
            import tomllib

            data: object = tomllib.loads(text)
        else:
            import yaml

            data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except Exception:  # an unparsable file is the loader's problem to report, not ours
        return []
    return list(_walk(data, ""))


def _walk(data: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield from _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _walk(value, f"{path}[{i}]")
    elif isinstance(data, str):
        yield path, data


def _in_text(text: str) -> Iterator[tuple[str, str, str]]:
    for kind, pattern, prefix in _TOKENS:
        for match in pattern.finditer(text):
            yield kind, match.group(0), _mask(match.group(0), prefix)
    for match in _URL_PASSWORD.finditer(text):
        if not _REFERENCE.match(match.group(2)):
            yield "password in a URL", match.group(0), f"{match.group(1)}:****@"


def _in_value(key: str, value: str) -> Iterator[tuple[str, str, str]]:
    found = list(_in_text(value))
    yield from found
    name = re.split(r"[.\[]", key)[-1] if key else ""
    if not found and _SECRET_KEY.search(name) and _looks_random(value):
        yield f"secret in a key named {name!r}", value, _mask(value, 2)


def _looks_random(value: str) -> bool:
    if len(value) < 12 or any(c.isspace() for c in value) or _REFERENCE.match(value):
        return False
    counts = Counter(value)
    entropy = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    return entropy >= 3.0


def _mask(secret: str, prefix: int) -> str:
    """The format's public prefix (never more than a third of the secret), then an ellipsis."""
    if secret.startswith("-----BEGIN"):
        return secret  # the header line is not the key
    keep = min(prefix, len(secret) // 3)
    return f"{secret[:keep]}... ({len(secret)} characters)"


def _line_of(text: str, secret: str) -> int:
    at = text.find(secret)
    if at < 0:  # a value that spans lines, or was unescaped by the parser: its start
        at = text.find(secret[:12])
    return text.count("\n", 0, at) + 1 if at >= 0 else 1
