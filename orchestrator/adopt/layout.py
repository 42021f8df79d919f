"""The shape of the workspace: which directories are members, their globs, kinds and Python.

Each decision comes with its reason, which ``init`` prints, so a reviewer can
see why a member is a service or why the workspace targets Python 3.10.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from orchestrator.errors import WorkspaceError
from orchestrator.models import MemberKind

PYTHON_MINORS = range(9, 15)  # 3.9 .. 3.14
DEFAULT_PYTHON = "3.11"  # workspace.yaml's own default
SERVICE_PARENTS = ("services", "apps")
_SKIP_DIRS = frozenset({"tests", "test", "node_modules", "build", "dist", "__pycache__"})


@dataclass(frozen=True, slots=True)
class Kind:
    """A member's inferred kind, why, and the container command when it needs one."""

    kind: MemberKind
    reason: str
    command: tuple[str, ...] | None = None  # set when only a __main__.py says how to run


@dataclass(frozen=True, slots=True)
class Globs:
    members: tuple[str, ...]
    exclude: tuple[str, ...]


def member_globs(root: Path, members: Sequence[str]) -> Globs:
    """``services/*`` where a directory holds several members, exact paths otherwise.

    A glob is used only when the directory's other subdirectories are fewer
    than its members; they are listed under ``exclude`` (the workspace loader
    rejects a matched directory without a pyproject.toml). Top-level members
    are listed one by one: ``*`` would match docs/, scripts/ and the like.
    """
    by_parent: dict[str, list[str]] = defaultdict(list)
    for rel in members:
        by_parent[PurePosixPath(rel).parent.as_posix()].append(rel)
    out: list[str] = []
    exclude: list[str] = []
    for rel in sorted(members, key=lambda r: (r != ".", r)):
        parent = PurePosixPath(rel).parent.as_posix()
        kids = by_parent[parent]
        if rel == "." or parent == "." or len(kids) < 2:
            out.append(rel)
            continue
        others = _other_subdirectories(root / parent, {PurePosixPath(k).name for k in kids})
        if len(others) >= len(kids):
            out.append(rel)
            continue
        pattern = f"{parent}/*"
        if pattern not in out:
            out.append(pattern)
            exclude.extend(f"{parent}/{name}" for name in others)
    return Globs(tuple(out), tuple(exclude))


def _other_subdirectories(directory: Path, members: set[str]) -> list[str]:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return []
    # Hidden directories are skipped by the workspace loader itself.
    return [e.name for e in entries if e.is_dir() and not e.name.startswith(".")
            and e.name not in members]


def infer_kind(relpath: str, directory: Path, scripts: Mapping[str, str], scripts_table: str,
               options: Mapping[str, object]) -> Kind:
    """service or library, by the first rule that holds (see README, "Adopting")."""
    declared = options.get("kind")
    if declared == "service" or declared == "library":  # two == narrow the type; `in` does not
        return Kind(declared, "set in [tool.orchestrator] kind")
    if scripts:
        names = ", ".join(repr(s) for s in scripts)
        return Kind("service", f"has {scripts_table} {names}")
    main = _main_module(directory)
    if main is not None:
        module, path = main
        return Kind("service", f"has {path}", command=("python", "-m", module))
    dockerfile = next((p.name for p in sorted(directory.glob("Dockerfile*")) if p.is_file()),
                      None)
    if dockerfile:
        return Kind("service", f"has a {dockerfile}")
    parts = PurePosixPath(relpath).parts[:-1]
    parent = next((p for p in parts if p in SERVICE_PARENTS), None)
    if parent:
        return Kind("service", f"is under {parent}/")
    return Kind("library", "no scripts, __main__.py or Dockerfile, and not under services/ "
                "or apps/")


def default_kind(relpath: str) -> MemberKind:
    """The kind the workspace loader assumes when [tool.orchestrator] has none."""
    return "service" if PurePosixPath(relpath).parent.name == "services" else "library"


def _main_module(directory: Path) -> tuple[str, str] | None:
    """(module, path) of the first package ``__main__.py``, from src/ or the member root."""
    for base in (directory / "src", directory):
        if not base.is_dir():
            continue
        for current, dirs, files in os.walk(base):
            here = Path(current)
            depth = len(here.relative_to(base).parts)
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS
                             and not d.endswith(".egg-info") and depth < 3
                             and not (here / d / "pyproject.toml").exists()
                             and not (base == directory and here == base and d == "src"))
            if "__main__.py" in files and here != base:
                module = ".".join(here.relative_to(base).parts)
                return module, (here / "__main__.py").relative_to(directory).as_posix()
    return None


def choose_python(requires: Mapping[str, str | None], wanted: str | None) -> tuple[str, str]:
    """The workspace Python and why: *wanted* if given, else the lowest minor all admit.

    A member admits 3.X when its requires-python contains 3.X.0, which is the
    interpreter a lock for "3.X" is resolved for.
    """
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    specs: dict[str, SpecifierSet] = {}
    for member, text in requires.items():
        if not text:
            continue
        try:
            specs[member] = SpecifierSet(text)
        except InvalidSpecifier as exc:
            raise WorkspaceError(f"{member}: requires-python {text!r} is not a PEP 440 "
                                 "specifier", hint="write it like \">=3.10\"",
                                 member=member, actual=text) from exc

    def refusing(minor: int) -> list[str]:
        """The members whose requires-python excludes 3.*minor*."""
        return [m for m, s in specs.items() if not s.contains(f"3.{minor}.0", prereleases=True)]

    if wanted is not None:
        excluded = refusing(int(wanted.split(".")[1]))
        if excluded:
            detail = ", ".join(f"{m} ({requires[m]})" for m in excluded)
            raise WorkspaceError(f"--python {wanted} is excluded by the requires-python of "
                                 f"{detail}", hint="pick a Python every member admits, or "
                                 "leave --python out to have one chosen", expected=wanted)
        return wanted, "given with --python"
    if not specs:
        return DEFAULT_PYTHON, (f"no member declares requires-python; {DEFAULT_PYTHON} is the "
                                "workspace default (pass --python to choose)")
    for minor in PYTHON_MINORS:
        if not refusing(minor):
            listed = "; ".join(f"{m}: {requires[m]}" for m in specs)
            return f"3.{minor}", f"the lowest of 3.9-3.14 every member admits ({listed})"
    detail = "; ".join(f"{m}: {requires[m]}" for m in specs)
    raise WorkspaceError(f"no Python from 3.9 to 3.14 satisfies every member's "
                         f"requires-python ({detail})",
                         hint="widen the requires-python that excludes the others, or pass "
                         "--python")
