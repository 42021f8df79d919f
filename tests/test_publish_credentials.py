"""Upload credentials: environment first, then ~/.pypirc, then keyring; never shown."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from orchestrator.models import RepositorySpec
from orchestrator.publish.credentials import Credentials, env_prefix, find_credentials

REPO = RepositorySpec("acme-internal", "https://pkgs.example.invalid/legacy/")


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No credentials from this machine: an empty HOME, no such variables, no keyring."""
    for suffix in ("TOKEN", "USERNAME", "PASSWORD"):
        monkeypatch.delenv(f"ORCHESTRATOR_PUBLISH_ACME_INTERNAL_{suffix}", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setitem(sys.modules, "keyring", None)
    return tmp_path


def test_env_prefix_upper_cases_and_replaces_other_characters() -> None:
    assert env_prefix("acme-internal.v2") == "ORCHESTRATOR_PUBLISH_ACME_INTERNAL_V2"


def test_a_token_wins_and_is_sent_as_the_token_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_PUBLISH_ACME_INTERNAL_TOKEN", "pypi-AgEN-secret")
    monkeypatch.setenv("ORCHESTRATOR_PUBLISH_ACME_INTERNAL_USERNAME", "alice")
    found = find_credentials(REPO)
    assert found == Credentials("__token__", "pypi-AgEN-secret",
                                "ORCHESTRATOR_PUBLISH_ACME_INTERNAL_TOKEN")
    assert "secret" not in repr(found)


def test_username_and_password_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                    clean: Path) -> None:
    (clean / ".pypirc").write_text("[acme-internal]\nusername = bob\npassword = other\n")
    monkeypatch.setenv("ORCHESTRATOR_PUBLISH_ACME_INTERNAL_USERNAME", "alice")
    monkeypatch.setenv("ORCHESTRATOR_PUBLISH_ACME_INTERNAL_PASSWORD", "s3cr%t")
    assert find_credentials(REPO) == Credentials(
        "alice", "s3cr%t", "ORCHESTRATOR_PUBLISH_ACME_INTERNAL_USERNAME and _PASSWORD")


def test_pypirc_section_named_like_the_repository(clean: Path) -> None:
    (clean / ".pypirc").write_text(
        "[distutils]\nindex-servers = acme-internal\n\n"
        "[pypi]\nusername = __token__\npassword = wrong\n\n"
        "[acme-internal]\nrepository = https://pkgs.example.invalid/legacy/\n"
        "username = bob\npassword = 100%pure\n")
    assert find_credentials(REPO) == Credentials("bob", "100%pure", "~/.pypirc [acme-internal]")


def test_nothing_found_is_none(clean: Path) -> None:
    (clean / ".pypirc").write_text("not [an ini file")
    assert find_credentials(REPO) is None


def test_keyring_is_asked_for_the_upload_url(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, str | None]] = []

    class Found:
        username, password = "carol", "from-keyring"

    class Keyring:
        @staticmethod
        def get_credential(service: str, username: str | None) -> Found:
            asked.append((service, username))
            return Found()

    monkeypatch.setitem(sys.modules, "keyring", Keyring)
    assert find_credentials(REPO) == Credentials("carol", "from-keyring", "keyring")
    assert asked == [("https://pkgs.example.invalid/legacy/", None)]
