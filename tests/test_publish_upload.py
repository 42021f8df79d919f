"""The legacy upload API against a real pypiserver on 127.0.0.1, with real wheels and sdists."""

from __future__ import annotations

import hashlib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.errors import PublishError
from orchestrator.models import RepositorySpec
from orchestrator.publish.credentials import Credentials
from orchestrator.publish.upload import Answer, Uploader, upload_form
from tests.support.pypiserver import PypiServer, free_port
from tests.support.wheels import build_sdist, build_wheel

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PypiServer]:
    with PypiServer(tmp_path_factory.mktemp("pypi")) as running:
        yield running


def uploader(server: PypiServer, password: str | None = None, *,
             anonymous: bool = False) -> Uploader:
    creds = None if anonymous else Credentials(
        server.username, server.password if password is None else password,
        "ORCHESTRATOR_PUBLISH_LOCAL_USERNAME and _PASSWORD")
    return Uploader(RepositorySpec("local", server.upload_url, server.simple_url), creds)


def test_the_form_carries_twine_s_fields(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "demo-pkg", "1.0", requires_dist=["idna>=3"],
                        requires_python=">=3.9", extras=["cli"])
    form = upload_form(wheel)
    data = wheel.read_bytes()
    assert form == {
        ":action": "file_upload", "protocol_version": "1", "filetype": "bdist_wheel",
        "pyversion": "py3", "sha256_digest": hashlib.sha256(data).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest(),
        "metadata_version": "2.1", "name": "demo-pkg", "version": "1.0",
        "requires_python": ">=3.9", "provides_extra": ["cli"], "requires_dist": ["idna>=3"],
    }
    sdist_form = upload_form(build_sdist(tmp_path, "demo-pkg", "1.0"))
    assert (sdist_form["filetype"], sdist_form["pyversion"]) == ("sdist", "source")


def test_upload_then_the_same_file_again(tmp_path: Path, server: PypiServer) -> None:
    wheel = build_wheel(tmp_path, "uploaded", "1.0")
    up = uploader(server)
    try:
        assert up.upload(wheel) == "uploaded"
        assert (server.packages / wheel.name).read_bytes() == wheel.read_bytes()
        with pytest.raises(PublishError) as caught:
            up.upload(wheel)
        assert up.upload(wheel, skip_existing=True) == "skipped"
    finally:
        up.close()
    err = caught.value
    assert err.message == (f"uploaded-1.0-py3-none-any.whl already exists on repository "
                           f"'local' ({server.upload_url})")
    assert err.hint == ("a published version cannot be replaced: raise the member's version "
                        "(`orchestrator version`), or pass --skip-existing to leave the files "
                        "already there")
    assert (err.file, err.index) == (wheel, "local")
    with urllib.request.urlopen(f"{server.simple_url}uploaded/") as page:
        assert wheel.name in page.read().decode()


def test_a_wrong_password_names_the_repository_and_hides_the_password(
    tmp_path: Path, server: PypiServer
) -> None:
    wheel = build_wheel(tmp_path, "refused", "1.0")
    up = uploader(server, "not-the-Right-one")
    with pytest.raises(PublishError) as caught:
        up.upload(wheel)
    up.close()
    err = caught.value
    assert err.message == (
        f"repository 'local' ({server.upload_url}) refused the upload of {wheel.name} with "
        "the credentials from ORCHESTRATOR_PUBLISH_LOCAL_USERNAME and _PASSWORD (403 Forbidden)")
    assert err.hint == ("check the username and password (or token) for 'local' and that "
                        "they may upload this project")
    assert "not-the-Right-one" not in str(err) + repr(err.details())
    assert server.password not in str(err)
    assert not (server.packages / wheel.name).exists()


def test_no_credentials_says_which_to_set(tmp_path: Path, server: PypiServer) -> None:
    up = uploader(server, anonymous=True)
    with pytest.raises(PublishError) as caught:
        up.upload(build_wheel(tmp_path, "anonymous", "1.0"))
    up.close()
    assert caught.value.message == (f"repository 'local' ({server.upload_url}) asks for "
                                    "credentials (401 Unauthorized) and no credentials were "
                                    "found")
    assert caught.value.hint == (
        "set ORCHESTRATOR_PUBLISH_LOCAL_USERNAME and ORCHESTRATOR_PUBLISH_LOCAL_PASSWORD (or "
        "ORCHESTRATOR_PUBLISH_LOCAL_TOKEN for an API token), or add a [local] section to "
        "~/.pypirc")


def test_an_unreachable_repository(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    up = Uploader(RepositorySpec("down", url), Credentials("u", "p4ss-w0rd", "test"))
    with pytest.raises(PublishError) as caught:
        up.upload(build_wheel(tmp_path, "nowhere", "1.0"))
    up.close()
    assert caught.value.message.startswith(f"cannot reach repository 'down' ({url}): ")
    assert "p4ss-w0rd" not in caught.value.message


@pytest.mark.parametrize(("status", "reason", "text", "existing"), [
    (409, "Conflict", "Package 'x' already exists!", True),  # pypiserver
    (400, "File already exists. See https://pypi.org/help/#file-name-reuse", "", True),  # PyPI
    (400, "Bad Request", "Repository does not allow updating assets: pypi", True),  # Nexus
    (403, "Forbidden", "Not enough permissions to overwrite artifact", True),  # Artifactory
    (400, "Bad Request", "Invalid value for blake2_256_digest", False),
    (403, "Forbidden", "", False),
])
def test_which_answers_mean_the_file_exists(status: int, reason: str, text: str,
                                            existing: bool) -> None:
    assert Answer(status, reason, text).existing is existing
