"""Files a careless editor writes: a pyproject.toml in UTF-16 or with a UTF-8 BOM."""

from __future__ import annotations

from click.testing import CliRunner

from orchestrator.cli import cli
from tests.conftest import MakeWorkspace, pyproject


def test_a_utf16_pyproject_is_a_clear_error_naming_the_file(
    make_workspace: MakeWorkspace,
) -> None:
    root = make_workspace({"services/api": pyproject("api")})
    path = root / "services/api/pyproject.toml"
    path.write_bytes(pyproject("api").encode("utf-16"))
    result = CliRunner().invoke(cli, ["-w", str(root), "check"])
    assert result.exit_code == 1
    assert "internal error" not in result.stderr
    assert "services/api/pyproject.toml: the file is UTF-16, but TOML must be UTF-8" in (
        result.stderr
    )
    assert "hint: save the file as UTF-8 (without a byte-order mark)" in result.stderr


def test_a_utf8_byte_order_mark_is_accepted(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"services/api": pyproject("api")})
    path = root / "services/api/pyproject.toml"
    path.write_bytes(b"\xef\xbb\xbf" + pyproject("api").encode())
    result = CliRunner().invoke(cli, ["-w", str(root), "list"])
    assert "internal error" not in result.stderr
    assert result.exit_code == 0, result.stderr
