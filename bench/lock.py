"""Time `orchestrator lock` of a whole workspace against `uv lock` and `poetry lock` per service.

Usage (from the repository root):

    /work/venv/bin/python bench/lock.py [--cold 3] [--warm 5] [--check 10]

What it does:

1. installs uv and poetry (current releases, with pip) into ``bench/.tools/`` if missing;
2. copies the example workspace three times into a temp dir, one copy per tool, and gives the
   uv and Poetry copies the project tables they need to lock the same dependency set as
   orchestrator (main dependencies plus PEP 735 groups; workspace libraries as path
   dependencies; Poetry pointed at the simple API, since the index here has no JSON API);
3. times, interleaving the tools round by round, each scenario:
   - ``cold``: the tool's private cache dir emptied, lock files removed;
   - ``warm``: cache kept from earlier runs, lock files removed (so it must resolve again);
     orchestrator also runs ``lock --refresh`` here (re-fetches every index page, as uv does);
   - ``check``: locks present; ``orchestrator lock --check``, ``uv lock --check``,
     ``poetry check --lock``;
4. prints a markdown table of medians (min-max) and ratios, and writes JSON to bench/results/.

uv and Poetry lock each *service* separately (one process each, as a team without a
monorepo tool would); orchestrator locks *every member* (services and libraries) in one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    REPO_ROOT,
    TOOLS_DIR,
    CommandFailedError,
    MemberInfo,
    Samples,
    Summary,
    base_env,
    comparison_table,
    copy_workspace,
    ensure_tools,
    load_members,
    machine_info,
    orchestrator_cmd,
    remove_files,
    reset_dir,
    run_timed,
    summaries,
    summary_dict,
    tool_version,
    write_results,
)

MAX_NETWORK_REPS = 20  # be polite to the public index
SIMPLE_API = "https://pypi.org/simple"
PLATFORM_MARKERS = {
    "linux/amd64": "sys_platform == 'linux' and platform_machine == 'x86_64'",
    "linux/arm64": "sys_platform == 'linux' and platform_machine == 'aarch64'",
}


# -- project files for uv and Poetry -------------------------------------------------------------


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


def uv_tables(member: MemberInfo, by_name: dict[str, MemberInfo], envs: list[str]) -> str:
    """``[tool.uv]`` limited to the workspace's targets, and path sources for members."""
    lines = ["", "[tool.uv]", f"environments = {_toml_list(envs)}"]
    deps = sorted({d for names in workspace_deps(member, by_name).values() for d in names})
    if deps:
        lines += ["", "[tool.uv.sources]"]
        lines += [f'{d} = {{ path = "{rel_path(member, d, by_name)}" }}' for d in deps]
    return "\n".join(lines) + "\n"


def poetry_tables(member: MemberInfo, by_name: dict[str, MemberInfo]) -> str:
    """Path dependencies for members, and the simple API as Poetry's only (primary) source."""
    lines = ["", "[tool.poetry]", "package-mode = false"]
    for group, deps in workspace_deps(member, by_name).items():
        table = f"tool.poetry.group.{group}.dependencies" if group else "tool.poetry.dependencies"
        lines += ["", f"[{table}]"]
        lines += [f'{d} = {{ path = "{rel_path(member, d, by_name)}" }}' for d in deps]
    lines += ["", "[[tool.poetry.source]]", 'name = "pypi-simple"', f'url = "{SIMPLE_API}"',
              'priority = "primary"']
    return "\n".join(lines) + "\n"


def _toml_list(items: Sequence[str]) -> str:
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


# -- tools ---------------------------------------------------------------------------------------


Run = tuple[tuple[str, ...], Path]  # a command and its working directory


@dataclass
class Tool:
    """One tool's copy of the workspace, its private cache and the commands to time."""

    name: str
    root: Path
    cache_dir: Path
    env: dict[str, str]
    lock_files: tuple[str, ...]
    lock: list[Run] = field(default_factory=list)
    check: list[Run] = field(default_factory=list)
    version: str = ""

    def run(self, runs: Sequence[Run]) -> float:
        return sum(run_timed(cmd, cwd, self.env) for cmd, cwd in runs)


def services(root: Path) -> list[MemberInfo]:
    return [m for m in load_members(root) if m.kind == "service"]


def make_orchestrator(work: Path, source: Path) -> Tool:
    root = copy_workspace(source, work / "orchestrator" / "ws")
    cache = work / "orchestrator" / "cache"
    exe = orchestrator_cmd()
    tool = Tool("orchestrator", root, cache, base_env({"ORCHESTRATOR_CACHE_DIR": str(cache)}),
                ("pylock.toml",), version=tool_version([*exe, "--version"]))
    tool.lock = [((*exe, "-q", "-w", str(root), "lock"), root)]
    tool.check = [((*exe, "-q", "-w", str(root), "lock", "--check"), root)]
    return tool


