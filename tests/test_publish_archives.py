"""Deterministic re-packing: the same contents give the same bytes, whatever the builder wrote."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from orchestrator.errors import BuildError
from orchestrator.publish.archives import repack_sdist, repack_wheel
from orchestrator.records import parse_record, record_hash
from tests.support.archives import archive_files
from tests.support.wheels import build_wheel

EPOCH = 1700000000  # 2023-11-14T22:13:20Z
FILES = {"demo-1.0/PKG-INFO": b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
         "demo-1.0/pyproject.toml": b"[project]\nname = 'demo'\n",
         "demo-1.0/demo/__init__.py": b"",
         "demo-1.0/bin/tool": b"#!/bin/sh\n"}


def write_sdist(path: Path, order: list[str], *, mtime: int, user: str, gzip_name: str) -> Path:
    """An sdist as a careless backend writes it: its order, times, owner and gzip header."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tf:
        directory = tarfile.TarInfo("demo-1.0")
        directory.type, directory.mode, directory.mtime = tarfile.DIRTYPE, 0o775, mtime
        tf.addfile(directory)
        for name in order:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(FILES[name]), mtime
            info.uid, info.gid, info.uname, info.gname = 1000, 1000, user, user
            info.mode = 0o775 if name.endswith("tool") else 0o664
            tf.addfile(info, io.BytesIO(FILES[name]))
    with gzip.GzipFile(gzip_name, "wb", fileobj=path.open("wb"), mtime=mtime) as gz:
        gz.write(raw.getvalue())
    return path


def test_repacked_sdists_of_the_same_files_are_identical(tmp_path: Path) -> None:
    names = list(FILES)
    one = write_sdist(tmp_path / "a.tar.gz", names, mtime=1, user="alice", gzip_name="a.tar")
    two = write_sdist(tmp_path / "b.tar.gz", names[::-1], mtime=2**31 - 1, user="bob",
                      gzip_name="other.tar")
    assert one.read_bytes() != two.read_bytes()

    repack_sdist(one, EPOCH)
    repack_sdist(two, EPOCH)

    assert one.read_bytes() == two.read_bytes()
    data = one.read_bytes()
    assert data[3] == 0  # gzip FLG: no FNAME (no file name), no other optional fields
    assert data[4:8] == b"\0\0\0\0"  # gzip MTIME 0
    with tarfile.open(one) as tf:
        infos = tf.getmembers()
    assert [i.name for i in infos] == sorted(["demo-1.0", *FILES])
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname) for i in infos} == {(EPOCH, 0, 0, "", "")}
    assert {i.name: oct(i.mode) for i in infos} == {
        "demo-1.0": "0o755", "demo-1.0/bin/tool": "0o755", "demo-1.0/PKG-INFO": "0o644",
        "demo-1.0/demo/__init__.py": "0o644", "demo-1.0/pyproject.toml": "0o644"}
    assert archive_files(one) == FILES


def test_an_sdist_holding_a_link_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "demo-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        link = tarfile.TarInfo("demo-1.0/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    with pytest.raises(BuildError) as caught:
        repack_sdist(path, EPOCH)
    assert caught.value.message == ("demo-1.0.tar.gz: the sdist holds 'demo-1.0/link', which "
                                    "is neither a file nor a directory")


def shuffled_wheel(tmp_path: Path, name: str, date: tuple[int, int, int, int, int, int],
                   reverse: bool) -> Path:
    """The test wheel rewritten in another order, with other dates and modes."""
    source = build_wheel(tmp_path / "src", "demo", "1.0", files={
        "demo/__init__.py": "", "demo/cli.py": "X = 1\n"})
    with zipfile.ZipFile(source) as zf:
        entries = [(info.filename, zf.read(info)) for info in zf.infolist()]
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        for filename, data in sorted(entries, reverse=reverse):
            info = zipfile.ZipInfo(filename, date_time=date)
            info.external_attr = (0o100775 if filename.endswith("cli.py") else 0o100600) << 16
            out.writestr(info, data)
    return path


def test_repacked_wheels_of_the_same_files_are_identical(tmp_path: Path) -> None:
    one = shuffled_wheel(tmp_path / "1", "demo-1.0-py3-none-any.whl", (2021, 5, 6, 7, 8, 10),
                         reverse=False)
    two = shuffled_wheel(tmp_path / "2", "demo-1.0-py3-none-any.whl", (1999, 1, 1, 0, 0, 0),
                         reverse=True)
    before = archive_files(one)

    repack_wheel(one, EPOCH)
    repack_wheel(two, EPOCH)

    assert one.read_bytes() == two.read_bytes()
    assert archive_files(one) == before  # contents untouched, so RECORD still holds
    with zipfile.ZipFile(one) as zf:
        infos = zf.infolist()
        record = parse_record(zf.read("demo-1.0.dist-info/RECORD").decode())
        hashes_hold = all(record_hash(zf.read(row.path)) == row.hash for row in record if row.hash)
    assert [i.filename for i in infos] == [
        "demo/__init__.py", "demo/cli.py", "demo-1.0.dist-info/METADATA",
        "demo-1.0.dist-info/WHEEL", "demo-1.0.dist-info/RECORD"]
    assert {i.date_time for i in infos} == {(2023, 11, 14, 22, 13, 20)}
    assert {i.filename: oct(i.external_attr >> 16) for i in infos}["demo/cli.py"] == "0o100755"
    assert {oct(i.external_attr >> 16) for i in infos if not i.filename.endswith("cli.py")} == {
        "0o100644"}
    assert {i.compress_type for i in infos} == {zipfile.ZIP_DEFLATED}
    assert len(record) == 5 and hashes_hold


def test_epoch_zero_becomes_the_first_date_zip_can_hold(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "demo", "1.0")
    repack_wheel(wheel, 0)
    with zipfile.ZipFile(wheel) as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert os.stat(wheel).st_mode & 0o777 == 0o644
