"""Time `orchestrator sync` of the example services against `uv sync` and `poetry sync`.

Usage (from the repository root):

    /work/venv/bin/python bench/sync.py [--fresh 5] [--noop 10] [--cold 1]
    /work/venv/bin/python bench/sync.py --orchestrator-rev HEAD   # committed orchestrator only

What it does:

1. installs uv and poetry (current releases, with pip) into ``bench/.tools/`` if missing;
2. copies the example workspace into a temp dir once per tool and gives the uv and Poetry
   copies the project tables they need for the same dependency set as orchestrator: main
   dependencies plus every PEP 735 group, the workspace libraries as *editable* path
   dependencies (orchestrator installs them editable in development venvs), and the service
   itself installed editable (uv's and Poetry's default, and orchestrator's);
3. untimed: each tool locks its copy, then installs once, so every cache holds the wheels
   (and the built editables) before the timed runs; orchestrator also syncs all five members
   once, so the all-members no-op has every venv in place;
4. times, interleaving the tools round by round (the first tool rotating):
   - ``checkout`` (``--checkout N``, default 3): what CI does every run. Each round, each
     tool's workspace (its locks, without venvs) is copied into a new directory (untimed),
     as a new clone would be, and the services are synced there from the warm cache;
     ``checkout1`` the same, one service per command, each service in a new copy of its
     own (the sum of the services is the row; each service's time is in the JSON). The
     copies are kept until the end of the run: deleting ~44k inodes makes the next minutes'
     directories slow to allocate on ext4 without a journal (``recently_deleted``), which a
     delete-then-sync round measures more than the tool; these rows run before any venv
     is deleted;
   - ``fresh``: the services' ``.venv`` dirs deleted, caches kept (warm);
   - ``noop``: venvs present and current, nothing to do;
   - ``cold`` (``--cold N``, default 1): caches emptied and venvs deleted; downloads from the
     public index, so capped at ``MAX_NETWORK_REPS``;
5. checks every tool's venvs hold the same distributions, counts compiled bytecode and
   hardlinked files, prints a markdown table (medians, min-max, ratios) and the targets,
   and writes JSON to bench/results/.

``uv-ws`` is uv's workspace mode (one root uv.lock; ``uv sync --package X --all-groups
--locked`` per service into <service>/.venv, named by UV_PROJECT_ENVIRONMENT).
``--workspace big`` uses the generated 7-service workspace of bench/workspaces.py.

uv and Poetry sync each *service* separately (one process per service, in its directory);
orchestrator syncs the three services in one process (``orchestrator sync gateway orders
worker``), and is also timed one process per service and, for the no-op, for all five members
(``orchestrator sync``). ``--baseline-rev REV`` adds ``orchestrator-before``: orchestrator
from ``git archive REV`` with its own cache and copy, timed in the same rounds (its main
sync, and in ``checkout1`` one service per command), so a before/after comparison does not
cross runs whose disks differ.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    REPO_ROOT,
    CommandFailedError,
    Run,
    Samples,
    Summary,
    Tool,
    add_tool_options,
    check_tool_names,
    comparison_table,
    in_work_dir,
    machine_info,
    make_tools,
    new_tool,
    orchestrator_cmd,
    poetry_env,
    poetry_tool,
    python_env,
    reset_dir,
    rotated,
    services,
    summaries,
    summary_dict,
    uv_tool,
    uv_workspace_tool,
    write_results,
)
from workspaces import workspace_source

MAX_NETWORK_REPS = 10  # cold runs download every wheel again; be polite to the public index
SERVICES_LABEL = "orchestrator"  # one process, every service
PER_SERVICE_LABEL = "orchestrator per service"  # one process per service, like uv and Poetry
ALL_LABEL = "orchestrator all members"  # `orchestrator sync`: five members, one process
ONE_SERVICE = "one service"  # variants key: one command per service, each on its own
BASELINE = "orchestrator-before"  # --baseline-rev


# -- tools ---------------------------------------------------------------------------------------


def export_orchestrator(rev: str, dest: Path) -> Path:
    """``git archive REV orchestrator`` unpacked under ``dest``: a clean copy to run from."""
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", rev, "orchestrator"],
                             capture_output=True, check=True).stdout
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def make_orchestrator(work: Path, source: Path, rev: str | None,
                      name: str = "orchestrator") -> Tool:
    tool = new_tool(name, work, source, orchestrator_cmd(),
                    lambda home: python_env({"ORCHESTRATOR_CACHE_DIR": str(home / "cache")}))
    env = tool.env
    if rev:  # the package on PYTHONPATH comes before the editable install's finder
        src = export_orchestrator(rev, work / name / "src")
        env["PYTHONPATH"] = str(src)
        where = subprocess.run(
            [sys.executable, "-c", "import orchestrator; print(orchestrator.__file__)"],
            cwd=work, env=env, capture_output=True, text=True, check=True).stdout.strip()
        if not Path(where).is_relative_to(src):
            raise CommandFailedError(f"orchestrator imports from {where}, not from {src}")
    # orchestrator finds `python3.11` on PATH for new venvs; put the interpreter's own bin dir
    # first, as uv gets UV_PYTHON, so neither goes through this machine's pyenv shims.
    interpreter_bin = str(Path(sys.executable).resolve().parent)
    env["PATH"] = os.pathsep.join([interpreter_bin, env.get("PATH", "")])
    base = (*tool.exe, "-q", "-w", str(tool.root))
    names = [m.name for m in services(tool.root)]
    tool.lock = [((*base, "lock"), tool.root)]
    tool.sync = [((*base, "sync", *names), tool.root)]
    per_service = [((*base, "sync", n), tool.root) for n in names]
    tool.variants = {
        PER_SERVICE_LABEL: per_service,
        ALL_LABEL: [((*base, "sync"), tool.root)],
        ONE_SERVICE: per_service,
    }
    if name != "orchestrator":  # the baseline: its main sync and one service only
        tool.variants = {ONE_SERVICE: per_service}
    return tool


def make_uv(work: Path, source: Path, bin_dir: Path) -> Tool:
    tool = uv_tool(work, source, bin_dir, editable=True)
    for key in ("UV_LINK_MODE", "UV_COMPILE_BYTECODE", "VIRTUAL_ENV"):  # uv's defaults
        tool.env.pop(key, None)
    tool.lock = tool.per_service("lock")
    tool.sync = tool.per_service("sync", "--all-groups", "--locked")
    return tool


def make_uv_ws(work: Path, source: Path, bin_dir: Path) -> Tool:
    """uv's workspace mode: one ``uv lock`` at the root, ``uv sync --package X`` per service
    in its directory (into <service>/.venv; members are editable, uv's default)."""
    tool = uv_workspace_tool(work, source, bin_dir)
    for key in ("UV_LINK_MODE", "UV_COMPILE_BYTECODE", "VIRTUAL_ENV"):  # uv's defaults
        tool.env.pop(key, None)
    # uv resolves a relative UV_PROJECT_ENVIRONMENT against the workspace root, so each
    # command names its service's venv absolutely (through env(1): one env per Tool)
    tool.sync = [(("env", f"UV_PROJECT_ENVIRONMENT={m.path / '.venv'}", *tool.exe, "sync",
                   "--package", m.name, "--all-groups", "--locked"), m.path)
                 for m in services(tool.root)]
    return tool


def make_poetry(work: Path, source: Path, bin_dir: Path) -> Tool:
    def env(home: Path) -> dict[str, str]:
        return python_env({
            **poetry_env(home),
            "POETRY_VIRTUALENVS_IN_PROJECT": "true",  # <service>/.venv, like the others
            "VIRTUALENV_OVERRIDE_APP_DATA": str(home / "virtualenv"),  # not the user's app data
        })

    tool = poetry_tool(work, source, bin_dir, env, editable=True)
    tool.lock = tool.per_service("lock")
    tool.sync = tool.per_service("sync", "--all-groups")
    return tool


# -- scenarios -----------------------------------------------------------------------------------


Variant = tuple[Tool, list[Run], str]


def variants(tools: Sequence[Tool], extra: Sequence[str]) -> list[Variant]:
    """Each tool's main sync, then the orchestrator variants named in ``extra``."""
    out: list[Variant] = [(t, t.sync, t.name) for t in tools]
    for tool in tools:
        out += [(tool, tool.variants[label], label) for label in extra if label in tool.variants]
    return out


def prepare(tools: Sequence[Tool]) -> None:
    """Untimed: lock every copy, then install once so every cache is warm."""
    for tool in tools:
        print(f"  prepare {tool.name}: lock, first sync", file=sys.stderr)
        tool.run(tool.lock)
        tool.run(tool.sync)
        if ALL_LABEL in tool.variants:  # the libraries' venvs too, for the all-members no-op
            tool.run(tool.variants[ALL_LABEL])


def checkout(tool: Tool, dest: Path, runs: Sequence[Run]) -> list[Run]:
    """Untimed: *tool*'s workspace copied to *dest* without venvs (a new clone with its
    locks); *runs* with the workspace root swapped for the copy's."""
    old, new = str(tool.root), str(dest)
    shutil.copytree(tool.root, dest, symlinks=True, ignore=shutil.ignore_patterns(".venv"))

    def moved(text: str) -> str:
        return text.replace(old, new)

    return [(tuple(moved(a) for a in cmd), Path(moved(str(cwd)))) for cmd, cwd in runs]


def run_checkout(runs: Sequence[Variant], reps: int, samples: Samples, work: Path) -> None:
    """``checkout``: each tool's main sync in a new copy of its workspace per round;
    ``checkout1``: each of its one-service commands in a new copy of its own, summed
    (each service's time under ``checkout1:<service>``). The copies stay until the end."""
    for rep in range(reps):
        for tool, cmds, label in rotated(runs, rep):
            fresh = checkout(tool, work / "checkouts" / f"{label}-{rep}" / "ws", cmds)
            t = tool.run(fresh)
            samples.setdefault("checkout", {}).setdefault(label, []).append(t)
            one = tool.variants.get(ONE_SERVICE, tool.sync)
            total = 0.0
            for i, (run, member) in enumerate(zip(one, services(tool.root), strict=True)):
                dest = work / "checkouts" / f"{label}-{rep}-{i}" / "ws"
                t1 = tool.run(checkout(tool, dest, [run]))
                samples.setdefault(f"checkout1:{member.name}", {}).setdefault(label, []).append(t1)
                total += t1
            samples.setdefault("checkout1", {}).setdefault(label, []).append(total)
            print(f"  checkout #{rep + 1} {label:<26} {t:7.3f} s, one service at a time "
                  f"{total:7.3f} s", file=sys.stderr)


def run_scenario(name: str, runs: Sequence[Variant], reps: int, samples: Samples,
                 *, delete_venvs: bool = False, empty_cache: bool = False) -> None:
    for rep in range(reps):
        for tool, cmds, label in rotated(runs, rep):
            if empty_cache:
                reset_dir(tool.cache_dir)
            if delete_venvs:
                tool.delete_venvs()
            t = tool.run(cmds)
            samples.setdefault(name, {}).setdefault(label, []).append(t)
            print(f"  {name:<5} #{rep + 1} {label:<26} {t:7.3f} s", file=sys.stderr)


# -- what was installed --------------------------------------------------------------------------


@dataclass(frozen=True)
class VenvFacts:
    dists: list[str]  # canonical names of the installed distributions
    pyc: int  # compiled bytecode files under site-packages
    files: int  # regular files under site-packages
    linked: int  # of those, files with more than one link (hardlinked from a cache)


def venv_facts(venv: Path) -> VenvFacts:
    site = next(venv.glob("lib/python*/site-packages"))
    dists = sorted(str(canonicalize_name(p.name.split("-")[0]))
                   for p in site.glob("*.dist-info"))
    pyc = files = linked = 0
    for dirpath, _dirs, names in os.walk(site):
        for n in names:
            st = os.lstat(os.path.join(dirpath, n))
            if not stat.S_ISREG(st.st_mode):
                continue
            files += 1
            linked += st.st_nlink > 1
            pyc += n.endswith(".pyc")
    return VenvFacts(dists, pyc, files, linked)


def installed_facts(tools: Sequence[Tool]) -> dict[str, dict[str, VenvFacts]]:
    """Per service and tool, what its venv holds (after a fresh sync from a warm cache)."""
    out: dict[str, dict[str, VenvFacts]] = {}
    for tool in tools:
        for m in services(tool.root):
            out.setdefault(m.name, {})[tool.name] = venv_facts(m.path / ".venv")
    return out


def facts_lines(facts: dict[str, dict[str, VenvFacts]]) -> list[str]:
    """One line per service: dists, pyc and linked files per tool; +/- against orchestrator."""
    lines = []
    for service, by_tool in facts.items():
        base = set(by_tool["orchestrator"].dists) if "orchestrator" in by_tool else set()
        parts = []
        for tool, f in by_tool.items():
            extra, missing = set(f.dists) - base, base - set(f.dists)
            diff = "".join([f" +{','.join(sorted(extra))}" if extra else "",
                            f" -{','.join(sorted(missing))}" if missing else ""])
            parts.append(f"{tool} {len(f.dists)} dists{diff}, {f.pyc} pyc, "
                         f"{f.linked}/{f.files} files hardlinked")
        lines.append(f"- {service}: " + "; ".join(parts))
    return lines


# -- report --------------------------------------------------------------------------------------


ROWS = [  # (scenario, orchestrator label, row title)
    ("checkout", SERVICES_LABEL, "fresh checkout (new copy, no venvs), warm cache"),
    ("checkout", BASELINE, "fresh checkout, orchestrator-before (--baseline-rev)"),
    ("checkout1", SERVICES_LABEL,
     "fresh checkout, one service per command, each in its own copy (sum)"),
    ("checkout1", BASELINE, "fresh checkout, one service per command, orchestrator-before"),
    ("fresh", SERVICES_LABEL, "fresh venvs, warm cache"),
    ("fresh", BASELINE, "fresh venvs, warm cache, orchestrator-before"),
    ("fresh", PER_SERVICE_LABEL, "fresh venvs, warm cache, orchestrator one process per service"),
    ("noop", SERVICES_LABEL, "no-op re-sync"),
    ("noop", BASELINE, "no-op re-sync, orchestrator-before"),
    ("noop", PER_SERVICE_LABEL, "no-op re-sync, orchestrator one process per service"),
    ("noop", ALL_LABEL, "no-op re-sync, orchestrator all members (`orchestrator sync`)"),
    ("cold", SERVICES_LABEL, "fresh venvs, cold cache (downloads)"),
]


def targets(stats: dict[str, dict[str, Summary]]) -> dict[str, dict[str, object]]:
    """The issue's three targets, each with the measured numbers and whether it was met."""
    fresh, noop = stats.get("fresh", {}), stats.get("noop", {})
    out: dict[str, dict[str, object]] = {}
    orch = fresh.get(SERVICES_LABEL)
    if orch and "uv" in fresh:
        ratio = orch.median / fresh["uv"].median
        out["fresh venvs from a warm cache within 2x of uv"] = {
            "met": ratio <= 2,
            "measured": f"{orch.median:.3f} s vs uv {fresh['uv'].median:.3f} s "
                        f"(orchestrator takes {ratio:.2f}x uv's time)"}
    if orch and "poetry" in fresh:
        ratio = fresh["poetry"].median / orch.median
        out["fresh venvs from a warm cache >= 5x faster than poetry"] = {
            "met": ratio >= 5, "measured": f"{ratio:.2f}x"}
    if orch:  # issue 13: every service's fresh venv, one command, warm cache
        out["fresh venvs of the services in one command <= 1.2 s"] = {
            "met": orch.median <= 1.2, "measured": f"{orch.median:.3f} s"}
    for scenario, what in (("checkout", "fresh checkout, the services in one command"),
                           ("checkout1", "fresh checkout, one service per command")):
        by = stats.get(scenario, {})
        if SERVICES_LABEL in by and "uv-ws" in by:
            med, uv_med = by[SERVICES_LABEL].median, by["uv-ws"].median
            goal = (f"{what} <= 1.2 s" if scenario == "checkout"
                    else f"{what} <= uv-ws's time for it")
            out[goal] = {"met": med <= 1.2 if scenario == "checkout" else med <= uv_med,
                         "measured": f"{med:.3f} s vs uv-ws {uv_med:.3f} s "
                                     f"({med / uv_med:.2f}x)"}
    for label, what in ((SERVICES_LABEL, "the services"), (ALL_LABEL, "all members")):
        if label in noop:
            med = noop[label].median
            out[f"no-op sync of {what} <= 0.15 s"] = {
                "met": med <= 0.15, "measured": f"{med:.3f} s"}
    return out


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--fresh", type=int, default=5,
                   help="fresh-venv (warm cache) repetitions (default 5)")
    p.add_argument("--noop", type=int, default=10, help="no-op repetitions (default 10)")
    p.add_argument("--checkout", type=int, default=3,
                   help="fresh-checkout repetitions (default 3): the services synced in a "
                        "new copy of the workspace, then each service alone in its own copy")
    p.add_argument("--cold", type=int, default=1,
                   help=f"cold-cache repetitions (default 1, at most {MAX_NETWORK_REPS})")
    p.add_argument("--no-variants", action="store_true",
                   help="time orchestrator only as `sync SERVICES` (skip per-service/all)")
    p.add_argument("--orchestrator-rev", metavar="REV",
                   help="run orchestrator from `git archive REV` (e.g. HEAD) instead of the "
                        "working tree, whose uncommitted edits would otherwise count")
    p.add_argument("--baseline-rev", metavar="REV",
                   help=f"also time orchestrator from `git archive REV` as {BASELINE} "
                        "in the same rounds (before/after in one run)")
    add_tool_options(p)
    args = p.parse_args(argv)
    if not 0 <= args.cold <= MAX_NETWORK_REPS:
        p.error(f"--cold must be between 0 and {MAX_NETWORK_REPS} (the index is shared)")
    if args.fresh < 0 or args.noop < 0 or args.checkout < 0:
        p.error("repetitions must not be negative")
    check_tool_names(p, args)
    return args


