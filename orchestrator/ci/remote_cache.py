"""The shared wheel cache of CI runners: built wheels as OCI artifacts in a registry.

Behind ``cache: {remote: oci://HOST/REPO}`` in workspace.yaml. A wheel built
from an sdist or a member is pushed as an artifact of one layer (the wheel,
its file name in the layer's ``org.opencontainers.image.title``) under a tag
derived from the local cache's key (the sdist's sha256 or the member's source
digest, plus the target), so another runner with an empty cache downloads it
instead of building. The layer's digest is the wheel's sha256, checked on the
way in, so a registry cannot hand back other bytes than were pushed.

Trade-off: a download per wheel and a registry that holds every build (prune
it with the registry's own retention), against the build time saved; a
registry that cannot be reached only costs the build it would have saved.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import PublishError, WorkspaceError

if TYPE_CHECKING:
    from orchestrator.oci.registry import Client

ARTIFACT_TYPE = "application/vnd.orchestrator.wheel.v1"
LAYER_TYPE = "application/vnd.orchestrator.wheel.v1+zip"
EMPTY_CONFIG = b"{}"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
TITLE = "org.opencontainers.image.title"
_WHEEL_NAME = re.compile(r"^[A-Za-z0-9_.+!-]+\.whl$")


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class RemoteWheels:
    """Wheels in ``oci://HOST/REPO``; every failure to reach it is a miss, never an error."""

    host: str
    repository: str

    @classmethod
    def parse(cls, url: str) -> RemoteWheels:
        match = re.fullmatch(r"oci://([^/]+)/([a-z0-9._/-]+)", url)
        if match is None:
            raise WorkspaceError(f"cache.remote {url!r} is not an oci://HOST/REPO address",
                                 hint="write e.g. `remote: oci://127.0.0.1:5000/acme/wheels`",
                                 key="cache.remote", expected="oci://HOST/REPO", actual=url)
        return cls(match.group(1), match.group(2))

    def _client(self) -> Client:
        from orchestrator.oci.registry import Client, Reference

        return Client(Reference(self.host, self.repository, None, None))

    @staticmethod
    def tag(key: str) -> str:
        """A registry tag for a local cache key (any text)."""
        return "wheel-" + hashlib.sha256(key.encode()).hexdigest()[:48]

    def fetch(self, key: str, into: Path) -> Path | None:
        """The wheel stored under *key*, written into the directory *into*; None on a miss."""
        import httpx

        from orchestrator.oci.registry import get_manifest

        client = self._client()
        try:
            got = get_manifest(client, self.tag(key))
            if got.status_code != 200:
                return None
            layer = json.loads(got.content)["layers"][0]
            name = str(layer["annotations"][TITLE])
            if not _WHEEL_NAME.match(name):  # a name from the registry, never a path
                return None
            blob = client.request("GET", f"{client.ref.base_url}/blobs/{layer['digest']}")
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
            return None
        finally:
            client.close()
        if blob.status_code != 200 or _sha256(blob.content) != layer["digest"]:
            return None
        path = into / name
        path.write_bytes(blob.content)
        return path

    def store(self, key: str, wheel: Path) -> bool:
        """Push *wheel* under *key*; False when the registry refuses or cannot be reached."""
        import httpx

        from orchestrator.oci.registry import put_manifest, upload_bytes

        data = wheel.read_bytes()
        client = self._client()
        try:
            for blob in (EMPTY_CONFIG, data):
                upload_bytes(client, blob)
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                "artifactType": ARTIFACT_TYPE,
                "config": {"mediaType": EMPTY_TYPE, "digest": _sha256(EMPTY_CONFIG),
                           "size": len(EMPTY_CONFIG)},
                "layers": [{"mediaType": LAYER_TYPE, "digest": _sha256(data),
                            "size": len(data), "annotations": {TITLE: wheel.name}}],
            }, sort_keys=True).encode()
            put = put_manifest(client, self.tag(key), manifest, MANIFEST_TYPE)
            return put.status_code in (200, 201)
        except (httpx.HTTPError, PublishError):
            return False
        finally:
            client.close()
