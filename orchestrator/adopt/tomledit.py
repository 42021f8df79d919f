"""Small tomlkit edits the converters share: new tables, merged groups, removed keys.

tomlkit keeps every comment and untouched table byte for byte; these helpers
only add what a conversion needs and take away what it replaced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from tomlkit import TOMLDocument
    from tomlkit.items import Array, Table

# A PEP 735 group item: a requirement, or {include-group = "name"}.
GroupItem = str | Mapping[str, str]


def parse(text: str) -> TOMLDocument:
    import tomlkit

    return tomlkit.parse(text)


def dumps(doc: TOMLDocument) -> str:
    import tomlkit

    return tomlkit.dumps(doc)


def as_dict(container: object) -> dict[str, Any]:
    """A tomlkit container as the mapping it is (tomlkit types it as a union of items)."""
    return cast(dict[str, Any], container)


def array(items: Iterable[object],
          comments: Mapping[str, Sequence[str]] | None = None) -> Array:
    """A TOML array, one item per line when it holds more than one.

    *comments* maps an item's text to the comment lines to write above it (the
    comments a converted table had on the key the item came from).
    """
    import tomlkit

    items = list(items)
    values = [_array_item(item) for item in items]
    out = tomlkit.array()
    if comments and any(isinstance(i, str) and i in comments for i in items):
        for item, value in zip(items, values, strict=True):
            for line in comments.get(item, ()) if isinstance(item, str) else ():
                out.add_line(comment=line)
            out.add_line(value)
        out.add_line(indent="")
        return out
    out.extend(values)
    # Short lists stay on one line (command = ["python", "-m", "x"]), as people write them.
    if len(out) > 1 and sum(len(str(item)) + 4 for item in items) > 60:
        out.multiline(True)
    return out


def _array_item(item: object) -> object:
    import tomlkit

    if isinstance(item, Mapping):
        inline = tomlkit.inline_table()
        inline.update(item)
        return inline
    if isinstance(item, str) and '"' in item and "'" not in item and "\n" not in item:
        # 'x; python_version < "3.11"' reads better than "x; python_version < \"3.11\""
        return tomlkit.string(item, literal=True)
    return item


def key_comments(doc: TOMLDocument, dotted: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The comment lines above each key of the table at *dotted*, and its inline comment."""
    from tomlkit.items import Comment, Table, Whitespace

    node = get(doc, dotted)
    if not isinstance(node, Table):
        return {}
    out: dict[str, tuple[str, ...]] = {}
    pending: list[str] = []
    for key, item in node.value.body:
        if key is None:
            if isinstance(item, Comment):
                pending.append(item.as_string().strip().lstrip("#").strip())
            elif isinstance(item, Whitespace) and "\n\n" in item.as_string():
                pending = []  # a blank line ends a comment block
            continue
        inline = "" if isinstance(item, Whitespace) else item.trivia.comment
        lines = [*pending, *([inline.lstrip("#").strip()] if inline else [])]
        if lines:
            out[key.key] = tuple(lines)
        pending = []
    return out


def table(values: Mapping[str, object]) -> Table:
    """A TOML table; lists become arrays and mappings inline tables."""
    import tomlkit

    out = tomlkit.table()
    for key, value in values.items():
        out[key] = _item(value)
    return out


def _item(value: object) -> object:
    import tomlkit

    if isinstance(value, list | tuple):
        return array(value)
    if isinstance(value, Mapping):
        inline = tomlkit.inline_table()
        inline.update(value)
        return inline
    return value


def append_table(doc: TOMLDocument, dotted: Sequence[str], values: Table) -> None:
    """Add ``[a.b]`` at the end of *doc*, after a blank line."""
    import tomlkit

    text = dumps(doc)
    if text and not text.endswith("\n\n"):
        doc.add(tomlkit.nl())
    if len(dotted) == 1:
        doc.add(dotted[0], values)
        return
    outer = tomlkit.table(is_super_table=True)
    inner = outer
    for part in dotted[1:-1]:
        nested = tomlkit.table(is_super_table=True)
        inner.add(part, nested)
        inner = nested
    inner.add(dotted[-1], values)
    doc.add(dotted[0], outer)


def get(doc: TOMLDocument, dotted: Sequence[str]) -> object | None:
    node: object = doc
    for part in dotted:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def merge_groups(doc: TOMLDocument, groups: Mapping[str, Sequence[GroupItem]]) -> None:
    """Add *groups* to ``[dependency-groups]``, after the items a group already has."""
    if not groups:
        return
    existing = get(doc, ["dependency-groups"])
    if existing is None:
        append_table(doc, ["dependency-groups"],
                     table({name: list(items) for name, items in groups.items()}))
        return
    current = as_dict(existing)
    for name, items in groups.items():
        if name in current:
            have = cast("Array", current[name])
            for item in items:
                if item not in have:
                    have.append(item)
            if len(have) > 1:
                have.multiline(True)
        else:
            current[name] = array(items)


def set_tool_options(doc: TOMLDocument, tool: str, values: Mapping[str, object]) -> None:
    """Set keys of ``[tool.<tool>]``, creating the table at the end when it is missing."""
    if not values:
        return
    import tomlkit

    existing = get(doc, ["tool", tool])
    if existing is None:
        tools = get(doc, ["tool"])
        if tools is None:
            append_table(doc, ["tool", tool], table(values))
            return
        # tomlkit places it after the last [tool.*] table of the first [tool] run;
        # the trailing newline keeps a blank line before whatever table follows.
        new = table(values)
        new.add(tomlkit.nl())
        as_dict(tools)[tool] = new
        return
    current = as_dict(existing)
    for key, value in values.items():
        if isinstance(value, Mapping) and isinstance(current.get(key), Mapping):
            as_dict(current[key]).update(value)
        else:
            current[key] = _item(value)


def remove(doc: TOMLDocument, dotted: Sequence[str], keys: Iterable[str]) -> None:
    """Delete *keys* from the table at *dotted*, then the table (and parents) if empty."""
    node = get(doc, dotted)
    if node is None:
        return
    container = as_dict(node)
    for key in keys:
        if key in container:
            del container[key]
    for depth in range(len(dotted), 0, -1):
        node = get(doc, dotted[:depth])
        if node is None or len(as_dict(node)) > 0:
            break
        parent = doc if depth == 1 else get(doc, dotted[:depth - 1])
        del as_dict(parent)[dotted[depth - 1]]
