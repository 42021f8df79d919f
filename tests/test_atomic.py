"""orchestrator.atomic: whole-file replacement through a temporary sibling."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from orchestrator.atomic import write_bytes, write_text


def test_new_file_is_world_readable_and_no_temporary_is_left(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "entry.bin"
    write_bytes(target, b"data")
    assert target.read_bytes() == b"data"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["entry.bin"]


def test_replacing_keeps_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "pylock.toml"
    target.write_text("old\n")
    target.chmod(0o600)
    write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_taken_temporary_name_is_not_reused(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "entry"
    taken = tmp_path / f".entry.{'00' * 6}.tmp"
    taken.write_text("someone else's")
    tokens = iter([b"\0" * 6, b"\1" * 6])
    monkeypatch.setattr(os, "urandom", lambda n: next(tokens))
    write_bytes(target, b"mine")
    assert target.read_bytes() == b"mine"
    assert taken.read_text() == "someone else's"


def test_a_symlink_in_the_temporary_name_is_not_followed(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    (tmp_path / f".entry.{'00' * 6}.tmp").symlink_to(elsewhere)
    tokens = iter([b"\0" * 6, b"\1" * 6])
    monkeypatch.setattr(os, "urandom", lambda n: next(tokens))
    write_bytes(tmp_path / "entry", b"mine")
    assert not elsewhere.exists()
    assert (tmp_path / "entry").read_bytes() == b"mine"


def test_an_error_names_the_target(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(OSError) as raised:
        write_bytes(blocker / "entry", b"data")
    assert raised.value.filename == str(blocker / "entry")
