"""Index credentials: from the environment, the URL or ~/.netrc, per index.

Credentials go only to their index's origin and never into a URL, message or
log: ``ResolvedIndex`` keeps them beside a URL stripped of them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from orchestrator.models import IndexSpec


@dataclass(frozen=True, slots=True)
class ResolvedIndex:
    """An IndexSpec with credentials split off its URL."""

    name: str
    url: str  # no credentials, no trailing slash
    origin: tuple[str, str]  # (scheme, host:port) that may receive `auth`
    auth: tuple[str, str] | None

    def describe(self) -> str:
        return f"'{self.name}' ({redact_url(self.url)})"


def origin_of(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, f"{parts.hostname or ''}:{parts.port or default}"


def strip_credentials(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


_TOKEN_SEGMENT = re.compile(r"pypi-[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w+")


def redact_url(url: str) -> str:
    """*url* as it may be shown or logged: no credentials, and path tokens masked.

    Private indexes often take their token in the path
    (``https://host/pypi-AgEI…/simple``); a segment with a token's shape, or
    a long mix of letters and digits, is shown as ``****``.
    """
    url = strip_credentials(url)
    parts = urlsplit(url)
    segments = parts.path.split("/")
    masked = ["****" if _looks_like_token(unquote(seg)) else seg for seg in segments]
    if masked == segments and not parts.query:
        return url
    query = "****" if parts.query else ""
    return urlunsplit(parts._replace(path="/".join(masked), query=query))


def secret_prefix(url: str) -> tuple[str, str] | None:
    """(real, masked) prefix of an index URL up to its last token-shaped path segment.

    None when the URL's path carries no token. Locks record URLs under the
    masked prefix; sync puts the real one back from workspace.yaml (where it
    comes from the environment or the URL the user configured), so a token
    in an index path never lands in a pylock.toml.
    """
    parts = urlsplit(strip_credentials(url))
    segments = parts.path.split("/")
    last = max((i for i, seg in enumerate(segments) if _looks_like_token(unquote(seg))),
               default=None)
    if last is None:
        return None
    head = segments[:last + 1]
    real = urlunsplit(parts._replace(path="/".join(head), query="", fragment=""))
    masked_path = "/".join("****" if _looks_like_token(unquote(seg)) else seg for seg in head)
    return real, urlunsplit(parts._replace(path=masked_path, query="", fragment=""))


def hide_index_secrets(url: str, indexes: Sequence[IndexSpec]) -> str:
    """*url* with the token-carrying prefix of the index it belongs to masked."""
    return _swap_prefix(url, indexes, hide=True)


def restore_index_secrets(url: str, indexes: Sequence[IndexSpec]) -> str:
    """The inverse of hide_index_secrets, from the configured index URLs."""
    return _swap_prefix(url, indexes, hide=False)


def _swap_prefix(url: str, indexes: Sequence[IndexSpec], *, hide: bool) -> str:
    for spec in indexes:
        found = _index_secret_prefix(spec.url)
        if found is not None:
            old, new = found if hide else found[::-1]
            if url.startswith(old):
                return new + url[len(old):]
    return url


@lru_cache(maxsize=64)
def _index_secret_prefix(index_url: str) -> tuple[str, str] | None:
    """secret_prefix of a configured index URL, worked out once: every file URL of a
    lock being written (or installed) is checked against each index."""
    return secret_prefix(index_url)


def _looks_like_token(segment: str) -> bool:
    if _TOKEN_SEGMENT.fullmatch(segment):
        return True
    if len(segment) < 20 or "." in segment:  # file names keep their dots
        return False
    has_digit = any(c.isdigit() for c in segment)
    has_alpha = any(c.isalpha() for c in segment)
    return has_digit and has_alpha and len(set(segment)) >= 12


def env_prefix(index_name: str) -> str:
    """``ORCHESTRATOR_INDEX_<NAME>``: the name upper-cased, non-alphanumerics as ``_``."""
    return "ORCHESTRATOR_INDEX_" + re.sub(r"[^A-Za-z0-9]", "_", index_name).upper()


def _netrc_auth(host: str) -> tuple[str, str] | None:
    path = os.environ.get("NETRC") or str(Path.home() / ".netrc")
    if not os.path.exists(path):
        return None  # the usual case; netrc would say so after its import
    import netrc

    try:
        entry = netrc.netrc(path).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return None  # a missing or broken netrc is not ours to complain about
    if entry is None:
        return None
    login, _account, password = entry
    return login or "", password or ""


def resolve_index(spec: IndexSpec) -> ResolvedIndex:
    """Credentials from the environment, then the URL, then ~/.netrc."""
    prefix = env_prefix(spec.name)
    user = os.environ.get(f"{prefix}_USERNAME")
    password = os.environ.get(f"{prefix}_PASSWORD")
    parts = urlsplit(spec.url)
    auth: tuple[str, str] | None
    if user is not None or password is not None:
        auth = (user or "", password or "")
    elif parts.username is not None:
        auth = (unquote(parts.username), unquote(parts.password or ""))
    else:
        auth = _netrc_auth(parts.hostname or "")
    url = strip_credentials(spec.url).rstrip("/")
    return ResolvedIndex(spec.name, url, origin_of(url), auth)


def basic_auth(username: str, password: str) -> str:
    import base64

    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"
