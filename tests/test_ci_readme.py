"""The README's CI section is what the generator writes for the example workspace."""

from __future__ import annotations

from pathlib import Path

from orchestrator.ci.readme import BEGIN, END, replace_section, section
from orchestrator.workspace import load_workspace

REPO = Path(__file__).parents[1]


def test_readme_ci_section_is_generated() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    committed = BEGIN + readme.split(BEGIN, 1)[1].split(END, 1)[0] + END + "\n"
    assert committed == section(load_workspace(REPO)), (
        "the README's CI section is stale: run `.venv/bin/python -m orchestrator.ci.readme`")


def test_replace_section_is_idempotent_and_inserts_before_development() -> None:
    ws = load_workspace(REPO)
    plain = "# x\n\n## Development\n\ntext\n"
    once = replace_section(plain, ws)
    assert once.index("## CI") < once.index("## Development")
    assert replace_section(once, ws) == once
