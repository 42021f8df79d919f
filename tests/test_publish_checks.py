"""twine-check-like validation of built files, on real wheel and sdist archives."""

from __future__ import annotations

import io
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from orchestrator.publish.checks import check_file, read_core_metadata

HEAD = "Metadata-Version: 2.1\nName: acme-events\nVersion: 0.2.0\n"


def wheel(tmp_path: Path, metadata: str, name: str = "acme_events-0.2.0-py3-none-any.whl"
          ) -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("events/__init__.py", "")
        zf.writestr("acme_events-0.2.0.dist-info/METADATA", metadata)
    return path


def sdist(tmp_path: Path, metadata: str) -> Path:
    path = tmp_path / "acme_events-0.2.0.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, text in (("acme_events-0.2.0/PKG-INFO", metadata),
                           ("acme_events-0.2.0/src/PKG-INFO", "not this one")):
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tf.addfile(info, io.BytesIO(text.encode()))
    return path


def test_a_good_wheel_with_a_markdown_readme_passes(tmp_path: Path) -> None:
    meta = (HEAD + "Requires-Dist: acme-common<0.4,>=0.3.0\n"
            "Description-Content-Type: text/markdown\n\n# Events\n\n*any* markdown renders\n")
    result = check_file(wheel(tmp_path, meta), {"acme-common", "acme-events"})
    assert result.ok
    assert (result.errors, result.warnings, result.description) == (
        (), (), "renders (text/markdown)")


def test_the_sdist_is_read_by_its_top_level_pkg_info(tmp_path: Path) -> None:
    path = sdist(tmp_path, HEAD + "Description-Content-Type: text/plain\n\nplain\n")
    assert read_core_metadata(path) == (HEAD + "Description-Content-Type: text/plain\n\nplain\n"
                                        ).encode()
    result = check_file(path)
    assert (result.ok, result.description) == (True, "renders (text/plain)")


def test_no_readme_is_a_warning_not_an_error(tmp_path: Path) -> None:
    result = check_file(wheel(tmp_path, HEAD))
    assert result.ok
    assert result.warnings == ("no long description (readme) is declared",)
    assert result.description == "not declared"


def test_an_unknown_metadata_version_is_an_error(tmp_path: Path) -> None:
    result = check_file(wheel(tmp_path, HEAD.replace("2.1", "9.9")))
    assert not result.ok
    assert result.errors == ("METADATA: '9.9' is not a valid metadata version",)


def test_direct_references_and_unconstrained_members_are_errors(tmp_path: Path) -> None:
    meta = (HEAD + "Requires-Dist: acme-common @ file:///work/libs/common\n"
            "Requires-Dist: acme-zero\nRequires-Dist: httpx\n")
    result = check_file(wheel(tmp_path, meta), {"acme-common", "acme-zero"})
    assert result.errors == (
        "METADATA: Requires-Dist 'acme-common @ file:///work/libs/common' is a direct "
        "reference; package indexes reject them",
        "METADATA: Requires-Dist 'acme-zero' names a workspace member without a version range",
    )


def test_the_file_name_must_match_the_metadata(tmp_path: Path) -> None:
    result = check_file(wheel(tmp_path, HEAD, name="acme_events-0.3.0-py3-none-any.whl"))
    assert result.errors == ("the file name says acme-events 0.3.0, its metadata acme-events "
                             "0.2.0",)


def test_an_unsupported_content_type_is_an_error(tmp_path: Path) -> None:
    meta = HEAD + "Description-Content-Type: text/html\n\n<p>hi</p>\n"
    result = check_file(wheel(tmp_path, meta))
    (problem,) = result.errors  # packaging lists the allowed types in set order
    assert problem.startswith("METADATA: 'description-content-type' must be one of [")
    assert problem.endswith("], not 'text/html'")


def test_rst_without_readme_renderer_is_reported_as_not_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "readme_renderer", None)  # import then fails
    result = check_file(wheel(tmp_path, HEAD + "\nTitle\n=====\n\nbody\n"))
    assert result.ok
    assert result.warnings == (
        "no Description-Content-Type; read as reStructuredText, as PyPI does",)
    assert result.description == ("not checked: reStructuredText needs readme_renderer, which "
                                  "is not installed")


def test_a_file_without_metadata_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "acme_events-0.2.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("events/__init__.py", "")
    result = check_file(path)
    assert result.as_dict() == {
        "file": path.name, "ok": False, "errors": [f"{path.name} holds no METADATA file"],
        "warnings": [], "description": "not checked"}
