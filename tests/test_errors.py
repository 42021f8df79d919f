"""The error hierarchy: the data errors carry, how they render, and one wording style."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from pathlib import Path

import pytest

import orchestrator
from orchestrator import errors
from orchestrator.errors import (
    CacheError,
    ConflictCause,
    HashMismatchError,
    OrchestratorError,
    PackageIndexError,
    ResolutionError,
    WorkspaceError,
)

PACKAGE = Path(orchestrator.__file__).parent
ERROR_NAMES = {
    name
    for name, value in vars(errors).items()
    if isinstance(value, type) and issubclass(value, OrchestratorError)
}
PROPER_NOUNS = {"Python"}  # capitalised words a message may start with


def test_fields_default_to_none_and_render_message_and_hint() -> None:
    error = OrchestratorError("it broke")
    assert (error.message, error.hint, error.file, error.key) == ("it broke", None, None, None)
    assert (error.member, error.package, error.index) == (None, None, None)
    assert (error.expected, error.actual) == (None, None)
    assert str(error) == "it broke"
    assert str(OrchestratorError("it broke", hint="fix it")) == "it broke\nhint: fix it"


def test_fields_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        OrchestratorError("it broke", "fix it")  # type: ignore[call-arg]


def test_details_is_json_and_names_every_field() -> None:
    error = WorkspaceError(
        "workspace.yaml: indexes[0].url: expected an http(s) URL, got 'ftp://x'",
        hint="use https",
        file=Path("/ws/workspace.yaml"),
        key="indexes[0].url",
        expected="an http(s) URL",
        actual="'ftp://x'",
    )
    details = error.details()
    assert details == {
        "error": "WorkspaceError",
        "message": "workspace.yaml: indexes[0].url: expected an http(s) URL, got 'ftp://x'",
        "hint": "use https",
        "file": "/ws/workspace.yaml",
        "key": "indexes[0].url",
        "member": None,
        "package": None,
        "index": None,
        "expected": "an http(s) URL",
        "actual": "'ftp://x'",
    }
    assert json.loads(json.dumps(details)) == details


def test_resolution_error_carries_its_causes() -> None:
    causes = (
        ConflictCause("attrs", ("api", "attrs<24")),
        ConflictCause("attrs", ("api", "common 1.0", "attrs>=24")),
    )
    error = ResolutionError("cannot lock api", member="api", package="attrs", causes=causes)
    assert error.causes == causes
    assert [cause.requirement for cause in causes] == ["attrs<24", "attrs>=24"]
    details = error.details()
    assert (details["error"], details["member"], details["package"]) == (
        "ResolutionError", "api", "attrs"
    )
    assert details["causes"] == [
        {"package": "attrs", "chain": ["api", "attrs<24"]},
        {"package": "attrs", "chain": ["api", "common 1.0", "attrs>=24"]},
    ]
    assert ResolutionError("no targets").causes == ()


def test_conflict_causes_are_frozen_values() -> None:
    cause = ConflictCause(None, ("api", "Python>=3.12"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cause.chain = ()  # type: ignore[misc]
    assert len({cause, ConflictCause(None, ("api", "Python>=3.12"))}) == 1


def test_hierarchy() -> None:
    assert issubclass(HashMismatchError, CacheError)
    assert issubclass(PackageIndexError, OrchestratorError)
    assert all(issubclass(getattr(errors, name), Exception) for name in ERROR_NAMES)


def _messages() -> list[tuple[str, str]]:
    """(where, text) of every literal message and hint given to an orchestrator error."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name not in ERROR_NAMES:
                continue
            texts = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "hint")]
            for text in texts:
                literal = _literal(text)
                if literal is not None:
                    found.append((f"{path.relative_to(PACKAGE)}:{node.lineno}", literal))
    return found


def _literal(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(str(v.value) if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def test_messages_follow_one_wording_style() -> None:
    messages = _messages()
    assert len(messages) > 100  # the scan sees the package's raisers
    bad = [
        (where, text)
        for where, text in messages
        if text.endswith(".")
        or (re.match(r"[A-Z][a-z]+\b", text) and text.split()[0] not in PROPER_NOUNS)
    ]
    assert bad == []
