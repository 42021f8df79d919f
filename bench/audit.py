"""Time `orchestrator audit` and `check` on the example workspace, from a local advisory database.

Usage (from the repository root):

    /work/venv/bin/python bench/audit.py [--db /work/shared/data/advisories] [--warm 10]

Each run works on its own copy of the workspace and cache dir. It times, as
subprocesses (what a CI job pays, start-up included):

- ``audit, cold``: the first audit, which parses every OSV file of the
  database into the cache (once, before the warm runs);
- ``audit, warm``: the whole workspace audited from the cached database
  (the goal: under 1 s);
- ``audit --format sarif, warm``;
- ``check``: the governance gate with no `audit.db` configured (goal: < 0.3 s),
  and ``check, audit.db set``: with the database configured.

Prints median (min-max) per scenario and writes the samples to bench/results/.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    REPO_ROOT,
    Summary,
    copy_workspace,
    machine_info,
    orchestrator_cmd,
    python_env,
    run_timed,
    write_results,
)

DEFAULT_DB = Path("/work/shared/data/advisories")
GOALS = {"audit, warm": 1.0, "check": 0.3}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=DEFAULT_DB,
                        help="a directory of OSV files or an OSV zip export")
    parser.add_argument("--warm", type=int, default=10, help="repetitions of each warm run")
    args = parser.parse_args(argv)
    exe = orchestrator_cmd()
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        root = copy_workspace(REPO_ROOT, Path(tmp) / "ws")
        env = python_env({"ORCHESTRATOR_CACHE_DIR": str(Path(tmp) / "cache")})
        audit = [*exe, "-q", "audit", "--db", str(args.db)]
        samples["audit, cold"] = [run_timed(audit, root, env, ok_codes=(0, 1))]
        scenarios = {
            "audit, warm": audit,
            "audit --format sarif, warm": [*audit, "--format", "sarif"],
            "check": [*exe, "-q", "check"],
        }
        for _ in range(args.warm):
            for name, cmd in scenarios.items():
                samples.setdefault(name, []).append(run_timed(cmd, root, env, ok_codes=(0, 1)))
        manifest = root / "workspace.yaml"
        manifest.write_text(manifest.read_text() + f"audit:\n  db: {args.db}\n")
        samples["check, audit.db set"] = [
            run_timed([*exe, "-q", "check"], root, env, ok_codes=(0, 1))
            for _ in range(args.warm)]
    stats = {name: Summary.of(times) for name, times in samples.items()}
    print(f"orchestrator audit on the example workspace, database {args.db}\n")
    print("| scenario | median (min-max) | goal |")
    print("|---|---:|---:|")
    for name, summary in stats.items():
        goal = f"< {GOALS[name]} s" if name in GOALS else ""
        print(f"| {name} | {summary.cell()} | {goal} |")
    path = write_results("audit", {"machine": machine_info(), "db": str(args.db),
                                   "samples": samples})
    print(f"\nsamples: {path}")
    missed = [n for n, goal in GOALS.items() if stats[n].median >= goal]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
