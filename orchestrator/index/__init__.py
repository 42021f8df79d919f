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

Where things live (each module owns the names it defines; siblings import
them from there, and so do tests that patch one, e.g.
``orchestrator.index.transport.BACKOFF``):

- ``client``: ``IndexClient`` -- first index wins, ``sources`` pinning,
  prefetch and in-flight dedup, the metadata cache, downloads.
- ``pages``: parsing PEP 691 JSON and PEP 503 HTML project pages
  (``ProjectPage``).
- ``listing``: a page's files grouped by version (``ProjectFiles``,
  ``group_by_version``) and the pre-parsed listing kept in the page cache.
- ``metadata``: core metadata parsing, checks and its on-disk cache form.
- ``remotezip``: METADATA out of a remote wheel through ranged reads.
- ``transport``: the httpx client, retries with backoff, HTTP errors.
- ``auth``: per-index credentials from the environment, URL or ~/.netrc
  (``ResolvedIndex``: an index with its credentials split off the URL).

The package itself exports what the rest of orchestrator uses.
"""

from __future__ import annotations

from orchestrator.index.client import IndexClient
from orchestrator.index.listing import ProjectFiles, group_by_version, version_text
from orchestrator.index.pages import ProjectPage

__all__ = ["IndexClient", "ProjectFiles", "ProjectPage", "group_by_version", "version_text"]
