"""Helpers shared by the benchmark scripts.

Everything here is plain stdlib plus PyYAML and packaging (orchestrator dependencies):
a private tools venv, a copy of the example workspace, timed subprocess runs,
summary statistics and a description of the machine; and for the lock and sync
benchmarks, the project tables uv and Poetry need, each tool's copy of the workspace
with its cache, environment and commands, and their common options.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


def python_env(extra: Mapping[str, str]) -> dict[str, str]:
    """``base_env`` for a tool written in Python: its modules' bytecode may be cached.

    A session may set PYTHONDONTWRITEBYTECODE (this machine's does); then an editable
    install such as orchestrator's recompiles its own modules on every start (about 65 ms
    here), which no user pays. The venvs are unaffected: no tool imports from them here.
    """
    env = base_env(extra)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("VIRTUAL_ENV", None)
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


def git(root: Path, *args: str) -> str:
    """``git *args`` in ``root`` as a fixed benchmark author; its stdout (fails loudly)."""
    return subprocess.run(["git", "-c", "user.name=bench", "-c",
                           "user.email=bench@example.invalid", *args],
                          cwd=root, check=True, capture_output=True, text=True).stdout


# -- project files for uv and Poetry (lock and sync) --------------------------------------------

SIMPLE_API = "https://pypi.org/simple"
PLATFORM_MARKERS = {
    "linux/amd64": "sys_platform == 'linux' and platform_machine == 'x86_64'",
    "linux/arm64": "sys_platform == 'linux' and platform_machine == 'aarch64'",
}


def member_requirements(member: MemberInfo) -> dict[str, list[str]]:
    """Requirement names by group ("" for main dependencies), PEP 735 include-groups skipped."""
    project = member.pyproject["project"]
    assert isinstance(project, dict)
    out: dict[str, list[str]] = {"": [Requirement(r).name for r in project.get("dependencies", [])]}
    groups = member.pyproject.get("dependency-groups", {})
    assert isinstance(groups, dict)
    for group, items in groups.items():
        out[group] = [Requirement(i).name for i in items if isinstance(i, str)]
    return out


def workspace_deps(member: MemberInfo, by_name: dict[str, MemberInfo]) -> dict[str, list[str]]:
    """Per group, the requirements that name another workspace member."""
    found: dict[str, list[str]] = {}
    for group, names in member_requirements(member).items():
        hits = [n for n in names if canonicalize_name(n) in by_name]
        if hits:
            found[group] = hits
    return found


def rel_path(member: MemberInfo, dep: str, by_name: dict[str, MemberInfo]) -> str:
    target = by_name[canonicalize_name(dep)].path
    return Path(os.path.relpath(target, member.path)).as_posix()


def uv_tables(member: MemberInfo, by_name: dict[str, MemberInfo], envs: list[str],
              *, editable: bool) -> str:
    """``[tool.uv]`` limited to the workspace's targets, and path sources for members
    (editable ones if *editable*, as orchestrator installs them in development venvs)."""
    lines = ["", "[tool.uv]", f"environments = {toml_list(envs)}"]
    deps = sorted({d for names in workspace_deps(member, by_name).values() for d in names})
    flag = ", editable = true" if editable else ""
    if deps:
        lines += ["", "[tool.uv.sources]"]
        lines += [f'{d} = {{ path = "{rel_path(member, d, by_name)}"{flag} }}' for d in deps]
    return "\n".join(lines) + "\n"


def poetry_tables(member: MemberInfo, by_name: dict[str, MemberInfo], *, editable: bool) -> str:
    """Path dependencies for members, and the simple API as Poetry's only (primary) source.

    If *editable*, the project is in package mode (installed itself, editable) and the
    members are develop (editable) path dependencies; else ``package-mode = false``.
    """
    lines = [] if editable else ["", "[tool.poetry]", "package-mode = false"]
    flag = ", develop = true" if editable else ""
    for group, deps in workspace_deps(member, by_name).items():
        table = f"tool.poetry.group.{group}.dependencies" if group else "tool.poetry.dependencies"
        lines += ["", f"[{table}]"]
        lines += [f'{d} = {{ path = "{rel_path(member, d, by_name)}"{flag} }}' for d in deps]
    lines += ["", "[[tool.poetry.source]]", 'name = "pypi-simple"', f'url = "{SIMPLE_API}"',
              'priority = "primary"']
    return "\n".join(lines) + "\n"


def toml_list(items: Sequence[str]) -> str:
    return "[" + ", ".join('"' + i.replace('"', '\\"') + '"' for i in items) + "]"


def target_environments(root: Path) -> list[str]:
    """One PEP 508 marker per target platform of workspace.yaml, as uv's ``environments``."""
    manifest = yaml.safe_load((root / "workspace.yaml").read_text())
    python = str(manifest.get("python", "3.11"))
    envs = []
    for plat in manifest.get("platforms", ["linux/amd64"]):
        envs.append(f"{PLATFORM_MARKERS[plat]} and python_version == '{python}'"
                    " and implementation_name == 'cpython'")
    return envs


