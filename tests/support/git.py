"""``git`` in a test's repository, as a fixed author (one helper for every test file)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(root: Path, *args: str) -> str:
    """Run ``git *args`` in *root* as author t <t@example.com>; its stdout (fails loudly)."""
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=root, check=True, capture_output=True, text=True,
    ).stdout
