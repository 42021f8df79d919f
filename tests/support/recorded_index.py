"""A recorded slice of the public index, served in-process, for the example workspace's locks.

``tests/fixtures/example_index/<project>.json`` holds, per project the example
workspace's locks need, a PEP 691 page as pypi.org served it (only the locked
release and two older ones, only the files that fit the workspace's targets,
every entry's url, hashes, size, upload-time, requires-python and yanked kept
verbatim) and each kept release's core metadata, trimmed to the fields the
resolver reads. Each wheel entry gets a PEP 714 ``core-metadata`` hash, so the
metadata is served as PEP 658 ``<url>.metadata`` files and no wheel is read.

``RecordedIndex.client()`` is an ``httpx.Client`` answering from that data, for
``IndexClient`` (patched in through ``orchestrator.index.client.make_http_client``):
the locks keep their https://pypi.org and https://files.pythonhosted.org URLs,
and nothing leaves the process. ``tests/support/record_example_index.py``
records the data again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import parse_wheel_filename
from packaging.version import Version

if TYPE_CHECKING:
    import httpx

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "example_index"
SIMPLE = "https://pypi.org/simple"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"


@dataclass(frozen=True, slots=True)
class RecordedProject:
    """One project's recorded page and its releases' METADATA (version -> text)."""

    page: Mapping[str, object]
    metadata: Mapping[str, str]

    @classmethod
    def read(cls, path: Path) -> RecordedProject:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(page=data["page"], metadata=data["metadata"])

    def write(self, path: Path) -> None:
        data = {"page": self.page, "metadata": self.metadata}
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def metadata_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(slots=True)
class RecordedIndex:
    """Pages and PEP 658 files by URL; every URL it does not know is a 404 in ``missing``."""

    pages: dict[str, bytes]
    metadata: dict[str, bytes]
    missing: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, directory: Path = FIXTURE) -> RecordedIndex:
        pages: dict[str, bytes] = {}
        metadata: dict[str, bytes] = {}
        for path in sorted(directory.glob("*.json")):
            project = RecordedProject.read(path)
            pages[f"{SIMPLE}/{path.stem}/"] = json.dumps(project.page).encode()
            texts = {str(Version(v)): text for v, text in project.metadata.items()}
            for entry in _entries(project.page):
                filename, url = str(entry["filename"]), str(entry["url"])
                if filename.endswith(".whl"):
                    version = str(parse_wheel_filename(filename)[1])
                    metadata[f"{url}.metadata"] = texts[version].encode()
        return cls(pages, metadata)

    def handle(self, request: httpx.Request) -> httpx.Response:
        import httpx

        url = str(request.url)
        if url in self.pages:
            return httpx.Response(200, content=self.pages[url],
                                  headers={"Content-Type": JSON_TYPE})
        if url in self.metadata:
            return httpx.Response(200, content=self.metadata[url],
                                  headers={"Content-Type": "application/octet-stream"})
        with self._lock:
            self.missing.append(url)
        return httpx.Response(404, content=b"not recorded\n")

    def client(self, max_workers: int = 0) -> httpx.Client:
        """An httpx client over the recording (the signature of ``make_http_client``)."""
        import httpx

        return httpx.Client(transport=httpx.MockTransport(self.handle))


def _entries(page: Mapping[str, object]) -> list[Mapping[str, object]]:
    files = page.get("files", [])
    assert isinstance(files, list)
    return [entry for entry in files if isinstance(entry, Mapping)]


def copy_example_workspace(dest: Path, *, locks: bool) -> Path:
    """The example workspace's manifest and member pyproject.toml files (and locks) in *dest*."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "workspace.yaml", dest / "workspace.yaml")
    for pattern in ("services/*/pyproject.toml", "libs/*/pyproject.toml"):
        for pyproject in sorted(REPO.glob(pattern)):
            member = pyproject.parent.relative_to(REPO)
            (dest / member).mkdir(parents=True, exist_ok=True)
            shutil.copy2(pyproject, dest / member / "pyproject.toml")
            if locks:
                shutil.copy2(REPO / member / "pylock.toml", dest / member / "pylock.toml")
    return dest


def example_locks(root: Path = REPO) -> dict[str, bytes]:
    """member directory -> pylock.toml bytes, for every member of the example workspace."""
    return {str(p.parent.relative_to(root)): p.read_bytes()
            for pattern in ("services/*/pylock.toml", "libs/*/pylock.toml")
            for p in sorted(root.glob(pattern))}
