"""A pdm member: PEP 621 already; its dev groups and local references need converting.

- ``[tool.pdm.dev-dependencies]`` groups move to ``[dependency-groups]`` (pdm 2.20
  and newer read them there too), added after the items a group already has;
- ``lib @ file:///${PROJECT_ROOT}/../lib`` and ``-e file:///…#egg=lib`` on a
  member become the bare member name (see ``references.py``);
- pdm sources become workspace indexes (``indexes.py``); every other
  ``[tool.pdm]`` key stays for pdm.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from orchestrator.adopt import tomledit
from orchestrator.adopt.context import Conversion, MemberRefs, Where
from orchestrator.adopt.references import rewrite_member_references, to_member_name


def pdm_table(data: Mapping[str, object]) -> Mapping[str, object]:
    tool = data.get("tool")
    pdm = tool.get("pdm") if isinstance(tool, Mapping) else None
    return cast(Mapping[str, object], pdm) if isinstance(pdm, Mapping) else {}


def convert(text: str, data: Mapping[str, object], where: Where,
            refs: MemberRefs) -> Conversion:
    doc = tomledit.parse(text)
    notes = rewrite_member_references(doc, where, refs)
    dev = pdm_table(data).get("dev-dependencies")
    if dev is None:
        return Conversion(doc, {}, tuple(notes))
    if not isinstance(dev, Mapping):
        where.fail("tool.pdm.dev-dependencies", "expected a table of group = [requirements]")
    groups: dict[str, list[str]] = {}
    for group, items in dev.items():
        key = f"tool.pdm.dev-dependencies.{group}"
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            where.fail(key, "expected a list of requirements")
        groups[group] = [to_member_name(item, where, refs, f"{key}[{i}]")
                         for i, item in enumerate(items)]
    tomledit.merge_groups(doc, groups)
    tomledit.remove(doc, ["tool", "pdm"], ["dev-dependencies"])
    notes.append(f"[tool.pdm.dev-dependencies] -> [dependency-groups] "
                 f"{', '.join(groups)}")
    return Conversion(doc, {}, tuple(notes))
