"""Hostile wheels: symlink members, clashing names, zip bombs (declared or lying about
their sizes) and huge METADATA are refused."""

from __future__ import annotations

import os
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


def _understate(wheel: Path, name: str, declared: int) -> None:
    """Make the zip's directory (and the local header) claim *name* is *declared* bytes."""
    data = bytearray(wheel.read_bytes())
    encoded = name.encode()
    central = data.find(b"PK\x01\x02")
    while central != -1:  # central directory entries: the name at offset 46, size at 24
        length = int.from_bytes(data[central + 28:central + 30], "little")
        if data[central + 46:central + 46 + length] == encoded:
            data[central + 24:central + 28] = declared.to_bytes(4, "little")
            local = int.from_bytes(data[central + 42:central + 46], "little")
            data[local + 22:local + 26] = declared.to_bytes(4, "little")
            break
        central = data.find(b"PK\x01\x02", central + 4)
    else:
        raise AssertionError(f"{name} not in {wheel}")
    wheel.write_bytes(bytes(data))
    with zipfile.ZipFile(wheel) as zf:
        assert zf.getinfo(name).file_size == declared


def _liar(tmp_path: Path, real: int, declared: int, content: bytes | None = None) -> Path:
    wheel = build_wheel(tmp_path / "w", "liar", "1.0")
    _add(wheel, "liar/zeros.bin", bytes(real) if content is None else content)
    _understate(wheel, "liar/zeros.bin", declared)
    return wheel


def test_a_member_bigger_than_its_directory_says_is_refused_naming_it(tmp_path: Path) -> None:
    # 64 KiB that do not compress, which the directory calls 1000 bytes: no limit is hit.
    # zipfile alone would stop at 1000 bytes and fail the CRC: "Bad CRC-32", no name.
    wheel = _liar(tmp_path, 0, 1000, content=os.urandom(64 << 10))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(VenvError) as info:
        unpack(wheel, dest)
    assert str(info.value).splitlines()[0] == (
        "liar-1.0-py3-none-any.whl: liar/zeros.bin decompresses past the 1000 bytes the "
        "archive's directory declares for it; refusing to unpack it")
    assert (info.value.file, info.value.key) == (wheel, "liar/zeros.bin")
    assert (dest / "liar/zeros.bin").stat().st_size <= 1000  # nothing past the declared size


def test_the_size_limit_holds_for_the_bytes_actually_decompressed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_UNPACK_MAX_BYTES", "100000")  # the declared total is under
    wheel = _liar(tmp_path, 4 << 20, 1000)
    with pytest.raises(VenvError) as info:
        unpack(wheel, tmp_path / "dest")
    assert str(info.value).startswith(
        "liar-1.0-py3-none-any.whl: liar/zeros.bin takes the archive past the 100000-byte "
        "unpacking limit as it decompresses (its directory declares 1000 bytes for it)")
    assert "ORCHESTRATOR_UNPACK_MAX_BYTES" in str(info.value)
    assert info.value.key == "liar/zeros.bin"


def test_the_ratio_limit_holds_for_the_bytes_actually_decompressed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    declared = 3 << 20
    wheel = _liar(tmp_path, 8 << 20, declared)
    with zipfile.ZipFile(wheel) as zf:
        compressed = sum(i.compress_size for i in zf.infolist())
    # just loose enough for the declared sizes; the real 8 MiB are far past it
    monkeypatch.setenv("ORCHESTRATOR_UNPACK_MAX_RATIO", str(declared // compressed + 1))
    (tmp_path / "dest").mkdir()
    with pytest.raises(VenvError) as info:
        unpack(wheel, tmp_path / "dest")
    message = str(info.value)
    assert message.startswith("liar-1.0-py3-none-any.whl: liar/zeros.bin takes the archive past ")
    assert f"its directory declares {declared} bytes for it), a zip bomb" in message
    assert info.value.key == "liar/zeros.bin"


def test_a_member_whose_compressed_data_is_cut_short_is_corrupt(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "w", "cut", "1.0")
    _add(wheel, "cut/data.bin", bytes(range(256)) * 64)
    _understate(wheel, "cut/data.bin", 100)  # honest compressed size, wrong CRC span
    with zipfile.ZipFile(wheel) as zf:
        info = zf.getinfo("cut/data.bin")
    data = bytearray(wheel.read_bytes())
    # flip one compressed byte: the stream decompresses to garbage or fails its CRC
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0xFF
    wheel.write_bytes(bytes(data))
    (tmp_path / "dest").mkdir()
    with pytest.raises(VenvError) as caught:
        unpack(wheel, tmp_path / "dest")
    assert caught.value.key == "cut/data.bin"
