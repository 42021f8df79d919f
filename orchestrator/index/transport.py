"""HTTP transport: the httpx client, retries with backoff, and HTTP errors.

httpx is imported only when a request is made: a warm run may make none.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.errors import PackageIndexError
from orchestrator.index.auth import (
    ResolvedIndex,
    basic_auth,
    env_prefix,
    origin_of,
    redact_url,
)

if TYPE_CHECKING:
    import httpx

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRIES = 3  # attempts after the first
BACKOFF = 0.25  # seconds before the first retry; doubles each time
MAX_RETRY_AFTER = 10.0
_CONNECT = 10.0  # seconds to connect, at most
CHUNK = 256 * 1024


class DownloadInterruptedError(Exception):
    """A download broke off mid-body (internal; the caller may restart it)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclass(frozen=True, slots=True)
class Deadlines:
    """How long one request may take: to connect, for each read, and in all.

    *total* bounds everything a request does, its retries and its body
    included, so an index that drips one byte at a time or never answers
    fails within it. *read* bounds the wait for the first byte and for each
    one after (None: only *total* does). workspace.yaml's ``http.timeout``
    sets them (``configured``); ``ORCHESTRATOR_HTTP_TIMEOUT`` sets *total*
    (seconds) over it. *origin* says where each came from, for messages.
    """

    total: float = 30.0
    connect: float = _CONNECT
    read: float | None = None
    origin: tuple[tuple[str, str], ...] = ()  # (field, where it was set), e.g. ("total", ...)

    @classmethod
    def configured(cls, connect: float | None, read: float | None, total: float | None,
                   file: str = "workspace.yaml") -> Deadlines:
        """The deadlines ``http.timeout`` in *file* sets (None: the default)."""
        given = {"connect": connect, "read": read, "total": total}
        full = cls().total if total is None else total
        return cls(
            total=full, connect=min(_CONNECT if connect is None else connect, full), read=read,
            origin=tuple((key, f"http.timeout.{key} in {file}") for key, value in given.items()
                         if value is not None),
        )

    def where(self, kind: str) -> str:
        return dict(self.origin).get(kind, "the default")

    @classmethod
    def from_env(cls, base: Deadlines | None = None) -> Deadlines:
        """*base* (default: the defaults) with ``ORCHESTRATOR_HTTP_TIMEOUT``, which wins."""
        base = base if base is not None else cls()
        text = os.environ.get(TIMEOUT_ENV, "").strip()
        if not text:
            return base
        try:
            total = float(text)
        except ValueError:
            total = 0.0
        if not 0 < total < 86400:
            raise PackageIndexError(
                f"{TIMEOUT_ENV}={text!r} is not a number of seconds",
                hint=f"set {TIMEOUT_ENV} to a number such as 30, or unset it", key=TIMEOUT_ENV,
            )
        origin = (*(o for o in base.origin if o[0] != "total"), ("total", TIMEOUT_ENV))
        return cls(total=total, connect=min(base.connect, total), read=base.read, origin=origin)

    def describe(self, kind: str = "total") -> str:
        """``2 s (http.timeout.total in workspace.yaml)``: the limit and where it was set."""
        value = {"connect": self.connect, "read": self.read}.get(kind) or self.total
        where = self.where(kind)
        if kind != "total":
            where = f"{kind} timeout, {where}"
        return f"{value:g} s ({where})"


TIMEOUT_ENV = "ORCHESTRATOR_HTTP_TIMEOUT"
_DEADLINE = "orchestrator.deadline"  # response.extensions key: (monotonic end, Deadlines)


