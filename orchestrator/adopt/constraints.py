"""Poetry's version constraints in PEP 440 and PEP 508 terms, exactly.

Poetry reads a constraint the way poetry-core's ``parse_constraint`` does:
``^`` (caret) and ``~`` (tilde) ranges, ``*`` wildcards, bare versions meaning
``==``, comparison lists joined by commas or spaces, and ``||`` unions. Every
form but the union has an exact PEP 440 specifier; a union has none (a
specifier set is one intersection), so it is refused here and the caller names
the dependency. Python restrictions become markers, where ``or`` is allowed.

Upper bounds keep the precision written: ``^1.2`` is ``>=1.2,<2.0`` and
``^1.2.3`` is ``>=1.2.3,<2.0.0``, as poetry-core renders them, so a reviewer
can compare the two files line by line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_TOKEN = re.compile(r"\s*(\^|~=|~|===|==|!=|<=|>=|<|>|=)?\s*([^\s,<>=!~^|]+)\s*(?:,|\s|$)")
_PLATFORM = re.compile(r"^[A-Za-z0-9_.-]+$")


class ConstraintError(ValueError):
    """A constraint with no PEP 440 / PEP 508 form; the caller adds where it was."""

    def __init__(self, problem: str, hint: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.hint = hint


@dataclass(frozen=True, slots=True)
class Clause:
    """One PEP 440 comparison: ``op`` and the version text as written."""

    op: str
    version: str

    def __str__(self) -> str:
        return f"{self.op}{self.version}"


def specifier(constraint: str) -> str:
    """The PEP 440 specifier for a Poetry constraint; ``""`` when it allows any version.

    >>> specifier("^1.2.3")
    '>=1.2.3,<2.0.0'
    """
    return ",".join(str(clause) for clause in clauses(constraint))


def clauses(constraint: str) -> list[Clause]:
    """The comparisons a Poetry constraint (without ``||``) stands for, in order."""
    text = constraint.strip()
    if "|" in text:
        raise ConstraintError(
            f"{text!r} is a union ('||'), which one PEP 440 specifier cannot express",
            "use one range that covers the versions you need (e.g. \">=1.4,<3\")",
        )
    if text in ("", "*"):
        return []
    out: list[Clause] = []
    position = 0
    for match in _TOKEN.finditer(text):
        if match.start() != position:
            break
        position = match.end()
        out.extend(_translate(match.group(1) or "", match.group(2), text))
    if position != len(text):
        raise ConstraintError(f"cannot read the version constraint {text!r}",
                              "write it as PEP 440 (e.g. \">=1.2,<2\") or Poetry (\"^1.2\")")
    return out


def _translate(op: str, version: str, text: str) -> list[Clause]:
    if version == "*":
        if op in ("", "==", "="):
            return []
        raise ConstraintError(f"{text!r}: {op}* matches no version range",
                              "drop the constraint, or write a version after the operator")
    if op == "^":
        return _caret(version, text)
    if op == "~":
        return _tilde(version, text)
    if op in ("", "=", "=="):
        return [_checked(Clause("==", version), text)]
    if version.endswith(".*") and op not in ("!=",):
        raise ConstraintError(f"{text!r}: a wildcard only goes with == or !=",
                              f"write the range instead, e.g. \">={version[:-2]}\"")
    return [_checked(Clause(op, version), text)]


def _caret(version: str, text: str) -> list[Clause]:
    # poetry-core: the first non-zero part of the precision written may not change.
    release = _release(version, text)
    if len(release) == 1 or release[0] != 0:
        position = 0
    elif len(release) == 2 or release[1] != 0:
        position = 1
    else:
        position = 2
    return [_checked(Clause(">=", version), text),
            Clause("<", _bumped(release, position))]


def _tilde(version: str, text: str) -> list[Clause]:
    # poetry-core: ~1 allows the major series, ~1.2 and ~1.2.3 the minor one.
    release = _release(version, text)
    position = 0 if len(release) == 1 else 1
    return [_checked(Clause(">=", version), text),
            Clause("<", _bumped(release, position))]


def _release(version: str, text: str) -> tuple[int, ...]:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version).release
    except InvalidVersion as exc:
        raise ConstraintError(f"{text!r}: {version!r} is not a version",
                              "write a version such as 1.2.3 after ^ or ~") from exc


def _bumped(release: tuple[int, ...], position: int) -> str:
    parts = list(release) + [0] * (position + 1 - len(release))
    parts[position] += 1
    parts[position + 1:] = [0] * (len(parts) - position - 1)
    return ".".join(str(part) for part in parts)


def _checked(clause: Clause, text: str) -> Clause:
    from packaging.specifiers import InvalidSpecifier, Specifier

    try:
        Specifier(str(clause))
    except InvalidSpecifier as exc:
        raise ConstraintError(f"{text!r}: {str(clause)!r} is not a PEP 440 comparison",
                              "write a version such as 1.2.3 after the operator") from exc
    return clause


# -- markers -----------------------------------------------------------------------------


def python_marker(constraint: str) -> str | None:
    """A PEP 508 marker for a Poetry ``python = "..."`` restriction; None for any Python.

    ``||`` is allowed here, as markers have ``or``: ``"<3.8 || >=3.10"`` becomes
    ``python_version < "3.8" or python_version >= "3.10"``.
    """
    alternatives = [part.strip() for part in re.split(r"\|\|?", constraint)]
    rendered = []
    for alternative in alternatives:
        found = clauses(alternative)
        if not found:
            return None  # one branch admits every Python: so does the whole
        rendered.append(" and ".join(_python_comparison(c) for c in found))
    if len(rendered) == 1:
        return rendered[0]
    return " or ".join(f"({r})" if " and " in r else r for r in rendered)


def _python_comparison(clause: Clause) -> str:
    # python_version holds X.Y; a comparison with a patch release needs the full version.
    parts = clause.version.removesuffix(".*").split(".")
    variable = "python_full_version" if len(parts) > 2 else "python_version"
    return f'{variable} {clause.op} "{clause.version}"'


def platform_marker(platform: str) -> str:
    """``sys_platform == "linux"`` for Poetry's ``platform = "linux"`` (``||`` allowed)."""
    names = [part.strip() for part in re.split(r"\|\|?", platform)]
    for name in names:
        if not _PLATFORM.match(name):
            raise ConstraintError(f"platform {platform!r} is not a sys.platform value",
                                  "use names such as linux, darwin or win32, joined by ||")
    return " or ".join(f'sys_platform == "{name}"' for name in names)


def and_markers(markers: Sequence[str | None]) -> str | None:
    """Markers joined by ``and``, each parenthesized when it holds an ``or``."""
    present = [m.strip() for m in markers if m and m.strip()]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return " and ".join(f"({m})" if " or " in m else m for m in present)
