"""Upload credentials per repository: environment, ~/.pypirc, then keyring.

Never from workspace.yaml (the loader rejects a URL holding them) and never
printed: a ``Credentials`` says where it came from (``source``) so messages
can name the place without showing the secret, and its ``repr`` hides the
password.

In order, for the repository called NAME (upper-cased, other characters as ``_``):

1. ``ORCHESTRATOR_PUBLISH_<NAME>_TOKEN``: an API token, sent as user ``__token__``
   (PyPI's convention); else ``..._USERNAME`` and ``..._PASSWORD``;
2. ``~/.pypirc``, the section named NAME (``username``, ``password``), as twine reads it;
3. keyring, when it is importable, for the repository's upload URL (as twine asks it).
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.models import RepositorySpec


@dataclass(frozen=True, slots=True)
class Credentials:
    """A username and password for one repository, and where they were found."""

    username: str
    password: str = field(repr=False)
    source: str  # "ORCHESTRATOR_PUBLISH_LOCAL_PASSWORD", "~/.pypirc [local]", "keyring"


def env_prefix(repository: str) -> str:
    """``ORCHESTRATOR_PUBLISH_<NAME>``: the name upper-cased, non-alphanumerics as ``_``."""
    return "ORCHESTRATOR_PUBLISH_" + re.sub(r"[^A-Za-z0-9]", "_", repository).upper()


def find_credentials(repository: RepositorySpec) -> Credentials | None:
    """The first credentials found for *repository* (module docstring), else None."""
    return (_from_env(repository.name) or _from_pypirc(repository.name)
            or _from_keyring(repository.upload_url))


def _from_env(name: str) -> Credentials | None:
    prefix = env_prefix(name)
    token = os.environ.get(f"{prefix}_TOKEN")
    if token:
        return Credentials("__token__", token, f"{prefix}_TOKEN")
    user, password = os.environ.get(f"{prefix}_USERNAME"), os.environ.get(f"{prefix}_PASSWORD")
    if user is None and password is None:
        return None
    return Credentials(user or "", password or "", f"{prefix}_USERNAME and _PASSWORD")


def _from_pypirc(name: str) -> Credentials | None:
    path = Path.home() / ".pypirc"
    parser = configparser.RawConfigParser()  # Raw: a % in a password is not interpolation
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return None  # a broken file is twine's to complain about, not ours
    if not parser.has_section(name):
        return None
    user = parser.get(name, "username", fallback=None)
    password = parser.get(name, "password", fallback=None)
    if user is None and password is None:
        return None
    return Credentials(user or "", password or "", f"~/.pypirc [{name}]")


def _from_keyring(url: str) -> Credentials | None:
    try:
        import keyring  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    try:
        found = keyring.get_credential(url, None)
    except Exception:  # whatever a keyring backend raises means "no credentials here"
        return None
    if found is None:
        return None
    return Credentials(str(found.username), str(found.password), "keyring")
