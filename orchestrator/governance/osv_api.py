"""The OSV API as an advisory source: ``POST /v1/querybatch``, then ``GET /v1/vulns/ID``.

The batch endpoint answers, per (package, version) query, only the IDs and
modification times of the advisories that affect it (paged with
``next_page_token``); each full record is then fetched once and kept in the
cache (``osv-v1/vulns/ID.json``) until the API reports a newer
``modified``. Every batch answer is kept too (``osv-v1/queries/``), so that
when the API cannot be reached an audit can still run from the last answers
(``OsvUnreachableError`` says so; ``audit`` decides what to fall back to).

The base URL is ``https://api.osv.dev``, or ``$ORCHESTRATOR_OSV_URL`` (a
mirror, or the test suite's local server).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.atomic import write_bytes
from orchestrator.errors import GovernanceError
from orchestrator.governance.osv import ECOSYSTEM, Advisory, AdvisorySource
from orchestrator.names import normalize

if TYPE_CHECKING:
    import httpx

DEFAULT_URL = "https://api.osv.dev"
URL_VARIABLE = "ORCHESTRATOR_OSV_URL"
CACHE_BUCKET = "osv-v1"
BATCH = 1000  # the API's limit of queries per batch
PAGES = 20  # bounded paging: a package with more pages of advisories than this is cut off


class OsvUnreachableError(GovernanceError):
    """The OSV API did not answer; *cached* holds the last answers, when every query has one."""

    def __init__(self, message: str, *, hint: str | None = None,
                 cached: Mapping[str, Sequence[Advisory]] | None = None,
                 cached_at: float | None = None) -> None:
        super().__init__(message, hint=hint)
        self.cached = cached
        self.cached_at = cached_at


def api_url() -> str:
    return os.environ.get(URL_VARIABLE, DEFAULT_URL).rstrip("/")


@dataclass
class OsvApi:
    """An ``AdvisorySource`` over the OSV API, with its answers cached under *cache_dir*."""

    cache_dir: Path
    url: str = field(default_factory=api_url)
    timeout: float = 10.0
    _notes: list[str] = field(default_factory=list)

    @property
    def describe(self) -> str:
        return f"the OSV API ({self.url})"

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(self._notes)

    def advisories(self, packages: Collection[tuple[str, str]]) -> Mapping[str, Sequence[Advisory]]:
        import httpx

        queries = sorted({(normalize(n), v) for n, v in packages})
        try:
            with httpx.Client(timeout=self.timeout, headers={"User-Agent": "orchestrator"}) as http:
                found = self._query(http, queries)
                return self._records(http, found)
        except httpx.HTTPError as exc:
            raise self._unreachable(queries, exc) from None

    # -- the batch endpoint ------------------------------------------------------------

    def _query(self, http: httpx.Client, queries: Sequence[tuple[str, str]]
               ) -> dict[tuple[str, str], dict[str, str | None]]:
        """(name, version) -> {advisory ID: modified} for every query, paged to the end."""
        found: dict[tuple[str, str], dict[str, str | None]] = {q: {} for q in queries}
        pending: list[tuple[tuple[str, str], str | None]] = [(q, None) for q in queries]
        for _page in range(PAGES):
            if not pending:
                break
            again: list[tuple[tuple[str, str], str | None]] = []
            for start in range(0, len(pending), BATCH):
                chunk = pending[start:start + BATCH]
                body = {"queries": [_query_body(q, token) for q, token in chunk]}
                response = http.post(f"{self.url}/v1/querybatch", json=body)
                results = _checked(response, f"{self.url}/v1/querybatch").get("results")
                if not isinstance(results, list) or len(results) != len(chunk):
                    raise _bad_answer(self.url, "querybatch answered a different number of "
                                      "results than queries")
                for (query, _token), result in zip(chunk, results, strict=True):
                    vulns = result.get("vulns") if isinstance(result, dict) else None
                    for vuln in vulns or ():
                        if isinstance(vuln, dict) and isinstance(vuln.get("id"), str):
                            modified = vuln.get("modified")
                            found[query][vuln["id"]] = modified if isinstance(modified, str) \
                                else None
                    token = result.get("next_page_token") if isinstance(result, dict) else None
                    if isinstance(token, str) and token:
                        again.append((query, token))
            pending = again
        if pending:  # a report that silently lacks advisories would read as clean
            cut = ", ".join(sorted({f"{name} {version}" for (name, version), _t in pending}))
            self._notes.append(f"the OSV API listed more than {PAGES} pages of advisories for "
                               f"{cut}; the rest were not read")
        now = time.time()
        for query, ids in found.items():
            write_bytes(self._query_file(query), json.dumps(
                {"at": now, "vulns": ids}, sort_keys=True).encode())
        return found

    def _records(self, http: httpx.Client, found: Mapping[tuple[str, str], Mapping[str, str | None]]
                 ) -> dict[str, list[Advisory]]:
        records: dict[str, Advisory | None] = {}
        out: dict[str, list[Advisory]] = {name: [] for name, _v in found}
        for (name, _version), ids in found.items():
            for vuln_id, modified in sorted(ids.items()):
                if vuln_id not in records:
                    records[vuln_id] = self._record(http, vuln_id, modified)
                advisory = records[vuln_id]
                if advisory is not None and advisory not in out[name]:
                    out[name].append(advisory)
        return out

    def _record(self, http: httpx.Client, vuln_id: str, modified: str | None) -> Advisory | None:
        cached = self._cached_record(vuln_id)
        if cached is not None and (modified is None or cached.get("modified") == modified):
            return Advisory.from_osv(cached)
        url = f"{self.url}/v1/vulns/{vuln_id}"
        data = _checked(http.get(url), url)
        write_bytes(self._vuln_file(vuln_id), json.dumps(data, sort_keys=True).encode())
        return Advisory.from_osv(data)

    # -- the cache ------------------------------------------------------------------------

    def _vuln_file(self, vuln_id: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in vuln_id)
        return self.cache_dir / CACHE_BUCKET / "vulns" / f"{safe}.json"

    def _query_file(self, query: tuple[str, str]) -> Path:
        digest = hashlib.sha256("\0".join(query).encode()).hexdigest()[:32]
        return self.cache_dir / CACHE_BUCKET / "queries" / f"{digest}.json"

    def _cached_record(self, vuln_id: str) -> dict[str, object] | None:
        try:
            data = json.loads(self._vuln_file(vuln_id).read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _unreachable(self, queries: Sequence[tuple[str, str]],
                     exc: Exception) -> OsvUnreachableError:
        """The error for an API that did not answer, with the cached answers if complete."""
        cached: dict[str, list[Advisory]] = {name: [] for name, _v in queries}
        oldest: float | None = None
        for query in queries:
            try:
                answer = json.loads(self._query_file(query).read_bytes())
                ids = answer["vulns"]
                oldest = min(oldest or answer["at"], answer["at"])
            except (OSError, ValueError, KeyError, TypeError):
                cached = {}
                break
            for vuln_id in sorted(ids):
                record = self._cached_record(vuln_id)
                advisory = Advisory.from_osv(record) if record is not None else None
                if advisory is not None and advisory not in cached[query[0]]:
                    cached[query[0]].append(advisory)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return OsvUnreachableError(
            f"cannot reach the OSV API at {self.url} ({reason})",
            hint="pass --db PATH (or set audit.db in workspace.yaml) to a local copy of an "
            "advisory database, such as a checkout of the PyPA advisory database",
            cached=cached or None, cached_at=oldest if cached else None)


def _query_body(query: tuple[str, str], token: str | None) -> dict[str, object]:
    body: dict[str, object] = {"package": {"name": query[0], "ecosystem": ECOSYSTEM},
                               "version": query[1]}
    if token is not None:
        body["page_token"] = token
    return body


def _checked(response: httpx.Response, url: str) -> dict[str, object]:
    if response.status_code != 200:
        raise _bad_answer(url, f"HTTP {response.status_code}")
    try:
        data = response.json()
    except ValueError:
        raise _bad_answer(url, "the answer is not JSON") from None
    if not isinstance(data, dict):
        raise _bad_answer(url, "the answer is not a JSON object")
    return data


def _bad_answer(url: str, problem: str) -> GovernanceError:
    return GovernanceError(f"the OSV API answered badly at {url}: {problem}",
                           hint="retry later, or audit from a local database with --db PATH")


@dataclass
class OnlineSource:
    """The OSV API, falling back when it cannot be reached: to *local* (``--db`` or
    ``audit.db``) when there is one, else to the last cached answers when every query
    has one; else the error stands. *notes* says which was used."""

    api: OsvApi
    local: AdvisorySource | None = None
    _notes: list[str] = field(default_factory=list)
    _used: str | None = None

    @property
    def describe(self) -> str:
        return self._used or self.api.describe

    @property
    def notes(self) -> tuple[str, ...]:
        return (*self.api.notes, *self._notes)

    def advisories(self, packages: Collection[tuple[str, str]]) -> Mapping[str, Sequence[Advisory]]:
        try:
            return self.api.advisories(packages)
        except OsvUnreachableError as exc:
            if self.local is not None:
                self._used = self.local.describe
                self._notes.append(f"{exc.message}; audited from the local database "
                                   f"{self.local.describe} instead")
                return self.local.advisories(packages)
            if exc.cached is None:
                raise
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(exc.cached_at or 0))
            self._used = f"{self.api.describe}, cached answers"
            self._notes.append(f"{exc.message}; using its answers cached on {when}, which "
                               "may miss newer advisories")
            return exc.cached
