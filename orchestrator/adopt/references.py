"""PEP 508 direct references to members (``lib @ file:../lib``) as bare member names.

pdm writes local dependencies as ``lib @ file:///${PROJECT_ROOT}/../lib`` (and
``-e file:///${PROJECT_ROOT}/../lib#egg=lib`` in dev groups); Poetry 2 and
hand-written files use ``lib @ file:../lib``. In a workspace the bare name is
the edge, so a reference to a member becomes its name, keeping extras and
markers. A reference to anything else is refused: the workspace does not lock
direct references yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, cast
from urllib.parse import unquote, urlsplit

from orchestrator.adopt.context import MemberRefs, Where

if TYPE_CHECKING:
    from tomlkit import TOMLDocument
    from tomlkit.items import Array

PROJECT_ROOT = "${PROJECT_ROOT}"


def to_member_name(text: str, where: Where, refs: MemberRefs, key: str) -> str:
    """*text* with a direct reference to a member replaced by the member's name."""
    from packaging.requirements import InvalidRequirement, Requirement

    editable = text.strip().startswith("-e ")
    body = text.strip()[3:].strip() if editable else text.strip()
    if editable:
        body = _editable_requirement(body, where, key)
    try:
        req = Requirement(body.replace(PROJECT_ROOT, where.directory.as_posix()))
    except InvalidRequirement as exc:
        where.fail(key, f"{text!r} is not a PEP 508 requirement ({str(exc).splitlines()[0]})")
    if req.url is None:
        return text
    member = _member_at(req.url, where, refs)
    if member is None:
        where.fail(key, f"{req.name!r} is a direct reference ({req.url!r}); direct references "
                   "are not supported yet",
                   f"depend on a published version of {req.name!r}, or make its directory a "
                   "workspace member", package=req.name)
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    marker = f"; {req.marker}" if req.marker else ""
    return f"{member}{extras}{marker}"


def _editable_requirement(body: str, where: Where, key: str) -> str:
    """``-e file:///…/lib#egg=lib`` or ``-e ../lib`` as ``lib @ file:…``."""
    url, _, fragment = body.partition("#")
    name = next((part[4:] for part in fragment.split("&") if part.startswith("egg=")), None)
    if name is None:
        path = url.removeprefix("file://").replace(PROJECT_ROOT, where.directory.as_posix())
        name = Path(path).name or "member"
    if not url.startswith("file:"):
        url = (where.directory / url).resolve().as_uri() if "://" not in url else url
    return f"{name} @ {url}"


def _member_at(url: str, where: Where, refs: MemberRefs) -> str | None:
    parts = urlsplit(url)
    if parts.scheme != "file":
        return None
    if parts.netloc not in ("", "localhost"):
        return None
    raw = unquote(parts.path)  # file:../lib stays relative to the member
    if raw.startswith("/"):
        raw = "/" + raw.lstrip("/")  # file:////abs after ${PROJECT_ROOT} is filled in
    return refs.at(where.directory, raw)


def rewrite_member_references(doc: TOMLDocument, where: Where, refs: MemberRefs) -> list[str]:
    """Replace direct references to members in *doc*'s requirement lists; returns notes."""
    notes = []
    for key, items in _requirement_lists(doc):
        for i, item in enumerate(items):
            if not isinstance(item, str):
                continue
            new = to_member_name(item, where, refs, f"{key}[{i}]")
            if new != item:
                items[i] = new
                notes.append(f"{key}: {item!r} -> {new!r} (a member is named, not referenced)")
    return notes


def _requirement_lists(doc: TOMLDocument) -> list[tuple[str, Array]]:
    from orchestrator.adopt import tomledit

    out: list[tuple[str, Array]] = []
    project = tomledit.get(doc, ["project"])
    if isinstance(project, Mapping):
        if isinstance(project.get("dependencies"), list):
            out.append(("project.dependencies", cast("Array", project["dependencies"])))
        extras = project.get("optional-dependencies")
        if isinstance(extras, Mapping):
            out += [(f"project.optional-dependencies.{name}", cast("Array", items))
                    for name, items in extras.items() if isinstance(items, list)]
    groups = tomledit.get(doc, ["dependency-groups"])
    if isinstance(groups, Mapping):
        out += [(f"dependency-groups.{name}", cast("Array", items))
                for name, items in groups.items() if isinstance(items, list)]
    return out
