"""CVSS base scores from vectors, and the qualitative band a score falls in.

OSV advisories carry a CVSS vector (``CVSS:3.1/AV:N/AC:L/...``), not a
score. Versions 3.0/3.1 and 2.0 are scored here with the specifications'
base-score formulas (FIRST, CVSS v3.1 section 7.1; v2 section 3.2.1); a
CVSS 4.0 vector needs the specification's table of macro vectors, which is
not carried, so it yields no score and the advisory's database severity (or
"unknown") is used instead.
"""

from __future__ import annotations

import math
from typing import Literal

Band = Literal["none", "low", "medium", "high", "critical"]
BANDS: tuple[Band, ...] = ("none", "low", "medium", "high", "critical")

_V3 = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}
_V3_PR = {"U": {"N": 0.85, "L": 0.62, "H": 0.27}, "C": {"N": 0.85, "L": 0.68, "H": 0.5}}
_V2 = {
    "AV": {"L": 0.395, "A": 0.646, "N": 1.0},
    "AC": {"H": 0.35, "M": 0.61, "L": 0.71},
    "Au": {"M": 0.45, "S": 0.56, "N": 0.704},
    "C": {"N": 0.0, "P": 0.275, "C": 0.660},
    "I": {"N": 0.0, "P": 0.275, "C": 0.660},
    "A": {"N": 0.0, "P": 0.275, "C": 0.660},
}


def band(score: float) -> Band:
    """The CVSS v3 qualitative rating of *score* (v2 scores are rated on the same scale)."""
    if score == 0:
        return "none"
    if score < 4.0:
        return "low"
    if score < 7.0:
        return "medium"
    if score < 9.0:
        return "high"
    return "critical"


def base_score(vector: str) -> float | None:
    """The base score of a CVSS 3.x or 2.0 vector; None for 4.0 or a malformed vector."""
    text = vector.strip()
    if text.startswith(("CVSS:3.0/", "CVSS:3.1/")):
        return _v3(_metrics(text.split("/", 1)[1]))
    if text.startswith("CVSS:"):
        return None  # 4.0, or a version this does not know
    if text.startswith("AV:"):
        return _v2(_metrics(text))
    return None


def _metrics(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in text.split("/"):
        key, sep, value = part.partition(":")
        if sep:
            found[key] = value
    return found


def _v3(metrics: dict[str, str]) -> float | None:
    try:
        scope = metrics["S"]
        av, ac, ui = (_V3[k][metrics[k]] for k in ("AV", "AC", "UI"))
        pr = _V3_PR[scope][metrics["PR"]]
        c, i, a = (_V3[k][metrics[k]] for k in ("C", "I", "A"))
    except KeyError:
        return None
    iss = 1 - (1 - c) * (1 - i) * (1 - a)
    impact = 6.42 * iss if scope == "U" else 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15
    if impact <= 0:
        return 0.0
    exploitability = 8.22 * av * ac * pr * ui
    total = impact + exploitability if scope == "U" else 1.08 * (impact + exploitability)
    return _roundup(min(total, 10.0))


def _roundup(value: float) -> float:
    """CVSS v3.1's Roundup: the smallest one-decimal number >= value, free of float noise."""
    scaled = round(value * 100_000)
    if scaled % 10_000 == 0:
        return scaled / 100_000
    return (math.floor(scaled / 10_000) + 1) / 10.0


def _v2(metrics: dict[str, str]) -> float | None:
    try:
        av, ac, au = (_V2[k][metrics[k]] for k in ("AV", "AC", "Au"))
        c, i, a = (_V2[k][metrics[k]] for k in ("C", "I", "A"))
    except KeyError:
        return None
    impact = 10.41 * (1 - (1 - c) * (1 - i) * (1 - a))
    exploitability = 20 * av * ac * au
    factor = 0.0 if impact == 0 else 1.176
    return round((0.6 * impact + 0.4 * exploitability - 1.5) * factor, 1)
