"""What changed in git, as paths relative to the workspace root."""

from __future__ import annotations

import subprocess
from pathlib import Path, PurePosixPath

from orchestrator.errors import GitError


def _git(cwd: Path, *args: str) -> str:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=False
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed or not on PATH",
                       hint="install git to use --since") from exc
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()
        raise GitError(f"git {' '.join(args)} failed in {cwd}: "
                       f"{detail[-1] if detail else 'exit ' + str(proc.returncode)}")
    return proc.stdout


def changed_files(root: Path, since: str, *, committed_only: bool = False) -> list[str]:
    """Files changed since the merge base of *since* and HEAD, relative to *root*.

    Uncommitted changes (staged, unstaged and untracked files) count too unless
    *committed_only*. Files outside *root* are dropped.
    """
    try:
        top = Path(_git(root, "rev-parse", "--show-toplevel").strip())
    except GitError as exc:
        raise GitError(f"{root} is not inside a git repository",
                       hint="--since needs git history; use --all instead") from exc
    try:
        base = _git(root, "merge-base", since, "HEAD").strip()
    except GitError as exc:
        raise GitError(f"cannot compare with {since!r}: no common history with HEAD",
                       hint="pass a branch, tag or commit that exists, e.g. --since origin/main"
                       ) from exc
    paths = set(_lines(_git(top, "diff", "--name-only", "--no-renames", base, "HEAD")))
    if not committed_only:
        paths.update(_lines(_git(top, "diff", "--name-only", "--no-renames", "HEAD")))
        paths.update(_lines(_git(top, "ls-files", "--others", "--exclude-standard")))
    prefix = PurePosixPath(root.resolve().relative_to(top.resolve()).as_posix())
    out: list[str] = []
    for path in sorted(paths):
        pure = PurePosixPath(path)
        if prefix == PurePosixPath("."):
            out.append(path)
        elif pure.is_relative_to(prefix):
            out.append(pure.relative_to(prefix).as_posix())
    return out


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def revision_info(root: Path) -> dict[str, str]:
    """HEAD's full sha, commit time (ISO 8601) and origin URL, where git knows them."""
    info: dict[str, str] = {}
    for key, args in (("revision", ("rev-parse", "HEAD")),
                      ("created", ("log", "-1", "--format=%cI")),
                      ("source", ("remote", "get-url", "origin"))):
        try:
            value = _git(root, *args).strip()
        except GitError:
            continue
        if value:
            info[key] = value
    return info


def commit_time(root: Path) -> int | None:
    """HEAD's commit time (seconds since the epoch), or None outside a git repository."""
    try:
        value = _git(root, "log", "-1", "--format=%ct").strip()
    except GitError:
        return None
    return int(value) if value.isdigit() else None
