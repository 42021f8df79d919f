"""HTTP transport: the httpx client, retries with backoff, and HTTP errors.

httpx is imported only when a request is made: a warm run may make none.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from orchestrator.errors import PackageIndexError
from orchestrator.index.auth import (
    ResolvedIndex,
    basic_auth,
    env_prefix,
    origin_of,
    strip_credentials,
)

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRIES = 3  # attempts after the first
BACKOFF = 0.25  # seconds before the first retry; doubles each time
MAX_RETRY_AFTER = 10.0
CHUNK = 256 * 1024


class DownloadInterruptedError(Exception):
    """A download broke off mid-body (internal; the caller may restart it)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


def get_with_retries(
    http: httpx.Client, index: ResolvedIndex, url: str, headers: Mapping[str, str]
) -> httpx.Response:
    """A streamed GET with retries; the caller closes the response.

    Credentials go only to the index's own origin.  Connection errors and
    5xx/429 answers are retried with exponential backoff.
    """
    import httpx

    sent = dict(headers)
    if index.auth is not None and origin_of(url) == index.origin:
        sent["Authorization"] = basic_auth(*index.auth)
    request = http.build_request("GET", url, headers=sent)
    for attempt in range(RETRIES + 1):
        try:
            response = http.send(request, stream=True)
        except httpx.TransportError as exc:
            if attempt == RETRIES:
                raise unreachable_error(index, url, exc) from None
            sleep_before_retry(attempt, None)
            continue
        if response.status_code in RETRY_STATUSES and attempt < RETRIES:
            response.close()
            sleep_before_retry(attempt, response.headers.get("Retry-After"))
            continue
        log.debug("GET %s -> %s", url, response.status_code)
        return response
    raise AssertionError("unreachable")  # the loop returns or raises


def make_http_client(max_workers: int) -> httpx.Client:
    import ssl

    import httpx

    # ssl.create_default_context() reads the system trust store (and
    # SSL_CERT_FILE); httpx's default certifi bundle lacks this machine's CA.
    return httpx.Client(
        verify=ssl.create_default_context(),
        timeout=httpx.Timeout(30.0, connect=10.0),
        limits=httpx.Limits(max_connections=max_workers + 4, max_keepalive_connections=max_workers),
        follow_redirects=True,  # httpx drops Authorization on cross-origin redirects
        headers={"User-Agent": "orchestrator"},
    )


def sleep_before_retry(attempt: int, retry_after: str | None) -> None:
    delay = BACKOFF * (2**attempt)
    if retry_after is not None and retry_after.strip().isdigit():
        delay = max(delay, min(float(retry_after), MAX_RETRY_AFTER))
    time.sleep(delay)


def content_type_of(response: httpx.Response) -> str:
    header: str = response.headers.get("Content-Type", "text/html")
    return header.split(";")[0].strip().lower()


def content_range_total(header: str | None) -> int | None:
    match = re.fullmatch(r"bytes \d+-\d+/(\d+)", (header or "").strip())
    return int(match.group(1)) if match else None


def content_range_start(header: str | None) -> int | None:
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", (header or "").strip())
    return int(match.group(1)) if match else None


def status_error(index: ResolvedIndex, url: str, status: int) -> PackageIndexError:
    url = strip_credentials(url)
    prefix = env_prefix(index.name)
    if status == 401:
        state = "rejected the credentials" if index.auth else "requires credentials"
        return PackageIndexError(
            f"index {index.describe()} {state} (HTTP 401) for {url}",
            hint=f"set {prefix}_USERNAME and {prefix}_PASSWORD, or add the host to ~/.netrc",
            index=index.name,
        )
    if status == 403:
        return PackageIndexError(
            f"index {index.describe()} denied access (HTTP 403) to {url}",
            hint=f"check that the account in {prefix}_USERNAME (or ~/.netrc) may read this index",
            index=index.name,
        )
    if status == 404:
        return PackageIndexError(
            f"index {index.describe()} has no file at {url} (HTTP 404), although it listed it",
            hint="the cached page may be stale; retry with --refresh",
            index=index.name,
        )
    return PackageIndexError(
        f"index {index.describe()} answered HTTP {status} for {url}",
        hint="the index may be down or overloaded; try again later, or use --offline "
        "if the cache has what you need",
        index=index.name,
    )


def unreachable_error(index: ResolvedIndex, url: str, exc: Exception) -> PackageIndexError:
    reason = type(exc).__name__ + (f": {exc}" if str(exc) else "")
    return PackageIndexError(
        f"cannot reach index {index.describe()} at {strip_credentials(url)} "
        f"after {RETRIES + 1} attempts ({reason})",
        hint="check the URL in workspace.yaml, your network and proxy settings; "
        "use --offline to work from the cache",
        index=index.name,
    )
