"""Parsing Simple API project pages: PEP 691 JSON and PEP 503 HTML.

With the PEP 592 (yanked), PEP 700 (versions, size, upload time) and
PEP 658/714 (core-metadata) fields.
"""

from __future__ import annotations

import json
import re
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


class PageFormatError(ValueError):
    """A page that is not a simple-API page this client reads; *hint* says what to do."""

    def __init__(self, problem: str, hint: str) -> None:
        super().__init__(problem)
        self.hint = hint


_REFRESH_HINT = "retry with --refresh; if it persists, the index is misbehaving"
_NOT_SIMPLE_HINT = (
    "check that the index URL in workspace.yaml is the simple API's (it usually ends "
    "in /simple)"
)


def _type_name(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(value), "a value")


def _malformed(key: str, expected: str, value: object) -> PageFormatError:
    return PageFormatError(
        f"malformed page at key {key}: expected {expected}, got {_type_name(value)}",
        _REFRESH_HINT,
    )


def _check_api_version(version: object) -> None:
    major = str(version).split(".", 1)[0].strip()
    if major != "1":
        raise PageFormatError(
            f"unsupported simple-API version {version} (this orchestrator reads 1.x)",
            "upgrade orchestrator, or ask the index for version 1 of the API",
        )


def _str_or_none(entry: Mapping[str, object], key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is not None and not isinstance(value, str):
        raise _malformed(f"{where}.{key}", "a string", value)
    return value or None


def json_rows(body: bytes, page_url: str) -> tuple[str, list[Row], tuple[str, ...]]:
    """(name, file rows, PEP 700 versions) of a PEP 691 page.

    A value of the wrong type raises PageFormatError naming its key
    (``files[3].url``), and an API version other than 1.x is named as such.
    """
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise PageFormatError(f"the page is not valid JSON ({exc})", _REFRESH_HINT) from None
    if not isinstance(data, dict):
        raise _malformed("(top level)", "an object", data)
    meta = data.get("meta", {})
    if isinstance(meta, dict) and "api-version" in meta:
        _check_api_version(meta["api-version"])
    files = data.get("files", [])
    if not isinstance(files, list):
        raise _malformed("files", "an array", files)
    rows: list[Row] = []
    append = rows.append
    for i, entry in enumerate(files):
        row = _plain_row(entry)  # most entries, without the checks that name keys
        append(_checked_row(entry, i, page_url) if row is None else row)
    versions = data.get("versions", [])
    if not isinstance(versions, list):
        raise _malformed("versions", "an array", versions)
    name = data.get("name", "")
    if not isinstance(name, str):
        raise _malformed("name", "a string", name)
    return name, rows, tuple(str(v) for v in versions)


def _plain_row(entry: object) -> Row | None:
    """The row of an entry as PyPI writes them, or None to take ``_checked_row``'s way.

    Pydantic-core's page lists 15,000 files; this is the same row as the
    checked way would build, at half the cost. Anything unusual (an odd type,
    a relative URL, a fragment, credentials) goes the checked way, which
    gives the same row or names the bad key.
    """
    if type(entry) is not dict:
        return None
    get = entry.get
    url = get("url")
    filename = get("filename")
    hashes = get("hashes")
    requires_python = get("requires-python")
    upload_time = get("upload-time")
    if (type(url) is not str or type(filename) is not str
            or not url.startswith("https://") or "#" in url or "@" in url
            or (hashes is not None and type(hashes) is not dict)
            or (requires_python is not None and type(requires_python) is not str)
            or (upload_time is not None and type(upload_time) is not str)):
        return None
    sha256 = hashes.get("sha256") if hashes else None
    if sha256 is not None and type(sha256) is not str:
        return None
    meta_flag = entry["core-metadata"] if "core-metadata" in entry else get(
        "dist-info-metadata", False)
    has_metadata, metadata_sha = _metadata_flag(meta_flag)
    yanked = get("yanked", False)
    size = get("size")
    return (
        filename,
        url,
        sha256 or None,
        size if type(size) is int else None,
        requires_python or None,
        yanked if type(yanked) is str else "" if yanked else None,
        upload_time or None,
        metadata_sha,
        has_metadata,
    )


def _checked_row(entry: object, i: int, page_url: str) -> Row:
    """The row of one ``files`` entry; PageFormatError names a key of the wrong type."""
    where = f"files[{i}]"
    if not isinstance(entry, dict):
        raise _malformed(where, "an object", entry)
    for key in ("url", "filename"):
        if not isinstance(entry.get(key), str):
            raise _malformed(f"{where}.{key}", "a string", entry.get(key))
    url, fragment_sha = _absolute_url(entry["url"], page_url)
    hashes = entry.get("hashes") or {}
    if not isinstance(hashes, dict):
        raise _malformed(f"{where}.hashes", "an object", hashes)
    sha256 = hashes.get("sha256")
    if sha256 is not None and not isinstance(sha256, str):
        raise _malformed(f"{where}.hashes.sha256", "a string", sha256)
    meta_flag = entry.get("core-metadata", entry.get("dist-info-metadata", False))
    has_metadata, metadata_sha = _metadata_flag(meta_flag)
    yanked = entry.get("yanked", False)
    size = entry.get("size")
    return (
        entry["filename"],
        url,
        sha256 or fragment_sha or None,
        size if isinstance(size, int) and not isinstance(size, bool) else None,
        _str_or_none(entry, "requires-python", where),
        yanked if isinstance(yanked, str) else "" if yanked else None,
        _str_or_none(entry, "upload-time", where),
        metadata_sha,
        has_metadata,
    )


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


_REPOSITORY_VERSION = re.compile(
    r"""<meta\s+name=["']pypi:repository-version["']\s+content=["']([^"']*)["']""", re.I
)


def html_rows(body: bytes, page_url: str) -> list[Row]:
    """The file rows of a PEP 503 page; PageFormatError for HTML that is no such page."""
    text = body.decode("utf-8", errors="replace")
    version = _REPOSITORY_VERSION.search(text)
    if version is not None:
        _check_api_version(version.group(1))
    links, base = _parse_links(text)
    if not links and text.strip() and not re.search(r"<(html|body|!doctype)\b", text, re.I):
        # An empty project page is still an HTML page; this is something else
        raise PageFormatError(
            "the page is not a simple-API page (no links, and not an HTML document)",
            _NOT_SIMPLE_HINT,
        )
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
