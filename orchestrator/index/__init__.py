"""The Simple Repository API client: project pages, core metadata, downloads.

What it speaks: PEP 691 JSON (preferred through the Accept header) with a
PEP 503 HTML fallback, PEP 592 yanking, PEP 700 fields, PEP 658/714 metadata
files, and -- because the index these machines reach serves no PEP 658 files
-- a wheel's METADATA read through two or three HTTP Range requests (the
zip's tail, then the entry) instead of downloading the wheel.

How it is shaped for the resolver: one thread-safe ``IndexClient`` per run.
``prefetch_projects``/``prefetch_metadata`` start fetches in a thread pool;
``files``/``metadata`` wait for an in-flight fetch instead of repeating it,
and remember every answer for the client's lifetime.  Core metadata is
immutable, so it is cached on disk by the file's sha256 and a second run asks
the network nothing; pages are cached on disk with a TTL (see httpcache.py).

Security: the first index that has a project wins, so a later index can never
shadow it (dependency confusion) unless ``sources`` pins the project to that
index; credentials go only to their index's origin and never into a URL,
message or log.

Where things live:

- ``client``: ``IndexClient`` -- first index wins, ``sources`` pinning,
  prefetch and in-flight dedup, the metadata cache, downloads.
- ``pages``: parsing PEP 691 JSON and PEP 503 HTML project pages.
- ``listing``: a page's files grouped by version (``ProjectFiles``) and the
  pre-parsed listing kept in the page cache.
- ``metadata``: core metadata parsing, checks and its on-disk cache form.
- ``remotezip``: METADATA out of a remote wheel through ranged reads.
- ``transport``: the httpx client, retries with backoff, HTTP errors.
- ``auth``: per-index credentials from the environment, URL or ~/.netrc.

The names below are re-exported so that ``from orchestrator.index import ...``
keeps working.  Constants are copies: to change one (in a test), patch it in
the module that uses it, e.g. ``orchestrator.index.transport.BACKOFF``.
"""

from __future__ import annotations

from orchestrator.index.auth import env_prefix
from orchestrator.index.client import METADATA_BUCKET, SDIST_BUCKET, IndexClient
from orchestrator.index.listing import LISTING_KIND, ProjectFiles, group_by_version, version_text
from orchestrator.index.metadata import parse_core_metadata
from orchestrator.index.pages import (
    ACCEPT,
    HTML_TYPE,
    JSON_TYPE,
    ProjectPage,
    parse_html_page,
    parse_json_page,
)
from orchestrator.index.remotezip import TAIL_BYTES, metadata_from_zip
from orchestrator.index.transport import BACKOFF, CHUNK, MAX_RETRY_AFTER, RETRIES, RETRY_STATUSES

__all__ = [
    "ACCEPT",
    "BACKOFF",
    "CHUNK",
    "HTML_TYPE",
    "JSON_TYPE",
    "LISTING_KIND",
    "MAX_RETRY_AFTER",
    "METADATA_BUCKET",
    "RETRIES",
    "RETRY_STATUSES",
    "SDIST_BUCKET",
    "TAIL_BYTES",
    "IndexClient",
    "ProjectFiles",
    "ProjectPage",
    "env_prefix",
    "group_by_version",
    "metadata_from_zip",
    "parse_core_metadata",
    "parse_html_page",
    "parse_json_page",
    "version_text",
]