def add_tables(root: Path, make: Callable[[MemberInfo, dict[str, MemberInfo]], str]) -> None:
    """Append the tables ``make`` returns to every member's pyproject.toml under ``root``."""
    members = load_members(root)
    by_name: dict[str, MemberInfo] = {canonicalize_name(m.name): m for m in members}
    for member in members:
        path = member.path / "pyproject.toml"
        path.write_text(path.read_text() + make(member, by_name))


# -- the tools compared (lock and sync) ---------------------------------------------------------


Run = tuple[tuple[str, ...], Path]  # a command and its working directory
TOOL_NAMES = ("orchestrator", "uv-ws", "uv", "poetry")


@dataclass
class Tool:
    """One tool's copy of the workspace, its private cache, environment and commands."""

    name: str
    root: Path
    cache_dir: Path
    env: dict[str, str]
    exe: tuple[str, ...]  # the command that starts the tool
    version: str = ""
    lock_files: tuple[str, ...] = ()  # what its lock writes beside each pyproject.toml
    lock: list[Run] = field(default_factory=list)
    check: list[Run] = field(default_factory=list)  # bench/lock.py: verify the locks
    sync: list[Run] = field(default_factory=list)  # bench/sync.py: the three services
    variants: dict[str, list[Run]] = field(default_factory=dict)  # extra labelled commands

    def run(self, runs: Sequence[Run]) -> float:
        return sum(run_timed(cmd, cwd, self.env) for cmd, cwd in runs)

    def per_service(self, *args: str) -> list[Run]:
        """The tool with *args* in each service's directory (how uv and Poetry work)."""
        return [((*self.exe, *args), m.path) for m in services(self.root)]

    def service_venvs(self) -> list[Path]:
        return [m.path / ".venv" for m in services(self.root)]

    def delete_venvs(self) -> None:
        for venv in self.service_venvs():
            shutil.rmtree(venv, ignore_errors=True)


def services(root: Path) -> list[MemberInfo]:
    return [m for m in load_members(root) if m.kind == "service"]


def new_tool(name: str, work: Path, source: Path, exe: Sequence[str],
             env: Callable[[Path], dict[str, str]]) -> Tool:
    """*name* with its copy of the workspace in work/NAME/ws and its cache in work/NAME/cache.

    *env* gets work/NAME and returns the tool's environment; the caller adds the commands.
    """
    home = work / name
    root = copy_workspace(source, home / "ws")
    return Tool(name, root, home / "cache", env(home), tuple(exe),
                version=tool_version([*exe, "--version"]))


def uv_tool(work: Path, source: Path, bin_dir: Path, *, editable: bool) -> Tool:
    """uv, its copy of the workspace given the ``[tool.uv]`` tables it needs (see uv_tables)."""
    tool = new_tool("uv", work, source, [str(bin_dir / "uv")], lambda home: base_env({
        # uv reads SSL_CERT_FILE, which base_env sets; the cache is on the same filesystem
        # as the venvs, so uv can hardlink from it
        "UV_CACHE_DIR": str(home / "cache"),
        "UV_PYTHON": str(Path(sys.executable).resolve()),  # no interpreter search (pyenv shims)
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
    }))
    envs = target_environments(tool.root)
    add_tables(tool.root, lambda m, by: uv_tables(m, by, envs, editable=editable))
    return tool


def uv_workspace_tables(member: MemberInfo, by_name: dict[str, MemberInfo]) -> str:
    """``[tool.uv.sources]`` naming the members a member needs as ``{ workspace = true }``."""
    deps = sorted({d for names in workspace_deps(member, by_name).values() for d in names})
    if not deps:
        return ""
    return "\n[tool.uv.sources]\n" + "".join(f"{d} = {{ workspace = true }}\n" for d in deps)


def uv_workspace_root(root: Path, envs: list[str]) -> str:
    """A virtual root pyproject.toml (no [project]) making every member one uv workspace
    with one uv.lock, the way a team would use uv on a monorepo."""
    manifest = yaml.safe_load((root / "workspace.yaml").read_text())
    return ("[tool.uv]\n"
            f"environments = {toml_list(envs)}\n\n"
            "[tool.uv.workspace]\n"
            f"members = {toml_list(list(manifest.get('members', [])))}\n")


def uv_workspace_tool(work: Path, source: Path, bin_dir: Path) -> Tool:
    """uv in workspace mode: one root, one ``uv.lock``, ``uv sync --package X`` per service.

    bench/sync.py points UV_PROJECT_ENVIRONMENT at each service's .venv, so each
    ``uv sync --package X`` fills <service>/.venv as the other tools do, instead of
    replacing one shared root .venv every time.
    """
    plain = uv_tool(work, source, bin_dir, editable=False)  # its env, version and targets
    home = work / "uv-ws"
    root = copy_workspace(source, home / "ws")
    env = {**plain.env, "UV_CACHE_DIR": str(home / "cache")}
    tool = Tool("uv-ws", root, home / "cache", env, plain.exe, version=plain.version)
    shutil.rmtree(plain.root.parent, ignore_errors=True)  # only its settings were needed
    (root / "pyproject.toml").write_text(uv_workspace_root(root, target_environments(root)))
    add_tables(root, uv_workspace_tables)
    tool.lock_files = ("uv.lock",)
    tool.lock = [((*tool.exe, "lock"), root)]
    tool.check = [((*tool.exe, "lock", "--check"), root)]
    return tool


