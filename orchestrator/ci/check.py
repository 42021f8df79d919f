"""`ci check`: is a committed pipeline file what `ci generate` writes today?

The file's header records the arguments it was generated with; the check
renders again with those and compares the bytes.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from orchestrator.ci.generate import DEFAULT_OUTPUT, HEADER_PREFIX, SYSTEMS, CiOptions, render
from orchestrator.errors import OrchestratorError
from orchestrator.models import Workspace


class CiError(OrchestratorError):
    """A pipeline file cannot be generated or checked: not generated, unreadable."""


@dataclass(frozen=True, slots=True)
class Checked:
    """One pipeline file and whether it matches what `ci generate` writes now."""

    file: Path
    options: CiOptions
    current: bool


def default_files(workspace: Workspace) -> list[Path]:
    """The generated files a workspace has at their default places."""
    found = [workspace.root / DEFAULT_OUTPUT[s] for s in SYSTEMS]
    return [f for f in found if f.is_file()]


def options_of(file: Path, text: str) -> CiOptions:
    """The options the file's header records."""
    for line in text.splitlines()[:3]:
        body = line.lstrip("#/ ")
        if body.startswith(HEADER_PREFIX):
            argv = shlex.split(body[len(HEADER_PREFIX):].split("; regenerate", 1)[0])
            return _parse(file, argv)
    raise CiError(f"{file} was not written by `orchestrator ci generate` (no header)",
                  hint="generate it with `orchestrator ci generate SYSTEM -o FILE`",
                  file=file)


def _parse(file: Path, argv: list[str]) -> CiOptions:
    if not argv or argv[0] not in SYSTEMS:
        raise CiError(f"{file}: the header names no CI system ({shlex.join(argv[:1])})",
                      hint="regenerate the file with `orchestrator ci generate`", file=file,
                      expected=", ".join(SYSTEMS), actual=argv[0] if argv else "")
    values: dict[str, str] = {}
    publish = False
    rest = iter(argv[1:])
    for arg in rest:
        if arg == "--publish":
            publish = True
        elif arg in ("-o", "--python", "--registry"):
            values[arg] = next(rest, "")
    system = next(s for s in SYSTEMS if s == argv[0])
    return CiOptions(system, values.get("-o", DEFAULT_OUTPUT[system]),
                     python=values.get("--python"), registry=values.get("--registry"),
                     publish=publish)


def check_file(workspace: Workspace, file: Path) -> Checked:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:  # a binary file is no pipeline either
        why = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise CiError(f"cannot read {file}: {why}",
                      hint="pass a file `orchestrator ci generate` wrote", file=file) from exc
    options = options_of(file, text)
    return Checked(file, options, render(workspace, options) == text)
