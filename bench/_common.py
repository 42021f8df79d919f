"""Helpers shared by the benchmark scripts (lock now; sync and images later).

Everything here is plain stdlib plus PyYAML (already an orchestrator dependency):
a private tools venv, a copy of the example workspace, timed subprocess runs,
summary statistics and a description of the machine.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
TOOLS_DIR = BENCH_DIR / ".tools"  # gitignored: the private venv holding uv and poetry
RESULTS_DIR = BENCH_DIR / "results"  # gitignored: one JSON file per run
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # Debian's bundle; the host trusts an extra CA

# Files a copied workspace must not carry over: locks, venvs and build debris.
_COPY_IGNORE = shutil.ignore_patterns(
    "pylock.toml", "uv.lock", "poetry.lock", ".venv", ".venv-*", "__pycache__",
    "*.pyc", "*.egg-info", "build", "dist", ".pytest_cache", ".ruff_cache", ".mypy_cache",
)


# -- tools -------------------------------------------------------------------------------------


def ensure_tools(packages: Sequence[str], *, upgrade: bool = False) -> Path:
    """Return the bin dir of the private tools venv, installing ``packages`` with pip if missing.

    The executables are expected to be named like the packages (``uv``, ``poetry``).
    """
    bin_dir = TOOLS_DIR / "bin"
    python = bin_dir / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TOOLS_DIR)], check=True)
    missing = [p for p in packages if not (bin_dir / p).exists()]
    if missing or upgrade:
        wanted = list(packages) if upgrade else missing
        print(f"installing {' '.join(wanted)} into {TOOLS_DIR} ...", file=sys.stderr)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-U", *wanted], check=True)
    return bin_dir


def tool_version(cmd: Sequence[str]) -> str:
    """The first line a ``--version`` style command prints."""
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=True)
    return (proc.stdout or proc.stderr).strip().splitlines()[0]


def orchestrator_cmd() -> list[str]:
    """The orchestrator executable beside the running interpreter, else ``python -m``."""
    exe = Path(sys.executable).parent / "orchestrator"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "orchestrator"]


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment with the TLS bundle variables set (kept if already set)."""
    env = dict(os.environ)
    if Path(CA_BUNDLE).exists():
        for key in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
            env.setdefault(key, CA_BUNDLE)
    env.update(extra or {})
    return env


# -- workspace ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """What the benchmarks need to know about one workspace member."""

    name: str  # [project].name as written
    path: Path  # absolute directory
    kind: str  # "service" or "library" ([tool.orchestrator].kind; default service)
    pyproject: dict[str, object]


def copy_workspace(src: Path, dest: Path) -> Path:
    """Copy the manifest and every member directory of the workspace at ``src`` into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "workspace.yaml", dest / "workspace.yaml")
    for member in load_members(src):
        rel = member.path.relative_to(src)
        shutil.copytree(member.path, dest / rel, ignore=_COPY_IGNORE)
    return dest


def load_members(root: Path) -> list[MemberInfo]:
    """The members that ``workspace.yaml``'s globs select, sorted by path."""
    manifest = yaml.safe_load((root / "workspace.yaml").read_text())
    found: dict[Path, MemberInfo] = {}
    for pattern in manifest.get("members", []):
        for path in sorted(root.glob(pattern)):
            pyproject_path = path / "pyproject.toml"
            if not pyproject_path.is_file():
                continue
            data = tomllib.loads(pyproject_path.read_text())
            tool = data.get("tool", {}).get("orchestrator", {})
            name = data["project"]["name"]
            found[path] = MemberInfo(name, path, tool.get("kind", "service"), data)
    return [found[p] for p in sorted(found)]


def remove_files(root: Path, names: Sequence[str]) -> None:
    """Delete every file called one of ``names`` under ``root``."""
    for name in names:
        for path in root.rglob(name):
            path.unlink()


def reset_dir(path: Path) -> None:
    """Make ``path`` an empty directory."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


# -- timing ------------------------------------------------------------------------------------


class CommandFailedError(RuntimeError):
    """A benchmarked command exited non-zero."""


def run_timed(cmd: Sequence[str], cwd: Path, env: Mapping[str, str],
              *, ok_codes: Sequence[int] = (0,)) -> float:
    """Run ``cmd`` with output captured; return its wall time in seconds."""
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), cwd=cwd, env=dict(env), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode not in ok_codes:
        raise CommandFailedError(
            f"{' '.join(cmd)} (in {cwd}) exited {proc.returncode}:\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return elapsed


@dataclass(frozen=True, slots=True)
class Summary:
    """Median, min and max of a list of wall times."""

    n: int
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        return cls(len(samples), statistics.median(samples), min(samples), max(samples))

    def cell(self) -> str:
        return f"{self.median:.3f} s ({self.low:.3f}-{self.high:.3f})"


# -- machine and results ------------------------------------------------------------------------


def machine_info() -> dict[str, str]:
    """CPU model, core count, memory, OS and Python of this machine, and the date."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split("MemTotal:", 1)[1].split()[0])
        mem = f"{kib / 1024 / 1024:.1f} GiB"
    return {
        "cpu": cpu,
        "nproc": str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                     else os.cpu_count()),
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def write_results(stem: str, payload: Mapping[str, object]) -> Path:
    """Write ``payload`` as ``bench/results/<stem>-<timestamp>.json``; return the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{stem}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


# -- tables shared by the lock and sync benchmarks ---------------------------------------------

Samples = dict[str, dict[str, list[float]]]  # scenario -> tool label -> wall times
Stats = dict[str, dict[str, "Summary"]]


def summaries(samples: Samples) -> Stats:
    return {sc: {t: Summary.of(v) for t, v in by.items() if v} for sc, by in samples.items()}


def summary_dict(s: Summary) -> dict[str, float]:
    """A Summary as the JSON results file stores it."""
    return {"n": s.n, "median": s.median, "min": s.low, "max": s.high}


def comparison_table(stats: Stats, rows: Sequence[tuple[str, str, str]], orch_title: str,
                     digits: int = 1) -> str:
    """Markdown: one row per (scenario, orchestrator label, title), uv and poetry beside it,
    and their medians divided by orchestrator's."""
    head = (f"| scenario | {orch_title} | uv (per service) "
            "| poetry (per service) | uv ÷ orchestrator | poetry ÷ orchestrator |")
    lines = [head, "|---|---:|---:|---:|---:|---:|"]
    for scenario, orch_label, title in rows:
        by = stats.get(scenario, {})
        orch = by.get(orch_label)
        if orch is None:
            continue
        cells = [title, orch.cell()]
        for other in ("uv", "poetry"):
            cells.append(by[other].cell() if other in by else "-")
        for other in ("uv", "poetry"):
            cells.append(f"{by[other].median / orch.median:.{digits}f}x" if other in by else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
