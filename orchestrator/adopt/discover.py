"""Every pyproject.toml under a directory, except those in venvs, builds and ignored paths.

Walked with ``os.walk`` and pruned as it goes (hidden directories, ``node_modules``,
``build``/``dist``, ``__pycache__``, and any directory holding a ``pyvenv.cfg``),
then filtered through ``git check-ignore --stdin`` when the directory is inside
a git work tree, so a checked-in ``.gitignore`` decides like it does for git.
"""

from __future__ import annotations

import os
import subprocess
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from orchestrator.errors import WorkspaceError

PYPROJECT = "pyproject.toml"
PRUNED = frozenset({"node_modules", "build", "dist", "__pycache__", "site-packages"})


@dataclass(frozen=True, slots=True)
class Found:
    """One pyproject.toml: where it is, its text and its parsed tables."""

    relpath: str  # POSIX, relative to the directory searched; "." for that directory
    directory: Path  # resolved
    text: str
    data: Mapping[str, object]

    @property
    def label(self) -> str:
        return PYPROJECT if self.relpath == "." else f"{self.relpath}/{PYPROJECT}"

    @property
    def file(self) -> Path:
        return self.directory / PYPROJECT

    def table(self, *keys: str) -> Mapping[str, object]:
        """The table at *keys* (``"tool", "poetry"``), empty when absent or not a table."""
        node: object = self.data
        for key in keys:
            node = node.get(key) if isinstance(node, Mapping) else None
        return cast(Mapping[str, object], node) if isinstance(node, Mapping) else {}

    @property
    def name(self) -> str | None:
        """The project name as written, from [project] or [tool.poetry]."""
        for table in (self.table("project"), self.table("tool", "poetry")):
            name = table.get("name")
            if isinstance(name, str) and name:
                return name
        return None


@dataclass(frozen=True, slots=True)
class Discovery:
    found: tuple[Found, ...]
    ignored: tuple[str, ...]  # relpaths git ignores


def discover(root: Path) -> Discovery:
    """Read every pyproject.toml under *root* that is not pruned or git-ignored."""
    root = root.resolve()
    candidates = sorted(_walk(root))
    ignored = _git_ignored(root, [f"{rel}/{PYPROJECT}" if rel != "." else PYPROJECT
                                  for rel in candidates])
    found = []
    skipped = []
    for rel in candidates:
        if (f"{rel}/{PYPROJECT}" if rel != "." else PYPROJECT) in ignored:
            skipped.append(rel)
            continue
        found.append(read_pyproject(root, rel))
    return Discovery(tuple(found), tuple(skipped))


def _walk(root: Path) -> list[str]:
    out = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not _pruned(Path(directory) / d))
        if PYPROJECT in files:
            rel = Path(directory).relative_to(root).as_posix()
            out.append(rel)
    return out


def _pruned(path: Path) -> bool:
    name = path.name
    return (name.startswith(".") or name in PRUNED or name.endswith(".egg-info")
            or (path / "pyvenv.cfg").exists() or path.is_symlink())


def _git_ignored(root: Path, paths: Sequence[str]) -> set[str]:
    """Which of *paths* (relative to *root*) git ignores; none outside a work tree."""
    if not paths:
        return set()
    try:
        inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=root,
                                capture_output=True, text=True, check=False)
        if inside.returncode != 0 or inside.stdout.strip() != "true":
            return set()
        proc = subprocess.run(["git", "check-ignore", "--stdin", "-z"], cwd=root,
                              input="\0".join(paths) + "\0", capture_output=True, text=True,
                              check=False)
    except FileNotFoundError:  # no git: nothing is ignored, as for a plain directory
        return set()
    if proc.returncode not in (0, 1):  # 1: none ignored
        return set()
    return {p for p in proc.stdout.split("\0") if p}


def read_pyproject(root: Path, rel: str) -> Found:
    """The pyproject.toml of *root*/*rel*, parsed; a WorkspaceError naming it if it is bad."""
    directory = (root / rel).resolve()
    label = PYPROJECT if rel == "." else f"{rel}/{PYPROJECT}"
    file = directory / PYPROJECT
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkspaceError(f"{label}: cannot read the file ({exc})",
                             hint="make it readable UTF-8 text, or remove the directory",
                             file=file) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WorkspaceError(f"{label}: invalid TOML ({exc})", hint="fix the syntax there",
                             file=file) from exc
    return Found(rel, directory, text, data)