def poetry_env(home: Path) -> dict[str, str]:
    """Poetry's cache, config and data under *home*, with no prompts or PATH or keyring probes."""
    return {
        "POETRY_CACHE_DIR": str(home / "cache"),
        "POETRY_CONFIG_DIR": str(home / "config"),  # ignore any user config
        "POETRY_DATA_DIR": str(home / "data"),
        "POETRY_VIRTUALENVS_USE_POETRY_PYTHON": "true",  # no `python` lookup through PATH
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",  # no keyring probing
        "POETRY_NO_INTERACTION": "1",
    }


def poetry_tool(work: Path, source: Path, bin_dir: Path, env: Callable[[Path], dict[str, str]],
                *, editable: bool) -> Tool:
    """Poetry, its copy of the workspace given the tables it needs (see poetry_tables)."""
    tool = new_tool("poetry", work, source, [str(bin_dir / "poetry")], env)
    add_tables(tool.root, lambda m, by: poetry_tables(m, by, editable=editable))
    return tool


def make_tools(names: Sequence[str], work: Path, source: Path, upgrade: bool,
               orchestrator: Callable[[Path, Path], Tool],
               uv: Callable[[Path, Path, Path], Tool],
               poetry: Callable[[Path, Path, Path], Tool],
               uv_ws: Callable[[Path, Path, Path], Tool] = uv_workspace_tool) -> list[Tool]:
    """The tools in *names*, in that order: each factory gets ``work, source`` and, for
    uv and Poetry, the bin dir they were installed into (first, if missing)."""
    bin_dir = None
    wanted = sorted({"uv" if n == "uv-ws" else n for n in names if n != "orchestrator"})
    if wanted or upgrade:
        bin_dir = ensure_tools(wanted or ["uv", "poetry"], upgrade=upgrade)
    tools = []
    for name in names:
        if name == "orchestrator":
            tools.append(orchestrator(work, source))
        elif name == "uv-ws" and bin_dir:
            tools.append(uv_ws(work, source, bin_dir))
        elif name == "uv" and bin_dir:
            tools.append(uv(work, source, bin_dir))
        elif name == "poetry" and bin_dir:
            tools.append(poetry(work, source, bin_dir))
    return tools


T = TypeVar("T")


def rotated(items: Sequence[T], shift: int) -> list[T]:
    """``items`` starting at ``shift``, so no tool always runs first on a noisy machine."""
    k = shift % len(items)
    return [*items[k:], *items[:k]]


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
    others = ("uv-ws", "uv", "poetry")
    head = (f"| scenario | {orch_title} | uv workspace | uv (per service) "
            "| poetry (per service) | orchestrator ÷ uv-ws | uv ÷ orchestrator "
            "| poetry ÷ orchestrator |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for scenario, orch_label, title in rows:
        by = stats.get(scenario, {})
        orch = by.get(orch_label)
        if orch is None:
            continue
        cells = [title, orch.cell()]
        for other in others:
            cells.append(by[other].cell() if other in by else "-")
        # the ratio: orchestrator's time as a multiple of uv's workspace mode
        cells.append(f"{orch.median / by['uv-ws'].median:.2f}x" if "uv-ws" in by else "-")
        for other in ("uv", "poetry"):
            cells.append(f"{by[other].median / orch.median:.{digits}f}x" if other in by else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- command line and the work dir (lock and sync) ----------------------------------------------


def add_tool_options(p: argparse.ArgumentParser) -> None:
    """``--tools``, ``--workspace``, ``--upgrade-tools`` and ``--keep``."""
    p.add_argument("--tools", default=",".join(TOOL_NAMES),
                   help="comma-separated subset of " + ",".join(TOOL_NAMES))
    p.add_argument("--workspace", default="example",
                   help="example (this repository's, the default), big (7 services and 2 "
                   "libraries with heavy dependencies, generated by bench/workspaces.py) or "
                   "the path of a workspace root to copy")
    p.add_argument("--upgrade-tools", action="store_true",
                   help=f"pip install -U uv and poetry in {TOOLS_DIR} first")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (printed at the end)")


def check_tool_names(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    unknown = set(args.tools.split(",")) - set(TOOL_NAMES)
    if unknown:
        p.error(f"unknown tools: {', '.join(sorted(unknown))}")


def in_work_dir(prefix: str, keep: bool, body: Callable[[Path], None]) -> int:
    """Run *body* in a new temp dir, removed afterwards unless *keep*; the exit code.

    A command that fails aborts the benchmark with its output, exit code 1.
    """
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        body(work)
    except CommandFailedError as exc:
        print(f"benchmark aborted: {exc}", file=sys.stderr)
        return 1
    finally:
        if keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0