def report(args: argparse.Namespace, tools: Sequence[Tool], samples: Samples,
           facts: dict[str, dict[str, VenvFacts]]) -> None:
    stats = summaries(samples)
    goals = targets(stats)
    source = source_state(args.orchestrator_rev)
    print(f"orchestrator from commit {source['commit']}; uncommitted in orchestrator/: "
          f"{source['dirty']}", file=sys.stderr)
    print(comparison_table(stats, ROWS, "orchestrator (services, 1 process)", digits=2))
    per_service = {sc.split(":", 1)[1]: by for sc, by in stats.items()
                   if sc.startswith("checkout1:")}
    if per_service:
        print("\nFresh checkout, one service per command (medians):")
        for service, by in per_service.items():
            print(f"- {service}: " + ", ".join(f"{label} {s.median:.3f} s"
                                               for label, s in by.items()))
    print("\nInstalled per service (distributions, +/- relative to orchestrator; bytecode; links):")
    print("\n".join(facts_lines(facts)))
    print("\nTargets:")
    for goal, result in goals.items():
        print(f"- {goal}: {'met' if result['met'] else 'NOT met'} ({result['measured']})")
    path = write_results("sync", {
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": machine_info(),
        "load_average": os.getloadavg(),
        "versions": {t.name: t.version for t in tools},
        "orchestrator_source": source,
        "repetitions": {"checkout": args.checkout, "fresh": args.fresh, "noop": args.noop,
                        "cold": args.cold},
        "baseline_rev": args.baseline_rev,
        "samples": samples,
        "summary": {sc: {t: summary_dict(s) for t, s in by.items()} for sc, by in stats.items()},
        "installed": {s: {t: vars(f) for t, f in by.items()} for s, by in facts.items()},
        "targets": goals,
    })
    print(f"\nresults: {path}", file=sys.stderr)


