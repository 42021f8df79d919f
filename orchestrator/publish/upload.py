"""Upload distributions through the legacy upload API that PyPI, pypiserver and others serve.

One multipart POST per file to the repository's upload URL (see
https://docs.pypi.org/api/upload/): ``:action=file_upload``,
``protocol_version=1``, the file as ``content``, its ``sha256_digest`` and
``blake2_256_digest``, ``filetype`` (``sdist`` or ``bdist_wheel``),
``pyversion`` (``source``, or the wheel's Python tag) and every core
metadata field under the name twine sends it by (packaging's RawMetadata
keys, with ``keywords`` joined by commas, ``project_urls`` as
``"label, url"`` and the plural keys made singular).

Our own uploader rather than twine as a library: twine has no supported
Python API (its docs say so), and it brings requests, requests-toolbelt,
rich, keyring, readme_renderer, rfc3986 and id into every install of this
tool, which already has httpx; uv and Poetry write their own for the same
reasons. What twine decides, we decide alike: the answers that mean "this
file already exists" (``existing``), no redirects followed (a POST turned
into a GET would "succeed" without uploading), and credentials sent only
to the upload URL given.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from orchestrator import __version__
from orchestrator.errors import PublishError
from orchestrator.models import RepositorySpec
from orchestrator.publish.checks import read_core_metadata
from orchestrator.publish.credentials import Credentials, env_prefix

Outcome = Literal["uploaded", "skipped"]
FormValue = str | list[str]

# packaging's RawMetadata keys whose upload field name drops the plural s.
_SINGULAR = {"platforms": "platform", "supported_platforms": "supported_platform",
             "license_files": "license_file"}


def digests(path: Path) -> tuple[str, str]:
    """The file's sha256 and blake2b-256 hex digests, read once."""
    sha256, blake2 = hashlib.sha256(), hashlib.blake2b(digest_size=32)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha256.update(chunk)
            blake2.update(chunk)
    return sha256.hexdigest(), blake2.hexdigest()


def upload_form(path: Path) -> dict[str, FormValue]:
    """The form fields (all but ``content``) the upload of *path* sends."""
    from packaging.metadata import parse_email

    data = read_core_metadata(path)
    if data is None:
        raise PublishError(f"{path.name} holds no core metadata (METADATA or PKG-INFO)",
                           hint="build it with `orchestrator package`", file=path)
    raw, _unparsed = parse_email(data)
    sha256, blake2 = digests(path)
    wheel = path.name.endswith(".whl")
    form: dict[str, FormValue] = {
        ":action": "file_upload",
        "protocol_version": "1",
        "filetype": "bdist_wheel" if wheel else "sdist",
        # A wheel's Python tag as its file name writes it ("py3", "py2.py3"), as twine sends it.
        "pyversion": path.name[:-4].split("-")[-3] if wheel else "source",
        "sha256_digest": sha256,
        "blake2_256_digest": blake2,
    }
    for key, value in raw.items():
        if key == "keywords" and isinstance(value, list):
            form[key] = ", ".join(value)
        elif key == "project_urls" and isinstance(value, dict):
            form[key] = [f"{label}, {url}" for label, url in value.items()]
        elif isinstance(value, list):
            form[_SINGULAR.get(key, key)] = [str(v) for v in value]
        elif isinstance(value, str):
            form[_SINGULAR.get(key, key)] = value
    return form


@dataclass(frozen=True, slots=True)
class Answer:
    """What the repository said: status, reason phrase and body text."""

    status: int
    reason: str
    text: str

    @property
    def existing(self) -> bool:
        """The answers twine reads as "this file already exists" (PyPI, pypiserver, ...)."""
        said = f"{self.reason}\n{self.text}".lower()
        return (self.status == 409  # pypiserver, Gitea
                or (self.status == 400 and ("already exist" in said  # PyPI, GCP
                                            or "updating asset" in said))  # Nexus
                or (self.status == 403 and "overwrite artifact" in said))  # Artifactory


