"""Reading METADATA out of a remote wheel's zip with ranged reads.

The index these machines reach serves no PEP 658 files, so a wheel's METADATA
is read through two or three HTTP Range requests (the zip's tail, then the
entry) instead of downloading the wheel: EOCD (zip64 too), central directory,
local header, stored or deflated data.  A complete local wheel is read by
``wheelfile.read_metadata``, the reader build.py uses too.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from orchestrator.wheelfile import metadata_member, read_metadata

# How much of a wheel's end the first ranged read fetches.  Most wheels keep
# *.dist-info last, so 64 KiB usually holds the central directory *and*
# METADATA, and one request is enough.
TAIL_BYTES = 64 * 1024


class ZipFormatError(Exception):
    """The bytes read are not the zip expected; the client falls back to a full download."""


@dataclass(frozen=True, slots=True)
class _ZipEntry:
    name: str
    method: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int


_EOCD = struct.Struct("<4s4H2LH")  # end of central directory, 22 bytes
_ZIP_STORED, _ZIP_DEFLATED = 0, 8  # zipfile's method numbers, without importing it
_ZIP64_LOCATOR = struct.Struct("<4sLQL")  # 20 bytes
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")  # 56 bytes
_CENTRAL = struct.Struct("<4s6H3L5H2L")  # central directory file header, 46 bytes
_LOCAL = struct.Struct("<4s5H3L2H")  # 30 bytes


class _RemoteFile:
    """Random access to a remote file: serves reads from known bytes, else a Range GET."""

    def __init__(self, fetch: Callable[[int, int], bytes], size: int, tail: bytes) -> None:
        self._fetch = fetch  # (start, end exclusive) -> bytes
        self.size = size
        self._known_start = size - len(tail)
        self._known = tail

    def read(self, start: int, length: int) -> bytes:
        end = start + length
        if start < 0 or end > self.size:
            raise ZipFormatError(f"read {start}..{end} outside a {self.size}-byte file")
        if start >= self._known_start:
            return self._known[start - self._known_start : end - self._known_start]
        data = self._fetch(start, min(end, self._known_start))
        if end > self._known_start:
            data += self._known[: end - self._known_start]
        return data


def _find_directory(remote: _RemoteFile, tail: bytes) -> tuple[int, int]:
    """(offset, size) of the central directory, from the EOCD in *tail* (zip64 too)."""
    pos = tail.rfind(b"PK\x05\x06", 0, max(len(tail) - _EOCD.size + 4, 0))
    if pos < 0:
        raise ZipFormatError("no end-of-central-directory record in the file's tail")
    _sig, _disk, _cd_disk, _n_here, count, cd_size, cd_offset, _comment = _EOCD.unpack_from(
        tail, pos
    )
    if count != 0xFFFF and cd_size != 0xFFFFFFFF and cd_offset != 0xFFFFFFFF:
        return cd_offset, cd_size
    eocd_offset = remote.size - len(tail) + pos
    locator = remote.read(eocd_offset - _ZIP64_LOCATOR.size, _ZIP64_LOCATOR.size)
    sig, _disk, zip64_offset, _disks = _ZIP64_LOCATOR.unpack(locator)
    if sig != b"PK\x06\x07":
        raise ZipFormatError("zip64 end-of-central-directory locator missing")
    record = remote.read(zip64_offset, _ZIP64_EOCD.size)
    fields = _ZIP64_EOCD.unpack(record)
    if fields[0] != b"PK\x06\x06":
        raise ZipFormatError("zip64 end-of-central-directory record missing")
    return fields[9], fields[8]  # central directory offset, size


def _zip64_values(extra: bytes, wanted: list[bool]) -> list[int]:
    """The zip64 extra field's values for the 32-bit fields that overflowed."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if tag == 0x0001:
            count = sum(wanted)
            return list(struct.unpack_from(f"<{count}Q", extra, pos + 4))
        pos += 4 + length
    raise ZipFormatError("zip64 sizes missing from a central directory entry")


def _directory_entries(directory: bytes) -> Iterator[_ZipEntry]:
    pos = 0
    while pos + _CENTRAL.size <= len(directory):
        fields = _CENTRAL.unpack_from(directory, pos)
        if fields[0] != b"PK\x01\x02":
            raise ZipFormatError("corrupt central directory")
        method, crc, csize, size = fields[4], fields[7], fields[8], fields[9]
        name_len, extra_len, comment_len, offset = fields[10], fields[11], fields[12], fields[16]
        start = pos + _CENTRAL.size
        name = directory[start : start + name_len].decode("utf-8", errors="replace")
        extra = directory[start + name_len : start + name_len + extra_len]
        big = [size == 0xFFFFFFFF, csize == 0xFFFFFFFF, offset == 0xFFFFFFFF]
        if any(big):
            values = iter(_zip64_values(extra, big))
            size = next(values) if big[0] else size
            csize = next(values) if big[1] else csize
            offset = next(values) if big[2] else offset
        yield _ZipEntry(name, method, crc, csize, size, offset)
        pos = start + name_len + extra_len + comment_len


_NO_METADATA = "no single *.dist-info/METADATA entry in the wheel"


def _metadata_name(names: Iterable[str], filename: str) -> str:
    name = metadata_member(names, filename)
    if name is None:
        raise ZipFormatError(_NO_METADATA)
    return name


def _read_entry(remote: _RemoteFile, entry: _ZipEntry) -> bytes:
    """Read one entry's bytes: local header, then its stored or deflated data."""
    # One read covers the local header with a generous guess at its extra field.
    guess = _LOCAL.size + len(entry.name.encode()) + 256 + entry.compressed_size
    chunk = remote.read(entry.header_offset, min(guess, remote.size - entry.header_offset))
    fields = _LOCAL.unpack_from(chunk)
    if fields[0] != b"PK\x03\x04":
        raise ZipFormatError("bad local file header")
    data_start = _LOCAL.size + fields[9] + fields[10]
    if data_start + entry.compressed_size <= len(chunk):
        compressed = chunk[data_start : data_start + entry.compressed_size]
    else:
        compressed = remote.read(entry.header_offset + data_start, entry.compressed_size)
    if entry.method == _ZIP_STORED:
        data = compressed
    elif entry.method == _ZIP_DEFLATED:
        data = zlib.decompressobj(-15).decompress(compressed)
    else:
        raise ZipFormatError(f"unsupported compression method {entry.method}")
    if zlib.crc32(data) != entry.crc or len(data) != entry.size:
        raise ZipFormatError("CRC or size mismatch in METADATA")
    return data


def metadata_from_tail(
    fetch: Callable[[int, int], bytes], size: int, tail: bytes, filename: str
) -> bytes:
    """A remote wheel's METADATA, from its last bytes and ranged reads of the rest.

    *fetch(start, end)* reads bytes [start, end) of the *size*-byte file.
    Raises ``ZipFormatError`` or ``struct.error`` when the bytes are not the zip
    expected; the caller falls back to downloading the wheel.
    """
    remote = _RemoteFile(fetch, size, tail)
    offset, length = _find_directory(remote, tail)
    entries = {e.name: e for e in _directory_entries(remote.read(offset, length))}
    return _read_entry(remote, entries[_metadata_name(entries, filename)])


def metadata_from_zip(path_or_file: Path | IO[bytes], filename: str) -> bytes:
    """METADATA from a complete local wheel (the fallback when Range is not honoured)."""
    import zipfile

    try:
        data = read_metadata(path_or_file, filename)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ZipFormatError(str(exc)) from exc
    if data is None:
        raise ZipFormatError(_NO_METADATA)
    return data