def make_uv(work: Path, source: Path, bin_dir: Path) -> Tool:
    root = copy_workspace(source, work / "uv" / "ws")
    envs = target_environments(root)
    add_tables(root, lambda m, by: uv_tables(m, by, envs))
    cache = work / "uv" / "cache"
    env = base_env({  # uv reads SSL_CERT_FILE, which base_env sets
        "UV_CACHE_DIR": str(cache),
        "UV_PYTHON": str(Path(sys.executable).resolve()),  # no interpreter search (pyenv shims)
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
    })
    uv = str(bin_dir / "uv")
    tool = Tool("uv", root, cache, env, ("uv.lock",), version=tool_version([uv, "--version"]))
    tool.lock = [((uv, "lock"), m.path) for m in services(root)]
    tool.check = [((uv, "lock", "--check"), m.path) for m in services(root)]
    return tool


def make_poetry(work: Path, source: Path, bin_dir: Path) -> Tool:
    root = copy_workspace(source, work / "poetry" / "ws")
    add_tables(root, poetry_tables)
    base = work / "poetry"
    cache = base / "cache"
    env = base_env({
        "POETRY_CACHE_DIR": str(cache),
        "POETRY_CONFIG_DIR": str(base / "config"),  # ignore any user config
        "POETRY_DATA_DIR": str(base / "data"),
        "POETRY_VIRTUALENVS_PATH": str(base / "venvs"),  # kept across cold runs
        "POETRY_VIRTUALENVS_USE_POETRY_PYTHON": "true",  # no `python` lookup through PATH
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",  # no keyring probing
        "POETRY_NO_INTERACTION": "1",
    })
    poetry = str(bin_dir / "poetry")
    tool = Tool("poetry", root, cache, env, ("poetry.lock",),
                version=tool_version([poetry, "--version"]))
    tool.lock = [((poetry, "lock"), m.path) for m in services(root)]
    tool.check = [((poetry, "check", "--lock"), m.path) for m in services(root)]
    return tool


# -- scenarios -----------------------------------------------------------------------------------




def rotated(items: Sequence[Tool], shift: int) -> list[Tool]:
    """``items`` starting at ``shift``, so no tool always runs first on a noisy machine."""
    k = shift % len(items)
    return [*items[k:], *items[:k]]


def run_cold(tools: Sequence[Tool], reps: int, samples: Samples) -> None:
    for rep in range(reps):
        for tool in rotated(tools, rep):
            reset_dir(tool.cache_dir)
            remove_files(tool.root, tool.lock_files)
            t = tool.run(tool.lock)
            samples.setdefault("cold", {}).setdefault(tool.name, []).append(t)
            print(f"  cold  #{rep + 1} {tool.name:<22} {t:7.3f} s", file=sys.stderr)


def run_warm(tools: Sequence[Tool], reps: int, samples: Samples) -> None:
    """Warm runs; orchestrator also with ``--refresh`` (every page re-fetched, like uv)."""
    for tool in tools:  # make sure every cache is filled (no-op cost if cold already ran)
        if not any(tool.cache_dir.glob("*")):
            remove_files(tool.root, tool.lock_files)
            tool.run(tool.lock)
    variants = [(t, t.lock, t.name) for t in tools]
    for tool in tools:
        if tool.name == "orchestrator":
            refresh = [((*cmd, "--refresh"), cwd) for cmd, cwd in tool.lock]
            variants.append((tool, refresh, "orchestrator --refresh"))
    for rep in range(reps):
        shift = rep % len(variants)
        for tool, runs, label in [*variants[shift:], *variants[:shift]]:
            remove_files(tool.root, tool.lock_files)
            t = tool.run(runs)
            samples.setdefault("warm", {}).setdefault(label, []).append(t)
            print(f"  warm  #{rep + 1} {label:<22} {t:7.3f} s", file=sys.stderr)


def run_check(tools: Sequence[Tool], reps: int, samples: Samples) -> None:
    for rep in range(reps):
        for tool in rotated(tools, rep):
            t = tool.run(tool.check)
            samples.setdefault("check", {}).setdefault(tool.name, []).append(t)
            print(f"  check #{rep + 1} {tool.name:<22} {t:7.3f} s", file=sys.stderr)


# -- what was locked -----------------------------------------------------------------------------


def locked_names(path: Path) -> set[str]:
    """Package names in a pylock.toml, uv.lock or poetry.lock."""
    data = tomllib.loads(path.read_text())
    entries = data.get("packages", data.get("package", []))
    return {canonicalize_name(p["name"]) for p in entries}


def compare_locks(tools: Sequence[Tool]) -> dict[str, dict[str, list[str]]]:
    """Per service and tool, the third-party packages its lock holds (members left out)."""
    out: dict[str, dict[str, list[str]]] = {}
    for tool in tools:
        members = load_members(tool.root)
        member_names = {canonicalize_name(m.name) for m in members}
        for m in members:
            if m.kind != "service":
                continue
            names = locked_names(m.path / tool.lock_files[0]) - member_names
            out.setdefault(m.name, {})[tool.name] = sorted(names)
    return out