class Uploader:
    """Uploads files to one repository with one HTTP client; close() when done."""

    def __init__(self, repository: RepositorySpec, credentials: Credentials | None,
                 *, timeout: float = 300.0) -> None:
        import httpx

        self.repository = repository
        self.credentials = credentials
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=30.0), follow_redirects=False,
            headers={"User-Agent": f"orchestrator/{__version__}"})

    def close(self) -> None:
        self._client.close()

    def upload(self, path: Path, *, skip_existing: bool = False) -> Outcome:
        """Upload *path*; "skipped" when it exists and *skip_existing*, else an error."""
        import httpx

        form = upload_form(path)
        creds = self.credentials
        auth = (httpx.BasicAuth(creds.username, creds.password) if creds is not None
                else httpx.USE_CLIENT_DEFAULT)
        try:
            with path.open("rb") as fh:
                response = self._client.post(
                    self.repository.upload_url, data=form, auth=auth,
                    files={"content": (path.name, fh, "application/octet-stream")})
        except httpx.HTTPError as exc:
            raise PublishError(
                f"cannot reach repository {self._describe()}: {self._redact(str(exc))}",
                hint="check the upload-url in workspace.yaml and that the repository is up",
                file=path, index=self.repository.name) from exc
        answer = Answer(response.status_code, response.reason_phrase,
                        self._redact(response.text))
        if 200 <= answer.status < 300:
            return "uploaded"
        if answer.existing:
            if skip_existing:
                return "skipped"
            raise self._exists(path)
        raise self._rejected(path, answer, response.headers.get("location"))

    # -- errors --------------------------------------------------------------------

    def _describe(self) -> str:
        return f"'{self.repository.name}' ({self.repository.upload_url})"

    def _redact(self, text: str) -> str:
        """*text* without the password, in case a server or an exception echoes it."""
        secret = self.credentials.password if self.credentials is not None else ""
        return text.replace(secret, "****") if secret else text

    def _exists(self, path: Path) -> PublishError:
        return PublishError(
            f"{path.name} already exists on repository {self._describe()}",
            hint="a published version cannot be replaced: raise the member's version "
            "(`orchestrator version`), or pass --skip-existing to leave the files already "
            "there", file=path, index=self.repository.name)

    def _rejected(self, path: Path, answer: Answer, location: str | None) -> PublishError:
        name = self.repository.name
        prefix = env_prefix(name)
        status = f"{answer.status} {answer.reason}".strip()
        if answer.status == 401:
            found = ("no credentials were found" if self.credentials is None else
                     f"it refused those from {self.credentials.source}")
            return PublishError(
                f"repository {self._describe()} asks for credentials ({status}) and {found}",
                hint=f"set {prefix}_USERNAME and {prefix}_PASSWORD (or {prefix}_TOKEN for "
                f"an API token), or add a [{name}] section to ~/.pypirc",
                file=path, index=name)
        if answer.status == 403:
            source = ("no credentials" if self.credentials is None
                      else f"the credentials from {self.credentials.source}")
            return PublishError(
                f"repository {self._describe()} refused the upload of {path.name} with "
                f"{source} ({status})",
                hint=f"check the username and password (or token) for {name!r} and that "
                "they may upload this project", file=path, index=name)
        if 300 <= answer.status < 400:
            return PublishError(
                f"repository {self._describe()} redirects uploads to {location or '?'} "
                f"({status}); a redirected upload would not arrive",
                hint="set the repository's upload-url in workspace.yaml to the address it "
                "redirects to", file=path, index=name)
        detail = answer.text.strip().splitlines()
        said = f": {detail[0][:300]}" if detail else ""
        return PublishError(
            f"repository {self._describe()} rejected {path.name} ({status}){said}",
            hint="fix what the repository reports, then publish again", file=path, index=name)
