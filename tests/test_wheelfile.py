"""Archive member names, the path-inside check, and METADATA out of a local wheel."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from orchestrator.errors import VenvError
from orchestrator.wheelfile import (
    check_archive_path,
    extract,
    metadata_member,
    read_metadata,
    within,
)
from tests.support.wheels import build_wheel


@pytest.mark.parametrize(
    ("path", "root", "inside"),
    [
        ("/venv/lib/x.py", "/venv", True),
        ("/venv/lib/../x.py", "/venv/", True),
        ("/venv", "/venv", False),  # the root itself is not below itself
        ("/venv/../etc/passwd", "/venv", False),
        ("/venv2/x", "/venv", False),  # a sibling sharing the prefix's spelling
        ("/anything", "/", True),
    ],
)
def test_within_compares_normalized_paths(path: str, root: str, inside: bool) -> None:
    assert within(path, root) is inside
    assert within(Path(path), Path(root)) is inside


@pytest.mark.parametrize("name", ["", "/abs.py", "a/../../b.py", "a\\b.py", "C:evil", "a\0b"])
def test_unsafe_member_names_are_refused(name: str) -> None:
    with pytest.raises(VenvError, match="refusing to install it"):
        check_archive_path(name, Path("evil-1.0-py3-none-any.whl"))


def test_metadata_member_prefers_the_wheels_own_dist_info() -> None:
    names = ["a-1.dist-info/METADATA", "vendored-2.dist-info/METADATA", "x/y.dist-info/METADATA"]
    assert metadata_member(names, "a-1-py3-none-any.whl") == "a-1.dist-info/METADATA"
    assert metadata_member(names, "other-1-py3-none-any.whl") is None
    assert metadata_member(["a/b.py"], "a-1-py3-none-any.whl") is None


def test_read_metadata_from_a_path_or_an_open_file(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "demo", "1.0", requires_dist=["idna"])
    assert b"Requires-Dist: idna" in (read_metadata(wheel, wheel.name) or b"")
    with open(wheel, "rb") as handle:
        assert read_metadata(handle, wheel.name) == read_metadata(wheel, wheel.name)
    empty = io.BytesIO()
    zipfile.ZipFile(empty, "w").close()
    assert read_metadata(empty, wheel.name) is None


def test_a_name_listed_twice_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "w", "twice", "1.0")
    with zipfile.ZipFile(wheel, "a") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("twice/__init__.py", b"again")
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(VenvError) as caught:
        extract(wheel, dest)
    assert caught.value.message == (
        "twice-1.0-py3-none-any.whl: 'twice/__init__.py' is listed twice, or as both a file "
        "and a directory; refusing to install it")
    assert list(dest.iterdir()) == []
