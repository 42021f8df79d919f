"""Which directory an editable member puts on sys.path."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.installer import editable_source_root


@pytest.mark.parametrize(("files", "src_layout"), [
    (["src/pkg/__init__.py"], True),
    (["src/mod.py"], True),
    (["src/acme/jobs/__init__.py"], True),  # namespace package acme: no __init__.py
    (["src/acme/util.py"], True),
    (["pkg/__init__.py"], False),
    (["pkg/__init__.py", "src/README.txt"], False),
    (["src/.hidden/x.py", "pkg/__init__.py"], False),
])
def test_src_layout(tmp_path: Path, files: list[str], src_layout: bool) -> None:
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert editable_source_root(tmp_path) == (tmp_path / "src" if src_layout else tmp_path)