def get_with_retries(
    http: httpx.Client, index: ResolvedIndex, url: str, headers: Mapping[str, str],
    deadlines: Deadlines | None = None,
) -> httpx.Response:
    """A streamed GET with retries; the caller closes the response.

    Credentials go only to the index's own origin. Only failures that say
    nothing was served are retried (connection errors, 5xx and 429), with
    jittered exponential backoff, and only while the request's deadline
    allows; a server that goes silent mid-answer is not asked again. Read
    the body with ``read_body``/``iter_body``, which keep to the deadline.
    *deadlines* are workspace.yaml's (``ORCHESTRATOR_HTTP_TIMEOUT`` still wins).
    """
    import httpx

    limits = Deadlines.from_env(deadlines)
    started = time.monotonic()
    end = started + limits.total
    sent = dict(headers)
    if index.auth is not None and origin_of(url) == index.origin:
        sent["Authorization"] = basic_auth(*index.auth)
    for attempt in range(RETRIES + 1):
        remaining = end - time.monotonic()
        read = remaining if limits.read is None else min(limits.read, remaining)
        timeout = httpx.Timeout(max(remaining, 0.01), connect=min(limits.connect, remaining),
                                read=max(read, 0.01))
        request = http.build_request("GET", url, headers=sent, timeout=timeout)
        try:
            response = http.send(request, stream=True)
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout) and _may_retry(attempt, end):
                sleep_before_retry(attempt, None)
                continue
            raise timeout_error(index, url, limits, started, attempt + 1,
                                _which(exc, limits, end)) from None
        except httpx.TransportError as exc:
            if not _may_retry(attempt, end):
                raise unreachable_error(index, url, exc, attempt + 1, started) from None
            sleep_before_retry(attempt, None)
            continue
        if response.status_code in RETRY_STATUSES and _may_retry(attempt, end):
            response.close()
            sleep_before_retry(attempt, response.headers.get("Retry-After"))
            continue
        import logging  # here: a run the cache answers makes no request (2 ms of start-up)

        logging.getLogger(__name__).debug("GET %s -> %s", redact_url(url), response.status_code)
        response.extensions[_DEADLINE] = (end, limits, started, attempt + 1)
        return response
    raise AssertionError("unreachable")  # the loop returns or raises


def _which(exc: Exception, limits: Deadlines, end: float) -> str:
    """The deadline that *exc* (an httpx timeout) ran into: connect, read or total."""
    if end - time.monotonic() <= 0.05:
        return "total"
    name = type(exc).__name__
    if name == "ConnectTimeout":
        return "connect"
    return "read" if name == "ReadTimeout" and limits.read is not None else "total"


def _may_retry(attempt: int, end: float) -> bool:
    return attempt < RETRIES and end - time.monotonic() > BACKOFF * (2**attempt) * 1.5


def iter_body(index: ResolvedIndex, response: httpx.Response) -> Iterator[bytes]:
    """The response's body in chunks, failing once the request's deadline has passed."""
    import httpx

    end, limits, started, attempts = response.extensions.get(
        _DEADLINE, (float("inf"), Deadlines(), time.monotonic(), 1)
    )
    url = str(response.request.url)
    try:
        # No chunk size: httpx would buffer a dripping body until a chunk fills,
        # and the deadline must be checked as the bytes arrive.
        for chunk in response.iter_bytes():
            if time.monotonic() > end:
                raise timeout_error(index, url, limits, started, attempts)
            yield chunk
    except httpx.TimeoutException as exc:
        raise timeout_error(index, url, limits, started, attempts,
                            _which(exc, limits, end)) from None
    except httpx.TransportError as exc:
        raise DownloadInterruptedError(exc) from exc


def read_body(index: ResolvedIndex, response: httpx.Response) -> bytes:
    """The whole body (``iter_body``); a broken-off body is an unreachable-index error."""
    try:
        return b"".join(iter_body(index, response))
    except DownloadInterruptedError as exc:
        raise unreachable_error(index, str(response.request.url), exc.cause) from None


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
    import random

    # jittered, so clients that failed together do not come back together
    delay = BACKOFF * (2**attempt) * random.uniform(0.5, 1.5)
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
    url = redact_url(url)
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


def unreachable_error(
    index: ResolvedIndex, url: str, exc: Exception, attempts: int = RETRIES + 1,
    started: float | None = None,
) -> PackageIndexError:
    reason = type(exc).__name__ + (f": {exc}" if str(exc) else "")
    waited = "" if started is None else f" over {time.monotonic() - started:.1f} s"
    return PackageIndexError(
        f"cannot reach index {index.describe()} at {redact_url(url)} "
        f"after {attempts} attempts{waited} ({reason})",
        hint="check the URL in workspace.yaml, your network and proxy settings; "
        "use --offline to work from the cache",
        index=index.name,
    )


def timeout_error(
    index: ResolvedIndex, url: str, limits: Deadlines, started: float, attempts: int,
    kind: str = "total",
) -> PackageIndexError:
    where = limits.where(kind)
    raise_it = where if where != "the default" else (
        TIMEOUT_ENV if kind == "total" else f"http.timeout.{kind} in workspace.yaml"
    )
    return PackageIndexError(
        f"index {index.describe()} did not answer {redact_url(url)} within "
        f"{limits.describe(kind)}: gave up after {time.monotonic() - started:.1f} s "
        f"and {attempts} attempt{'s' if attempts > 1 else ''}",
        hint=f"the index is slow or stuck; try again later, raise {raise_it}, "
        "or use --offline to work from the cache",
        index=index.name,
    )