def lock_diff_lines(locks: dict[str, dict[str, list[str]]]) -> list[str]:
    """One line per service: package counts per tool and what differs from orchestrator."""
    lines = []
    for service, by_tool in locks.items():
        base = set(by_tool.get("orchestrator", []))
        parts = []
        for tool, names in by_tool.items():
            extra, missing = set(names) - base, base - set(names)
            diff = "".join([f" +{','.join(sorted(extra))}" if extra else "",
                            f" -{','.join(sorted(missing))}" if missing else ""])
            parts.append(f"{tool} {len(names)}{diff}")
        lines.append(f"- {service}: " + "; ".join(parts))
    return lines


# -- report --------------------------------------------------------------------------------------


ROWS = [  # (scenario, label of the orchestrator variant, row title)
    ("cold", "orchestrator", "cold cache"),
    ("warm", "orchestrator", "warm cache"),
    ("warm", "orchestrator --refresh", "warm cache, orchestrator `--refresh`"),
    ("check", "orchestrator", "`lock --check` / `uv lock --check` / `poetry check --lock`"),
]


def targets(stats: dict[str, dict[str, Summary]]) -> dict[str, dict[str, object]]:
    """The issue's three targets, each with the measured numbers and whether it was met."""
    warm, check = stats.get("warm", {}), stats.get("check", {})
    out: dict[str, dict[str, object]] = {}
    orch = warm.get("orchestrator")
    if orch and "uv" in warm:
        out["warm lock faster than uv"] = {
            "met": orch.median < warm["uv"].median,
            "measured": f"{orch.median:.3f} s vs uv {warm['uv'].median:.3f} s"}
    if orch and "poetry" in warm:
        ratio = warm["poetry"].median / orch.median
        out["warm lock >= 10x faster than poetry"] = {
            "met": ratio >= 10, "measured": f"{ratio:.1f}x"}
    if "orchestrator" in check:
        med = check["orchestrator"].median
        out["lock --check under 0.3 s"] = {"met": med < 0.3, "measured": f"{med:.3f} s"}
    return out


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--cold", type=int, default=3, help="cold-cache repetitions (default 3)")
    p.add_argument("--warm", type=int, default=5, help="warm-cache repetitions (default 5)")
    p.add_argument("--check", type=int, default=10, help="lock --check repetitions (default 10)")
    p.add_argument("--tools", default="orchestrator,uv,poetry",
                   help="comma-separated subset of orchestrator,uv,poetry")
    p.add_argument("--workspace", type=Path, default=REPO_ROOT,
                   help="workspace root to copy (default: the repository's example workspace)")
    p.add_argument("--upgrade-tools", action="store_true",
                   help=f"pip install -U uv and poetry in {TOOLS_DIR} first")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (printed at the end)")
    args = p.parse_args(argv)
    for name in ("cold", "warm"):
        if not 0 <= getattr(args, name) <= MAX_NETWORK_REPS:
            p.error(f"--{name} must be between 0 and {MAX_NETWORK_REPS} (the index is shared)")
    unknown = set(args.tools.split(",")) - {"orchestrator", "uv", "poetry"}
    if unknown:
        p.error(f"unknown tools: {', '.join(sorted(unknown))}")
    return args


def make_tools(names: Sequence[str], work: Path, source: Path, upgrade: bool) -> list[Tool]:
    bin_dir = None
    wanted = [n for n in ("uv", "poetry") if n in names]
    if wanted or upgrade:
        bin_dir = ensure_tools(wanted or ["uv", "poetry"], upgrade=upgrade)
    tools = []
    for name in names:
        if name == "orchestrator":
            tools.append(make_orchestrator(work, source))
        elif name == "uv" and bin_dir:
            tools.append(make_uv(work, source, bin_dir))
        elif name == "poetry" and bin_dir:
            tools.append(make_poetry(work, source, bin_dir))
    return tools


def report(args: argparse.Namespace, tools: Sequence[Tool], samples: Samples) -> None:
    stats = summaries(samples)
    locks = compare_locks(tools) if args.warm or args.cold else {}
    goals = targets(stats)
    print(comparison_table(stats, ROWS, "orchestrator (all members, 1 process)", digits=1))
    print("\nPackages locked per service (third-party; +/- relative to orchestrator):")
    print("\n".join(lock_diff_lines(locks)))
    print("\nTargets:")
    for goal, result in goals.items():
        print(f"- {goal}: {'met' if result['met'] else 'NOT met'} ({result['measured']})")
    path = write_results("lock", {
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": machine_info(),
        "versions": {t.name: t.version for t in tools},
        "repetitions": {"cold": args.cold, "warm": args.warm, "check": args.check},
        "samples": samples,
        "summary": {sc: {t: summary_dict(s) for t, s in by.items()} for sc, by in stats.items()},
        "locked_packages": locks,
        "targets": goals,
    })
    print(f"\nresults: {path}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-lock-"))
    try:
        source = args.workspace.resolve()
        tools = make_tools(args.tools.split(","), work, source, args.upgrade_tools)
        for tool in tools:
            print(f"{tool.name}: {tool.version}", file=sys.stderr)
        samples: Samples = {}
        run_cold(tools, args.cold, samples)
        run_warm(tools, args.warm, samples)
        run_check(tools, args.check, samples)
        report(args, tools, samples)
    except CommandFailedError as exc:
        print(f"benchmark aborted: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
