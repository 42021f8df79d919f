"""Time the installer alone: venv creation and syncs of many small wheels, in one process.

Usage (from the repository root):

    /work/venv/bin/python bench/install_micro.py [--wheels 100] [--files 30] [--rounds 3]

Unlike ``sync.py`` this calls orchestrator's library (``venv.create_venv``,
``venv.sync_venv``) directly on wheels built in a temp dir: no CLI start-up,
no lock, no index, no competing tools. Each round starts from an empty cache
and times, in order:

- ``create venv``;
- ``sync, cold unpack``: every wheel unpacked into the cache, then installed;
- ``no-op sync``: the state record matches, nothing is inspected;
- ``sync, nothing to do, no state``: the record deleted, so every dist is read;
- ``sync into a fresh venv, warm``: the unpacked trees reused (the path
  ``orchestrator sync`` takes for a new venv).

Prints median (min-max) per step and writes the samples to bench/results/.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO_ROOT, Summary, machine_info, summary_dict, write_results

sys.path.insert(0, str(REPO_ROOT))  # orchestrator and the tests' wheel builder

from orchestrator.cache import WheelCache
from orchestrator.venv import WantedDist, create_venv, sync_venv
from tests.support.wheels import build_wheel, sha256_of

STEPS = (
    "create venv",
    "sync, cold unpack",
    "no-op sync",
    "sync, nothing to do, no state",
    "sync into a fresh venv, warm",
)


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def make_wheels(directory: Path, count: int, files: int) -> list[WantedDist]:
    wanted = []
    for i in range(count):
        contents = {f"m{i}/f{j}.py": f"X = {j}\n" * 50 for j in range(files)}
        wheel = build_wheel(directory, f"m{i}", "1.0", files=contents)
        wanted.append(WantedDist(f"m{i}", "1.0", wheel=wheel, sha256=sha256_of(wheel)))
    return wanted


def one_round(root: Path, wanted: Sequence[WantedDist], python: Path) -> dict[str, float]:
    cache = WheelCache(root / "cache")
    venv = root / "venv"
    times = {"create venv": timed(lambda: create_venv(venv, python))}
    times["sync, cold unpack"] = timed(lambda: sync_venv(venv, wanted, cache))
    times["no-op sync"] = timed(lambda: sync_venv(venv, wanted, cache))
    (venv / ".orchestrator" / "sync-state.json").unlink()
    times["sync, nothing to do, no state"] = timed(lambda: sync_venv(venv, wanted, cache))
    fresh = create_venv(root / "fresh", python).path
    times["sync into a fresh venv, warm"] = timed(lambda: sync_venv(fresh, wanted, cache))
    return times


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheels", type=int, default=100, help="wheels to sync (default 100)")
    parser.add_argument("--files", type=int, default=30, help="modules per wheel (default 30)")
    parser.add_argument("--rounds", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--python", type=Path, default=Path(sys.executable),
                        help="the venvs' interpreter (default: this one)")
    args = parser.parse_args(argv)

    samples: dict[str, list[float]] = {step: [] for step in STEPS}
    with tempfile.TemporaryDirectory(prefix="orchestrator-bench-") as tmp:
        wanted = make_wheels(Path(tmp) / "wheels", args.wheels, args.files)
        for n in range(args.rounds):
            for step, seconds in one_round(Path(tmp) / f"round{n}", wanted, args.python).items():
                samples[step].append(seconds)

    stats = {step: Summary.of(values) for step, values in samples.items()}
    print(f"{args.wheels} wheels x {args.files} files, {args.rounds} rounds")
    for step, summary in stats.items():
        print(f"  {step:<32} {summary.cell()}")
    path = write_results("install_micro", {
        "machine": machine_info(),
        "params": {"wheels": args.wheels, "files": args.files, "rounds": args.rounds},
        "samples": samples,
        "summary": {step: summary_dict(s) for step, s in stats.items()},
    })
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