def source_state(rev: str | None) -> dict[str, str]:
    """The commit orchestrator runs from, and its uncommitted files if run from the tree."""
    def git(*args: str) -> str:
        proc = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True,
                              text=True, check=False)
        return proc.stdout.rstrip()

    if rev:
        return {"commit": git("rev-parse", "--short", rev), "dirty": "none (git archive)"}
    dirty = [line[3:] for line in git("status", "--porcelain", "--", "orchestrator").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": ", ".join(dirty) or "none"}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return in_work_dir("bench-sync-", args.keep, lambda work: run(args, work))


def pin_rev(rev: str) -> str:
    return subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--verify", rev + "^{commit}"],
                          capture_output=True, text=True, check=True).stdout.strip()


def run(args: argparse.Namespace, work: Path) -> None:
    source = workspace_source(args.workspace, work)
    for attr in ("orchestrator_rev", "baseline_rev"):  # pin them now: others may commit
        if getattr(args, attr):
            setattr(args, attr, pin_rev(getattr(args, attr)))
    orchestrator = functools.partial(make_orchestrator, rev=args.orchestrator_rev)
    tools = make_tools(args.tools.split(","), work, source, args.upgrade_tools,
                       orchestrator, make_uv, make_poetry, make_uv_ws)
    if args.baseline_rev:
        tools.insert(1, make_orchestrator(work, source, args.baseline_rev, BASELINE))
    for tool in tools:
        print(f"{tool.name}: {tool.version}", file=sys.stderr)
    prepare(tools)
    samples: Samples = {}
    fresh = variants(tools, [] if args.no_variants else [PER_SERVICE_LABEL])
    noop = variants(tools, [] if args.no_variants else [PER_SERVICE_LABEL, ALL_LABEL])
    main_only = variants(tools, [])
    run_checkout(main_only, args.checkout, samples, work)  # before any venv is deleted
    run_scenario("fresh", fresh, args.fresh, samples, delete_venvs=True)
    facts = installed_facts(tools)  # what a fresh sync from a warm cache produced
    run_scenario("noop", noop, args.noop, samples)
    run_scenario("cold", main_only, args.cold, samples, delete_venvs=True, empty_cache=True)
    report(args, tools, samples, facts)


if __name__ == "__main__":
    sys.exit(main())
