"""Parsing Simple API project pages: PEP 691 JSON and PEP 503 HTML.

With the PEP 592 (yanked), PEP 700 (versions, size, upload time) and
PEP 658/714 (core-metadata) fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urljoin

from orchestrator.index.auth import strip_credentials
from orchestrator.index.listing import Row, dist_file
from orchestrator.models import DistFile
from orchestrator.names import normalize

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
# PEP 691: prefer JSON, accept either HTML flavour from older servers.
ACCEPT = f"{JSON_TYPE}, {HTML_TYPE};q=0.2, text/html;q=0.01"


@dataclass(frozen=True, slots=True)
class ProjectPage:
    """A project as one index lists it."""

    name: str  # normalized
    index: str  # IndexSpec.name of the index that answered
    files: Sequence[DistFile]  # a tuple, or ProjectFiles from IndexClient
    versions: tuple[str, ...] = ()  # PEP 700; empty when the index sent HTML


def _absolute_url(href: str, base: str) -> tuple[str, str | None]:
    """(absolute URL without credentials or fragment, sha256 from a ``#sha256=`` fragment)."""
    # Indexes usually link absolute URLs; skipping urljoin/urlsplit for them
    # makes parsing numpy's 10^4-file page several times faster.
    absolute = href if href.startswith(("https://", "http://")) else urljoin(base, href)
    url, _, fragment = absolute.partition("#")
    parts = url.split("/", 3)
    if len(parts) > 2 and "@" in parts[2]:
        url = strip_credentials(url)
    algo, _, digest = fragment.partition("=")
    return url, (digest.lower() if algo == "sha256" and digest else None)


def _filename_of(url: str) -> str:
    return unquote(url.split("?", 1)[0].rsplit("/", 1)[-1])


def _metadata_flag(value: object) -> tuple[bool, str | None]:
    """(has_metadata, sha256 or "") from a PEP 691 core-metadata value."""
    if isinstance(value, dict):
        return True, str(value.get("sha256", "")).lower()
    if value is True:
        return True, ""
    return False, None


def parse_json_page(body: bytes, page_url: str, index: str) -> ProjectPage:
    """A PEP 691 project page (with PEP 700 and PEP 714 fields)."""
    name, rows, versions = json_rows(body, page_url)
    return ProjectPage(normalize(name), index, tuple(dist_file(r, index) for r in rows), versions)


def json_rows(body: bytes, page_url: str) -> tuple[str, list[Row], tuple[str, ...]]:
    """(name, file rows, PEP 700 versions) of a PEP 691 page."""
    data = json.loads(body)
    rows: list[Row] = []
    for entry in data.get("files", ()):
        url, fragment_sha = _absolute_url(entry["url"], page_url)
        hashes = entry.get("hashes") or {}
        meta = entry.get("core-metadata", entry.get("dist-info-metadata", False))
        has_metadata, metadata_sha = _metadata_flag(meta)
        yanked = entry.get("yanked", False)
        size = entry.get("size")
        rows.append((
            str(entry["filename"]),
            url,
            hashes.get("sha256") or fragment_sha or None,
            size if isinstance(size, int) else None,
            entry.get("requires-python") or None,
            yanked if isinstance(yanked, str) else "" if yanked else None,
            entry.get("upload-time"),
            metadata_sha,
            has_metadata,
        ))
    versions = tuple(str(v) for v in data.get("versions", ()))
    return str(data.get("name", "")), rows, versions


def _parse_links(text: str) -> tuple[list[dict[str, str | None]], str | None]:
    """The attributes of every ``<a>``, and the first ``<base href>``, of an HTML page."""
    # Imported here: most indexes answer in JSON, and start-up time counts.
    from html.parser import HTMLParser

    links: list[dict[str, str | None]] = []
    base: list[str | None] = []

    class LinkParser(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "a":
                links.append(dict(attrs))
            elif tag == "base" and not base:
                base.append(dict(attrs).get("href"))

    parser = LinkParser(convert_charrefs=True)
    parser.feed(text)
    parser.close()
    return links, (base[0] if base else None)


def _html_metadata_flag(attrs: Mapping[str, str | None]) -> tuple[bool, str | None]:
    for key in ("data-core-metadata", "data-dist-info-metadata"):
        if key in attrs:
            value = (attrs[key] or "").strip()
            if value.lower() == "false":
                return False, None
            algo, _, digest = value.partition("=")
            return True, digest.lower() if algo == "sha256" else ""
    return False, None


def parse_html_page(body: bytes, page_url: str, index: str, name: str) -> ProjectPage:
    """A PEP 503 project page with PEP 592/658/714 ``data-*`` attributes."""
    return ProjectPage(name, index, tuple(dist_file(r, index) for r in html_rows(body, page_url)))


def html_rows(body: bytes, page_url: str) -> list[Row]:
    links, base = _parse_links(body.decode("utf-8", errors="replace"))
    base_url = urljoin(page_url, base) if base else page_url
    rows: list[Row] = []
    for attrs in links:
        href = attrs.get("href")
        if not href:
            continue
        url, sha = _absolute_url(href, base_url)
        has_metadata, metadata_sha = _html_metadata_flag(attrs)
        yanked = (attrs.get("data-yanked") or "") if "data-yanked" in attrs else None
        requires_python = attrs.get("data-requires-python") or None
        rows.append((_filename_of(url), url, sha, None, requires_python, yanked, None,
                     metadata_sha, has_metadata))
    return rows
