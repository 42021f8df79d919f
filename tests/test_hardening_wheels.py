"""Hostile wheels: symlink members, clashing names, zip bombs and huge METADATA are refused."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from orchestrator.errors import VenvError
from orchestrator.installer import unpack
from orchestrator.wheelfile import read_metadata
from tests.support.wheels import build_wheel


def _add(wheel: Path, name: str, data: bytes, mode: int = 0o644) -> None:
    with zipfile.ZipFile(wheel, "a", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = mode << 16
        zf.writestr(info, data, zipfile.ZIP_DEFLATED)


def test_a_symlink_member_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "w", "evil", "1.0")
    _add(wheel, "d", b"/tmp", stat.S_IFLNK | 0o777)
    _add(wheel, "d/x", b"owned")
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(VenvError) as info:
        unpack(wheel, dest)
    assert str(info.value).startswith(
        "evil-1.0-py3-none-any.whl: 'd' is a symbolic link; wheels carry no links, "
        "refusing to install it"
    )
    assert list(dest.iterdir()) == []


def test_a_file_that_is_also_a_directory_is_refused(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "w", "evil", "1.0")
    _add(wheel, "d", b"a file")
    _add(wheel, "d/x", b"under it")
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(VenvError, match="'d' is listed twice, or as both a file and a directory"):
        unpack(wheel, dest)
    assert list(dest.iterdir()) == []


def test_a_zip_bomb_is_refused_naming_the_file(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "w", "bomb", "1.0")
    _add(wheel, "bomb/zeros.bin", bytes(50 << 20))  # 50 MB of zeros: about 1000:1
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(VenvError) as info:
        unpack(wheel, dest)
    message = str(info.value)
    assert message.startswith("bomb-1.0-py3-none-any.whl would unpack to ")
    assert "(more than 200:1, a zip bomb); refusing to unpack it" in message
    assert "ORCHESTRATOR_UNPACK_MAX_RATIO" in message
    assert info.value.file == wheel
    assert list(dest.iterdir()) == []


def test_the_total_size_limit_is_configurable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = build_wheel(tmp_path / "w", "big", "1.0", files={"big/a.bin": bytes(4096)})
    monkeypatch.setenv("ORCHESTRATOR_UNPACK_MAX_BYTES", "1000")
    with pytest.raises(VenvError, match="over the 1000-byte limit; refusing to unpack it"):
        unpack(wheel, tmp_path)
    monkeypatch.setenv("ORCHESTRATOR_UNPACK_MAX_BYTES", "lots")
    with pytest.raises(VenvError, match="ORCHESTRATOR_UNPACK_MAX_BYTES='lots' is not a positive"):
        unpack(wheel, tmp_path)


def test_huge_metadata_is_refused_when_read_and_unpacked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_METADATA_MAX_BYTES", "2048")
    wheel = build_wheel(
        tmp_path / "w", "fat", "1.0", extra_metadata=[f"Summary: {'x' * 4096}"]
    )
    with pytest.raises(VenvError) as info:
        read_metadata(wheel, wheel.name)
    assert str(info.value).startswith(
        "fat-1.0-py3-none-any.whl: fat-1.0.dist-info/METADATA is "
    )
    assert "over the 2048-byte limit for METADATA; refusing to read it" in str(info.value)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(VenvError, match="over the 2048-byte limit for METADATA"):
        unpack(wheel, dest)


def test_an_ordinary_wheel_still_unpacks(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "w", "fine", "1.0")
    dest = tmp_path / "dest"
    dest.mkdir()
    unpack(wheel, dest)
    assert (dest / "fine" / "__init__.py").read_text() == '__version__ = "1.0"\n'
