"""Time `orchestrator build` (engine and `--engine oci`) against naive and multi-stage Dockerfiles.

Usage (from the repository root; the Docker engine of scripts/infra-up.sh must be running):

    /work/venv/bin/python bench/images.py [--reps 3] [--no-change 5] [--code 3] [--empty-cache 1]
        [--variants orchestrator,naive,multistage,oci] [--no-push]

What it does:

1. copies the example workspace into a temp git repository, locks it there, and gives it a
   registry prefix of its own (``<registry>/bench/<pid>``), so no image of anyone else is
   touched; ``ORCHESTRATOR_CACHE_DIR`` is private to the run and warmed by one untimed build;
2. before every cold build, makes a fresh base image: ``FROM <base>`` plus a ``LABEL``
   carrying a nonce, so same layers and size as the base but a new image ID, and no step of
   the legacy builder's cache (keyed on parent image ID + instruction) and no orchestrator
   fingerprint matches. Each round, rotating which variant goes first, it times:
   - orchestrator: cold ``build SERVICE``; cold ``build`` of every service; ``build`` again
     with nothing changed (``--no-change`` times); then code-only changes (a comment appended
     to one source file of the service) each followed by ``build SERVICE``: the first one
     right after the cold build is reported apart, then ``--code`` more;
   - ``naive``: ``COPY . /app`` of the service and the workspace libraries it uses, then one
     ``pip install`` of them from the public index (inside the build, ``--network host``);
   - ``multistage``: the usual venv-copy pattern: a builder stage installs the locked
     third-party requirements, then ``COPY . /app`` and installs the workspace code, and
     the final stage takes ``COPY --from=builder /opt/venv /opt/venv``;
   each naive variant is built cold, then rebuilt after the same one-line change;
   - ``oci`` (``build --engine oci``, no daemon; the base read from a ``docker save``
     archive of ``--base`` written once, the only daemon use): cold ``build SERVICE`` with
     ``oci-v1/`` (base blobs, layer and image records) emptied and the wheel cache kept,
     then ``1 + --code`` code-only edits each followed by ``build SERVICE`` (both with
     ``--oci-layout``), then ``--no-change`` builds of every service; after the rounds
     (unless ``--no-push``) every service is pushed, a comment appended to the service's
     first workspace library, every service built and pushed again: the bytes uploaded
     (the ``pushed ...: N bytes uploaded`` notes; blobs the registry has are skipped by
     HEAD or mounted);
3. measures image sizes (``docker image inspect``) and, for each code-only rebuild, the
   layers the new image has that the previous one did not, with their sizes (the layer
   tars of ``docker save``: the bytes a push or pull of the change moves, uncompressed);
4. optionally (``--empty-cache``) times a cold build with an empty wheel cache as well;
5. prints markdown tables, writes JSON to bench/results/, and removes every image it made
   (all of them carry the run's label; nothing else is removed, no prune).

Builds run through the legacy builder (``DOCKER_BUILDKIT=0``; the engine has no BuildKit).
Naive builds download from the public index, so they get the host's CA bundle in their
context (``SSL_CERT_FILE``/``PIP_CERT``) and ``--network host``; never a bridge network.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_DIR,
    CA_BUNDLE,
    REPO_ROOT,
    CommandFailedError,
    MemberInfo,
    Summary,
    base_env,
    copy_workspace,
    git,
    load_members,
    machine_info,
    orchestrator_cmd,
    reset_dir,
    rotated,
    run_timed,
    summary_dict,
    tool_version,
    write_results,
)

sys.path.insert(0, str(REPO_ROOT))

from tests.support import docker_infra  # stdlib only: finds the engine, base and registry

MAX_NETWORK_REPS = 10  # naive builds download every dependency from the public index
RUN_LABEL = "dev.orchestrator.bench.run"  # every image this script makes carries it
NONCE_LABEL = "dev.orchestrator.bench.nonce"
DEFAULT_BASE = "orchestrator/python-base:3.11-bookworm"
EDIT_FILE = "app.py"  # the code-only change appends a comment to src/<pkg>/app.py
TARGETS = {"code_ratio": 5.0, "code_bytes": 1_000_000, "no_change_s": 3.0}
VARIANTS = ("orchestrator", "naive", "multistage", "oci")  # of the example workspace's run

# The service and its workspace libraries as one context; pip resolves from the index.
NAIVE_DOCKERFILE = """\
ARG BASE_IMAGE
FROM $BASE_IMAGE
COPY . /app
ENV SSL_CERT_FILE=/app/ca-certificates.crt PIP_CERT=/app/ca-certificates.crt \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install {paths}
ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
USER 10001:10001
CMD {command}
"""

# Dependencies first (cached in the builder while the lock is unchanged), then the code;
# the final stage copies the whole venv in one layer.
MULTISTAGE_DOCKERFILE = """\
ARG BASE_IMAGE
FROM $BASE_IMAGE AS builder
ENV SSL_CERT_FILE=/tmp/ca-certificates.crt PIP_CERT=/tmp/ca-certificates.crt \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
COPY ca-certificates.crt requirements.txt /tmp/
RUN python3 -m venv /opt/venv \\
 && /opt/venv/bin/pip install --require-hashes --no-deps -r /tmp/requirements.txt
COPY . /app
RUN /opt/venv/bin/pip install --no-deps {paths}

FROM $BASE_IMAGE
COPY --from=builder /opt/venv /opt/venv
ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
USER 10001:10001
CMD {command}
"""


# -- docker ---------------------------------------------------------------------------------------


def docker_env() -> dict[str, str]:
    """The environment for the docker CLI and orchestrator: the engine, the legacy builder."""
    return base_env({"DOCKER_HOST": docker_infra.docker_host(), "DOCKER_BUILDKIT": "0"})


def docker(*args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(["docker", *args], input=stdin, capture_output=True, text=True,
                          env=docker_env())
    if proc.returncode != 0:
        raise CommandFailedError(f"docker {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stderr[-3000:]}")
    return proc.stdout.strip()


def inspect(ref: str) -> dict[str, object]:
    data: list[dict[str, object]] = json.loads(docker("image", "inspect", ref))
    return data[0]


def rootfs_layers(ref: str) -> list[str]:
    rootfs = inspect(ref)["RootFS"]
    assert isinstance(rootfs, dict)
    return list(rootfs.get("Layers", []))


def image_size(ref: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", ref))


def layer_tar_sizes(ref: str) -> dict[str, int]:
    """Diff ID -> size of its layer tar, from a streamed ``docker save`` (nothing on disk)."""
    proc = subprocess.Popen(["docker", "save", ref], stdout=subprocess.PIPE, env=docker_env())
    assert proc.stdout is not None
    sizes: dict[str, int] = {}
    manifest: list[dict[str, object]] = []
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for member in tar:
            if member.name.endswith("layer.tar"):
                sizes[member.name] = member.size
            elif member.name == "manifest.json":
                handle = tar.extractfile(member)
                assert handle is not None
                manifest = json.loads(handle.read())
    if proc.wait() != 0:
        raise CommandFailedError(f"docker save {ref} exited {proc.returncode}")
    tars = manifest[0]["Layers"]
    assert isinstance(tars, list)
    return {diff: sizes[name] for diff, name in zip(rootfs_layers(ref), tars, strict=True)}


def new_layers(before: Sequence[str], after_ref: str) -> tuple[int, int]:
    """How many layers ``after_ref`` has that ``before`` did not, and their bytes."""
    sizes = layer_tar_sizes(after_ref)
    fresh = [d for d in sizes if d not in set(before)]
    return len(fresh), sum(sizes[d] for d in fresh)


def make_base(base: str, prefix: str, run_id: str, nonce: str) -> str:
    """``base`` with the run's labels: same layers, new image ID, so no cached step matches."""
    ref = f"{prefix}/base:{nonce}"
    dockerfile = f"FROM {base}\nLABEL {RUN_LABEL}={run_id} {NONCE_LABEL}={nonce}\n"
    docker("build", "-q", "--network", "none", "-t", ref, "-", stdin=dockerfile)
    return ref


def remove_run_images(run_id: str) -> int:
    """Remove every image carrying this run's label (children before parents); return count."""
    removed: set[str] = set()
    for _ in range(10):
        ids = sorted(set(docker("images", "-a", "-q", "--no-trunc", "--filter",
                                f"label={RUN_LABEL}={run_id}").split()))
        if not ids:
            break
        for image_id in ids:
            proc = subprocess.run(["docker", "rmi", "-f", image_id], capture_output=True,
                                  env=docker_env())
            if proc.returncode == 0:
                removed.add(image_id)
    return len(removed)


def end_run(run_id: str, work: Path, *, keep: bool) -> None:
    """Remove the run's images and work directory, or say where they were kept (--keep)."""
    if keep:
        print(f"kept {work} and the images labelled {RUN_LABEL}={run_id}", file=sys.stderr)
    else:
        print(f"removed {remove_run_images(run_id)} images", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)


def repo_state() -> str:
    """The commit under test, and whether orchestrator/ or templates/ differ from it."""
    def out(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()

    dirty = out("status", "--porcelain", "--", "orchestrator", "templates").splitlines()
    state = f"{len(dirty)} uncommitted file(s) in orchestrator/ or templates/" if dirty else "clean"
    return f"{out('rev-parse', '--short', 'HEAD')} ({state})"


def engine_version() -> str:
    return docker("version", "--format", "{{.Server.Version}}")


def container_python(image: str) -> str:
    return docker("run", "--rm", "--network", "none", image, "python3", "--version")


# -- the workspace --------------------------------------------------------------------------------


def set_registry(root: Path, prefix: str) -> None:
    manifest = root / "workspace.yaml"
    text = re.sub(r"(?m)^(\s*registry:).*$", rf"\1 {prefix}", manifest.read_text())
    manifest.write_text(text)


def runtime_libraries(service: MemberInfo, members: Sequence[MemberInfo]) -> list[MemberInfo]:
    """The workspace libraries ``service``'s main dependencies reach, transitively."""
    by_name = {canonicalize_name(m.name): m for m in members}
    found: dict[str, MemberInfo] = {}
    todo = [service]
    while todo:
        project = todo.pop().pyproject["project"]
        assert isinstance(project, dict)
        for req in project.get("dependencies", []):
            name = canonicalize_name(Requirement(req).name)
            if name in by_name and name not in found:
                found[name] = by_name[name]
                todo.append(by_name[name])
    return sorted(found.values(), key=lambda m: m.path)


def source_file(member_dir: Path) -> Path:
    """The file the code-only change edits: ``src/<package>/app.py`` (else the first module)."""
    files = sorted(member_dir.glob(f"src/*/{EDIT_FILE}")) or sorted(member_dir.glob("src/*/*.py"))
    if not files:
        raise CommandFailedError(f"no Python source under {member_dir}/src")
    return files[0]


def edit_code(path: Path, note: str) -> None:
    """The code-only change: one comment line appended."""
    with path.open("a") as handle:
        handle.write(f"# bench: {note}\n")


# -- variants -------------------------------------------------------------------------------------


@dataclass
class Orchestrator:
    """orchestrator on the temp workspace, with its private wheel cache."""

    root: Path
    cache: Path
    exe: list[str]
    env: dict[str, str]

    def cmd(self, *args: str) -> list[str]:
        return [*self.exe, "-w", str(self.root), *args]

    def run(self, *args: str) -> tuple[float, str, str]:
        """Run orchestrator with *args*; return wall time, stdout and stderr."""
        start = time.perf_counter()
        proc = subprocess.run(self.cmd(*args), cwd=self.root, env=self.env,
                              capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise CommandFailedError(f"orchestrator {args[0]} exited {proc.returncode}:\n"
                                     f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        return elapsed, proc.stdout, proc.stderr

    def build(self, base: str, *services: str) -> tuple[float, str]:
        """Run ``build`` through the engine; return wall time and stdout."""
        seconds, out, _ = self.run("build", "--base", base, *services)
        return seconds, out


_BUILT = re.compile(r"^(?P<service>\S+): (?P<ref>\S+) .*?, (?:built in (?P<seconds>[\d.]+)s"
                    r", (?P<cached>\d+) steps cached|(?P<fresh>up to date))", re.M)


@dataclass(frozen=True, slots=True)
class Built:
    """One service line of ``orchestrator build``'s output."""

    ref: str
    seconds: float | None  # the engine's build time; None: up to date, nothing built
    cached_steps: int | None


def parse_build(stdout: str) -> dict[str, Built]:
    return {m["service"]: Built(m["ref"], float(m["seconds"]) if m["seconds"] else None,
                                int(m["cached"]) if m["cached"] else None)
            for m in _BUILT.finditer(stdout)}


@dataclass
class Naive:
    """A hand-written Dockerfile for one service, built with the docker CLI."""

    name: str  # "naive" or "multistage"
    context: Path
    ref: str
    edit: Path  # the service source file inside the context

    def build(self, base: str) -> float:
        return run_timed(["docker", "build", "--network", "host", "--rm", "--build-arg",
                          f"BASE_IMAGE={base}", "-t", self.ref, str(self.context)],
                         self.context, docker_env())


def naive_context(dest: Path, service: MemberInfo, libs: Sequence[MemberInfo], root: Path,
                  template: str, requirements: str | None) -> Path:
    """The service and its libraries, laid out as in the monorepo, plus a Dockerfile."""
    reset_dir(dest)
    for member in [*libs, service]:
        rel = member.path.relative_to(root)
        shutil.copytree(member.path, dest / rel,
                        ignore=shutil.ignore_patterns("pylock.toml", "__pycache__", ".venv"))
    shutil.copyfile(CA_BUNDLE, dest / "ca-certificates.crt")
    if requirements is not None:
        (dest / "requirements.txt").write_text(requirements)
    paths = " ".join(f"/app/{m.path.relative_to(root).as_posix()}" for m in [*libs, service])
    tool = service.pyproject.get("tool", {})
    assert isinstance(tool, dict)
    command = tool.get("orchestrator", {}).get("command")
    if not command:
        project = service.pyproject["project"]
        assert isinstance(project, dict)
        command = [next(iter(project.get("scripts", {})))]
    (dest / "Dockerfile").write_text(template.format(paths=paths, command=json.dumps(command)))
    return dest


# -- scenarios ------------------------------------------------------------------------------------


@dataclass
class Results:
    times: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # scenario->variant
    new_bytes: dict[str, list[int]] = field(default_factory=dict)  # variant -> bytes
    new_layer_counts: dict[str, list[int]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # image label -> bytes
    per_service: dict[str, list[float]] = field(default_factory=dict)  # cold engine seconds
    cached_steps: dict[str, list[int]] = field(default_factory=dict)  # code-only, orchestrator
    layers: dict[str, list[dict[str, str | int]]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # variant -> its service image
    oci_push: dict[str, object] = field(default_factory=dict)  # library, seconds, bytes

    def add(self, scenario: str, variant: str, seconds: float) -> None:
        self.times.setdefault(scenario, {}).setdefault(variant, []).append(seconds)
        print(f"  {scenario:<10} {variant:<12} {seconds:8.3f} s", file=sys.stderr)

    def add_bytes(self, variant: str, count: int, size: int) -> None:
        self.new_bytes.setdefault(variant, []).append(size)
        self.new_layer_counts.setdefault(variant, []).append(count)
        print(f"  {'new bytes':<10} {variant:<12} {count} layer(s), {size:,} B", file=sys.stderr)


def run_orchestrator_round(orch: Orchestrator, fresh_base: Callable[[], str], service: str,
                           edit: Path, rep: int, no_change: int, code: int,
                           res: Results) -> None:
    """Cold ``build SERVICE``; cold ``build`` of all; no-change builds; code-only edits.

    The first code-only edit after the cold build is reported apart: with ``-j 2`` two
    services build the identical installer stage at once, and the legacy builder may later
    pick the other copy as the cached parent, re-running a dependency stage.
    """
    seconds, out = orch.build(fresh_base(), service)
    if parse_build(out)[service].seconds is None:
        raise CommandFailedError(f"the cold build reused an image:\n{out}")
    res.add("cold", "orchestrator", seconds)
    base = fresh_base()
    seconds, out = orch.build(base)
    built = parse_build(out)
    if any(info.seconds is None for info in built.values()):
        raise CommandFailedError(f"the cold build reused an image:\n{out}")
    res.add("cold-all", "orchestrator", seconds)
    for name, info in built.items():
        res.per_service.setdefault(name, []).append(info.seconds or 0.0)
        res.sizes[f"orchestrator {name}"] = image_size(info.ref)
    for _ in range(no_change):
        seconds, out = orch.build(base)
        if any(info.seconds is not None for info in parse_build(out).values()):
            raise CommandFailedError(f"a no-change build rebuilt something:\n{out}")
        res.add("no-change", "orchestrator", seconds)
    ref = res.refs["orchestrator"] = built[service].ref
    edits = [("code-first", "orchestrator first")] + [("code-only", "orchestrator")] * code
    for i, (scenario, label) in enumerate(edits):
        before = rootfs_layers(ref)
        edit_code(edit, f"orchestrator round {rep}, edit {i}")
        seconds, out = orch.build(base, service)
        info = parse_build(out)[service]
        if info.seconds is None:
            raise CommandFailedError(f"the code-only change was not rebuilt:\n{out}")
        res.add(scenario, "orchestrator", seconds)
        res.cached_steps.setdefault(label, []).append(info.cached_steps or 0)
        res.add_bytes(label, *new_layers(before, ref))


def run_naive_round(variant: Naive, base: str, rep: int, res: Results) -> None:
    """Cold build, then the code-only edit and a rebuild."""
    res.add("cold", variant.name, variant.build(base))
    res.sizes[variant.name] = image_size(variant.ref)
    before = rootfs_layers(variant.ref)
    edit_code(variant.edit, f"{variant.name} round {rep}")
    res.add("code-only", variant.name, variant.build(base))
    res.add_bytes(variant.name, *new_layers(before, variant.ref))


def run_oci_round(orch: Orchestrator, oci: Sequence[str], service: str, edit: Path,
                  layout: Path, rep: int, no_change: int, code: int, res: Results) -> None:
    """``--engine oci``: cold ``build SERVICE`` (``oci-v1/`` emptied), code-only, no-change."""
    shutil.rmtree(orch.cache / "oci-v1", ignore_errors=True)
    seconds, out, _ = orch.run("build", service, *oci, "--oci-layout", str(layout))
    if "assembled" not in out:
        raise CommandFailedError(f"the cold oci build reused an image:\n{out}")
    res.add("cold", "oci", seconds)
    for i in range(1 + code):
        edit_code(edit, f"oci round {rep}, edit {i}")
        seconds, out, _ = orch.run("build", service, *oci, "--oci-layout", str(layout))
        if "assembled" not in out:
            raise CommandFailedError(f"the code-only change was not rebuilt:\n{out}")
        res.add("code-only", "oci", seconds)
    orch.run("build", *oci)  # the other services, after the emptied store
    for _ in range(no_change):
        seconds, out, _ = orch.run("build", *oci)
        if "assembled" in out:
            raise CommandFailedError(f"a no-change oci build assembled an image:\n{out}")
        res.add("no-change", "oci", seconds)


def pushed_bytes(stderr: str) -> int:
    """The bytes uploaded, from the ``pushed REF: N bytes uploaded`` notes of ``build``."""
    return sum(int(n) for n in re.findall(r"pushed \S+: (\d+) bytes uploaded", stderr))


def run_oci_push(orch: Orchestrator, oci: Sequence[str], library: MemberInfo,
                 res: Results) -> None:
    """Every service pushed, a comment in *library*, every service built and pushed again."""
    orch.run("build", *oci, "--push")
    edit_code(source_file(library.path), "a library change")
    seconds, _, stderr = orch.run("build", *oci, "--push")
    res.oci_push = {"library": library.name, "seconds": seconds,
                    "bytes": pushed_bytes(stderr)}
    print(f"  {'push':<10} {'oci':<12} {res.oci_push['bytes']:,} B uploaded after a change "
          f"in {library.name}, build + push {seconds:.3f} s", file=sys.stderr)


def layer_table(ref: str) -> list[dict[str, str | int]]:
    """The image's layers, bottom to top, with the step that made each and its tar size.

    Steps that make a layer are RUN, COPY/ADD and the imported base (``docker history``
    marks the others ``#(nop)``); if the count does not match, the step is left blank.
    """
    sizes = layer_tar_sizes(ref)
    history = [json.loads(line) for line in  # JSON: a LABEL step spans lines
               docker("history", "--no-trunc", "--format", "{{json .CreatedBy}}", ref).split("\n")]
    steps = [h for h in reversed(history)
             if "#(nop) " not in h or re.search(r"#\(nop\) (COPY|ADD) ", h)]
    rows: list[dict[str, str | int]] = []
    for i, (diff, size) in enumerate(sizes.items()):
        what = (steps[i] or "(imported base)") if len(steps) == len(sizes) else "?"
        what = what.replace("/bin/sh -c #(nop) ", "").replace("/bin/sh -c ", "RUN ")
        rows.append({"diff_id": diff, "bytes": size, "created_by": what[:100]})
    return rows


# -- report ---------------------------------------------------------------------------------------


def mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def summary_cell(samples: Sequence[float]) -> str:
    return Summary.of(samples).cell() if samples else "-"


ROWS = [  # (scenario, row title); the naive variants run only "cold" and "code-only"
    ("cold", "cold build of {service}"),
    ("cold-all", "cold build of all services (`-j 2`)"),
    ("cold-empty", "cold build of all services, empty wheel cache"),
    ("code-first", "code-only rebuild, first after the cold `-j 2` build"),
    ("code-only", "code-only rebuild"),
    ("no-change", "no-change `build` of all services"),
]


def ratio(by: dict[str, list[float]], other: str) -> str:
    if "orchestrator" not in by or other not in by:
        return "-"
    return f"{Summary.of(by[other]).median / Summary.of(by['orchestrator']).median:.1f}x"


COLUMNS = {"orchestrator": "orchestrator", "naive": "naive (`COPY . /app` + `pip install`)",
           "multistage": "multi-stage venv copy", "oci": "`--engine oci`"}


def markdown_tables(res: Results, service: str) -> str:
    """The tables of the variants that ran (a column, or a table, of none is left out)."""
    ran = [v for v in VARIANTS if any(v in by for by in res.times.values())]
    naive = ["naive", "multistage"]
    ratios = [v for v in naive if v in ran and "orchestrator" in ran]
    head = [COLUMNS[v] for v in ran] + [f"{v} ÷ orchestrator" for v in ratios]
    lines = ["| scenario | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
    for scenario, title in ROWS:
        by = res.times.get(scenario, {})
        if not by:
            continue
        cells = [title.format(service=service), *(summary_cell(by.get(v, [])) for v in ran),
                 *(ratio(by, v) for v in ratios)]
        lines.append("| " + " | ".join(cells) + " |")
    if res.oci_push:
        push = res.oci_push
        lines += ["", "| `--engine oci`, every service | build + push | bytes uploaded |",
                  "|---|---:|---:|",
                  f"| after a comment in {push['library']} | {push['seconds']:.3f} s "
                  f"| {push['bytes']:,} |"]
    if res.new_bytes or res.sizes:  # the engine's images (docker save, image inspect)
        lines += ["", f"| {service} image | orchestrator | naive | multi-stage venv copy |",
                  "|---|---:|---:|---:|"]
        for label, title in (("orchestrator first", "new bytes, code-only rebuild first "
                              "after the cold build"), ("orchestrator",
                                                        "new bytes, code-only rebuild")):
            cells = [title, new_bytes_cell(res, label)]
            cells += [new_bytes_cell(res, v) if label == "orchestrator" else "-" for v in naive]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("| image size | " + " | ".join(
            mb(res.sizes[k]) if k in res.sizes else "-"
            for k in (f"orchestrator {service}", *naive)) + " |")
    if res.per_service:
        lines += ["", "| service | orchestrator engine time in the cold build of all services "
                  "| image size |", "|---|---:|---:|"]
        for name, secs in sorted(res.per_service.items()):
            lines.append(f"| {name} | {summary_cell(secs)} "
                         f"| {mb(res.sizes[f'orchestrator {name}'])} |")
    return "\n".join(lines)


def new_bytes_cell(res: Results, label: str) -> str:
    sizes, counts = res.new_bytes.get(label, []), res.new_layer_counts.get(label, [])
    if not sizes:
        return "-"
    layers = f"{min(counts)}-{max(counts)}" if min(counts) != max(counts) else str(max(counts))
    return f"{mb(Summary.of(sizes).median)} ({mb(min(sizes))}-{mb(max(sizes))}), {layers} layer(s)"


def targets(res: Results, service: str) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    naive = res.times.get("code-only", {}).get("naive")
    for scenario, what in (("code-only", "code-only rebuild"),
                           ("code-first", "code-only rebuild right after a cold -j 2 build")):
        orch = res.times.get(scenario, {}).get("orchestrator")
        if orch and naive:
            r = Summary.of(naive).median / Summary.of(orch).median
            out[f"{what} >= 5x faster than naive"] = {
                "met": r >= TARGETS["code_ratio"],
                "measured": f"{r:.1f}x ({Summary.of(orch).median:.2f} s vs naive "
                            f"{Summary.of(naive).median:.2f} s)"}
    added = res.new_bytes.get("orchestrator", []) + res.new_bytes.get("orchestrator first", [])
    if added:
        out["code-only rebuild adds < 1 MB"] = {
            "met": max(added) < TARGETS["code_bytes"], "measured": f"largest {max(added):,} B"}
    if res.times.get("no-change", {}).get("orchestrator"):
        med = Summary.of(res.times["no-change"]["orchestrator"]).median
        out["no-change build under 3 s"] = {"met": med < TARGETS["no_change_s"],
                                            "measured": f"{med:.3f} s"}
    orch_size, naive_size = res.sizes.get(f"orchestrator {service}"), res.sizes.get("naive")
    if orch_size is not None and naive_size is not None:
        out["image no larger than naive"] = {
            "met": orch_size <= naive_size,
            "measured": f"{service}: {orch_size:,} B vs naive {naive_size:,} B"}
    return out


# -- a data-science service, four ways (issue 12) -----------------------------------------------
#
#   flock /tmp/orch-bench.lock .venv/bin/python bench/images.py --datasci [--reps 3]
#
# A generated workspace: library ``features`` (numpy, pandas) used by two services, ``scorer``
# (features, pandas, numpy, pyarrow, scikit-learn) and ``reporter`` (features, pandas,
# pyarrow), locked against the public index. The wheel cache is kept between runs
# (bench/.tools/images-cache; the first run downloads the wheels). Four variants of scorer:
# ``--engine oci`` (cold: its layer records and image records in oci-v1/ removed, so every
# layer is staged, compiled, tarred and gzipped again; the base pulled from the loopback
# registry, where docker pushed it, whose blobs stay), the Docker engine path
# (``orchestrator build``; cold: a fresh base image ID), the naive Dockerfile and the
# multi-stage one (cold: a fresh base image ID, pip downloads from the public index inside
# the build, ``--network host``). Bytes pushed: every
# service pushed, one comment appended to libs/features, every service rebuilt and pushed
# again; the registry's own log says which blobs were uploaded (a completed upload PUT with
# ``digest=``) and which were mounted, and its storage their sizes: the same count for the
# docker CLI and for orchestrator's client.

DS_CACHE = BENCH_DIR / ".tools" / "images-cache"  # gitignored; wheels persist between runs
DS_VARIANTS = ("oci", "engine", "naive", "multistage")
DS_LIB = """\
[project]
name = "features"
version = "1.0.0"
requires-python = ">=3.11"
dependencies = ["numpy>=2", "pandas>=2.2"]

[build-system]
requires = ["hatchling>=1.24"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["src/features"]

[tool.orchestrator]
kind = "library"
"""
DS_SERVICE = """\
[project]
name = "{name}"
version = "1.0.0"
requires-python = ">=3.11"
dependencies = [{deps}]

[project.scripts]
{name} = "{name}.app:run"

[build-system]
requires = ["hatchling>=1.24"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["src/{name}"]

[tool.orchestrator]
kind = "service"
command = ["{name}"]
"""
DS_SERVICES = {
    "scorer": ("features", "numpy>=2", "pandas>=2.2", "pyarrow>=17", "scikit-learn>=1.5"),
    "reporter": ("features", "pandas>=2.2", "pyarrow>=17"),
}
DS_CODE = {
    "features": "import numpy as np\nimport pandas as pd\n\n\n"
                "def frame(n: int) -> pd.DataFrame:\n"
                "    return pd.DataFrame({'x': np.arange(n), 'y': np.arange(n) * 2.0})\n",
    "scorer": "from features import frame\n\n\ndef run() -> None:\n"
              "    import pyarrow as pa\n    from sklearn.linear_model import LinearRegression\n"
              "    df = frame(10)\n    model = LinearRegression().fit(df[['x']], df['y'])\n"
              "    print(pa.Table.from_pandas(df).num_rows, model.coef_[0])\n",
    "reporter": "from features import frame\n\n\ndef run() -> None:\n"
                "    import pyarrow as pa\n    print(pa.Table.from_pandas(frame(5)).num_rows)\n",
}
DS_GOALS = {"cold": 15.0, "code-only": 1.0, "no-change": 0.3}


def write_datasci(root: Path, registry: str) -> None:
    """The generated workspace, committed to a new git repository."""
    (root / "workspace.yaml").write_text(
        "version: 1\nname: ds\npython: \"3.11\"\nplatforms: [linux/amd64]\n"
        "indexes:\n  - {name: pypi, url: https://pypi.org/simple}\n"
        "members:\n  - services/*\n  - libs/*\n"
        f"image:\n  base: {DEFAULT_BASE}\n  registry: {registry}\n")
    lib = root / "libs" / "features"
    (lib / "src" / "features").mkdir(parents=True)
    (lib / "pyproject.toml").write_text(DS_LIB)
    (lib / "src" / "features" / "__init__.py").write_text(DS_CODE["features"])
    for name, deps in DS_SERVICES.items():
        svc = root / "services" / name
        (svc / "src" / name).mkdir(parents=True)
        (svc / "pyproject.toml").write_text(
            DS_SERVICE.format(name=name, deps=", ".join(json.dumps(d) for d in deps)))
        (svc / "src" / name / "__init__.py").write_text("")
        (svc / "src" / name / "app.py").write_text(DS_CODE[name])
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "data-science workspace")


@dataclass
class DsRun:
    """The generated workspace and what every variant needs."""

    root: Path
    work: Path
    env: dict[str, str]
    exe: list[str]
    oci_base: str  # the base in the loopback registry, as docker pushed it, for --engine oci
    prefix: str  # registry/bench-ds/<pid>
    run_id: str
    base: str
    naive: dict[str, dict[str, Naive]] = field(default_factory=dict)  # variant -> service ->
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def orch(self, *args: str) -> tuple[float, str, str]:
        start = time.perf_counter()
        proc = subprocess.run([*self.exe, "-w", str(self.root), *args], cwd=self.root,
                              env=self.env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise CommandFailedError(f"orchestrator {' '.join(args)} exited "
                                     f"{proc.returncode}:\n{proc.stdout[-2000:]}\n"
                                     f"{proc.stderr[-4000:]}")
        return elapsed, proc.stdout, proc.stderr

    def oci(self, *args: str) -> tuple[float, str, str]:
        return self.orch("build", "--engine", "oci", "--base", self.oci_base, *args)

    def add(self, scenario: str, variant: str, seconds: float) -> None:
        self.samples.setdefault(scenario, {}).setdefault(variant, []).append(seconds)
        print(f"  {scenario:<10} {variant:<11} {seconds:8.3f} s", file=sys.stderr)

    def fresh_base(self) -> str:
        return make_base(self.base, self.prefix, self.run_id, uuid.uuid4().hex[:12])


def ds_round(run: DsRun, variant: str, rep: int, no_change: int) -> None:
    """Cold build of scorer, a code-only change and rebuild, no-change rebuilds.

    Every edit names the run: the member wheels are cached by source digest in the
    kept cache, and an edit an earlier run made would find its wheel (and layer) built.
    """
    edit = run.root / "services" / "scorer" / "src" / "scorer" / "app.py"
    rep_name = f"{run.run_id} {rep}"
    if variant == "oci":
        store = Path(run.env["ORCHESTRATOR_CACHE_DIR"]) / "oci-v1"
        for part in ("layers", "images"):  # every layer staged and written again
            shutil.rmtree(store / part, ignore_errors=True)
        seconds, out, _ = run.oci("scorer")
        if "assembled" not in out:
            raise CommandFailedError(f"the cold oci build reused an image:\n{out}")
        run.add("cold", variant, seconds)
        edit_code(edit, f"oci round {rep_name}")
        run.add("code-only", variant, run.oci("scorer")[0])
        run.oci()
        for _ in range(no_change):
            seconds, out, _ = run.oci()
            if "assembled" in out:
                raise CommandFailedError(f"a no-change oci build assembled an image:\n{out}")
            run.add("no-change", variant, seconds)
    elif variant == "engine":
        base = run.fresh_base()
        seconds, out, _ = run.orch("build", "--base", base, "scorer")
        if "built in" not in out:
            raise CommandFailedError(f"the cold engine build reused an image:\n{out}")
        run.add("cold", variant, seconds)
        edit_code(edit, f"engine round {rep_name}")
        run.add("code-only", variant, run.orch("build", "--base", base, "scorer")[0])
        run.orch("build", "--base", base)
        for _ in range(no_change):
            seconds, out, _ = run.orch("build", "--base", base)
            if "built in" in out:
                raise CommandFailedError(f"a no-change engine build rebuilt:\n{out}")
            run.add("no-change", variant, seconds)
    else:
        naive = run.naive[variant]["scorer"]
        base = run.fresh_base()
        run.add("cold", variant, naive.build(base))
        edit_code(naive.edit, f"{variant} round {rep_name}")
        run.add("code-only", variant, naive.build(base))
        for _ in range(no_change):  # one service: a Dockerfile knows nothing of the others
            run.add("no-change", variant, naive.build(base))


def registry_storage() -> Path | None:
    """The loopback registry's storage root, from the config registry-up.sh wrote."""
    port = (docker_infra.setting(docker_infra.REGISTRY_VAR) or "127.0.0.1:5000").rsplit(":")[-1]
    config = Path(os.environ.get("ORCHESTRATOR_INFRA_RUN", "/run/orchestrator-infra")) / \
        f"registry-{port}" / "config.yml"
    found = re.search(r"rootdirectory:\s*(\S+)", config.read_text()) if config.is_file() else None
    return Path(found.group(1)) if found else None


class RegistryLog:
    """What the registry did between ``mark`` and ``uploads``: uploaded and mounted blobs."""

    def __init__(self, storage: Path) -> None:
        self.storage = storage
        self.log = storage.parent / "registry.log"
        self.offset = 0

    def mark(self) -> None:
        self.offset = self.log.stat().st_size

    def uploads(self, repo_prefix: str) -> tuple[int, int, int]:
        """(blobs uploaded, their bytes, blobs mounted) for repositories under *repo_prefix*."""
        with self.log.open("rb") as f:
            f.seek(self.offset)
            text = f.read().decode(errors="replace")
        uploaded: set[str] = set()
        mounted = 0
        for line in text.splitlines():
            uri = re.search(r'http\.request\.uri="?([^" ]+)', line)
            status = re.search(r"http\.response\.status=(\d+)", line)
            method = re.search(r"http\.request\.method=(\w+)", line)
            if not (uri and status and method) or status.group(1) != "201":
                continue
            if not uri.group(1).startswith(f"/v2/{repo_prefix}/"):
                continue
            digest = re.search(r"digest=(sha256(?::|%3A)[0-9a-f]{64})", uri.group(1))
            if method.group(1) == "PUT" and "/blobs/uploads/" in uri.group(1) and digest:
                uploaded.add(digest.group(1).replace("%3A", ":"))
            elif method.group(1) == "POST" and "mount=" in uri.group(1):
                mounted += 1
        blobs = self.storage / "docker" / "registry" / "v2" / "blobs" / "sha256"
        size = sum((blobs / d[7:9] / d[7:] / "data").stat().st_size for d in uploaded)
        return len(uploaded), size, mounted


def pushed_size(ref: str) -> int:
    """The compressed size of a pushed image: its manifest's config and layer sizes."""
    import urllib.request

    host, _, rest = ref.partition("/")
    repo, _, tag = rest.rpartition(":")
    accept = ("application/vnd.oci.image.manifest.v1+json, "
              "application/vnd.docker.distribution.manifest.v2+json")
    request = urllib.request.Request(f"http://{host}/v2/{repo}/manifests/{tag}",
                                     headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=30) as response:
        manifest = json.loads(response.read())
    return int(manifest["config"]["size"]) + sum(int(x["size"]) for x in manifest["layers"])


def ds_push(run: DsRun, variant: str, reglog: RegistryLog) -> dict[str, object]:
    """Push every service, change libs/features, rebuild and push again: what was uploaded."""
    lib = run.root / "libs" / "features" / "src" / "features" / "__init__.py"
    repo_prefix = run.prefix.split("/", 1)[1]
    if variant in ("oci", "engine"):
        base = run.fresh_base() if variant == "engine" else ""
        args = ["--push"] + (["--base", base] if base else [])
        build = run.oci if variant == "oci" else (lambda *a: run.orch("build", *a))
        build(*args)
        edit_code(lib, f"{variant} {run.run_id}: a library change")
        reglog.mark()
        seconds, out, _ = build(*args)
        refs = re.findall(r"^\s+pushed (\S+) sha256:", out, re.M)
        size = pushed_size(next(r for r in refs if "/scorer:" in r))
    else:
        base = run.fresh_base()
        images = run.naive[variant]
        for naive in images.values():
            naive.build(base)
            docker("push", "-q", naive.ref)
        for naive in images.values():  # each context has its own copy of the library
            edit_code(naive.context / "libs" / "features" / "src" / "features" / "__init__.py",
                      f"{variant} {run.run_id}: a library change")
        reglog.mark()
        start = time.perf_counter()
        for naive in images.values():
            naive.build(base)
            docker("push", "-q", naive.ref)
        seconds = time.perf_counter() - start
        size = pushed_size(images["scorer"].ref)
    count, uploaded, mounted = reglog.uploads(repo_prefix)
    print(f"  push       {variant:<11} {uploaded:,} B in {count} blobs ({mounted} mounted), "
          f"build + push {seconds:.1f} s", file=sys.stderr)
    return {"blobs_uploaded": count, "bytes_uploaded": uploaded, "blobs_mounted": mounted,
            "seconds": seconds, "scorer_pushed_size": size}


def ds_naive_contexts(run: DsRun) -> None:
    members = load_members(run.root)
    by_path = {m.path.name: m for m in members}
    for variant, template in (("naive", NAIVE_DOCKERFILE), ("multistage", MULTISTAGE_DOCKERFILE)):
        run.naive[variant] = {}
        for name in DS_SERVICES:
            service = by_path[name]
            libs = runtime_libraries(service, members)
            reqs = None
            if variant == "multistage":
                proc = subprocess.run([*run.exe, "-w", str(run.root), "-q", "export", name,
                                       "--no-dev", "--no-workspace"], cwd=run.root,
                                      env=run.env, capture_output=True, text=True, check=True)
                reqs = proc.stdout
            ctx = naive_context(run.work / f"{variant}-{name}", service, libs, run.root,
                                template, reqs)
            edit = ctx / "services" / name / "src" / name / "app.py"
            run.naive[variant][name] = Naive(variant, ctx, f"{run.prefix}/{variant}-{name}:bench",
                                             edit)


def ds_table(run: DsRun, pushes: dict[str, dict[str, object]],
             sizes: dict[str, dict[str, int]]) -> str:
    titles = {"oci": "`--engine oci`", "engine": "Docker engine (`orchestrator build`)",
              "naive": "naive Dockerfile", "multistage": "multi-stage Dockerfile"}
    rows = [("cold", "cold build of scorer, warm wheel cache (goal ≤ 15 s)"),
            ("code-only", "code-only rebuild of scorer (goal ≤ 1 s)"),
            ("no-change", "no-change rebuild of the whole workspace (goal ≤ 0.3 s)")]
    variants = [v for v in DS_VARIANTS if any(v in by for by in run.samples.values())
                or v in pushes]
    lines = ["| scenario | " + " | ".join(titles[v] for v in variants) + " |",
             "|---|" + "---:|" * len(variants)]
    for scenario, title in rows:
        by = run.samples.get(scenario, {})
        lines.append(f"| {title} | " + " | ".join(summary_cell(by.get(v, []))
                                                  for v in variants) + " |")
    cells = []
    for v in variants:
        p = pushes.get(v)
        cells.append("-" if p is None else
                     f"{mb(int(p['bytes_uploaded']))} in {p['blobs_uploaded']} blobs"  # type: ignore[call-overload]
                     + (f", {p['blobs_mounted']} mounted" if p["blobs_mounted"] else ""))
    lines.append("| bytes pushed, all services, after a code-only change in libs/features | "
                 + " | ".join(cells) + " |")
    lines.append("| scorer image, compressed (as pushed) | " + " | ".join(
        mb(sizes[v]["pushed"]) if "pushed" in sizes.get(v, {}) else "-" for v in variants)
        + " |")
    lines.append("| scorer image, uncompressed (`docker image inspect`) | " + " | ".join(
        mb(sizes[v]["local"]) if "local" in sizes.get(v, {}) else "-" for v in variants)
        + " |")
    return "\n".join(lines)


def datasci_main(args: argparse.Namespace) -> int:
    if not docker_infra.docker_available():
        print(f"no Docker engine: {docker_infra.skip_reason('docker')}", file=sys.stderr)
        return 2
    registry = docker_infra.setting(docker_infra.REGISTRY_VAR) or "127.0.0.1:5000"
    run_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    prefix = f"{registry}/bench-ds/{os.getpid()}"
    wanted = [v for v in DS_VARIANTS if v in args.ds_variants.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-images-ds-"))
    storage = registry_storage()
    try:
        root = work / "ws"
        root.mkdir()
        write_datasci(root, prefix)
        env = docker_env()
        env["ORCHESTRATOR_CACHE_DIR"] = str(args.cache)
        run = DsRun(root, work, env, orchestrator_cmd(), f"{prefix}/base:oci", prefix, run_id,
                    args.base)
        t0 = time.perf_counter()
        run.orch("-q", "lock")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "locks")
        print(f"  lock against the public index {time.perf_counter() - t0:.1f} s",
              file=sys.stderr)
        # The base from a registry, its layer gzipped by docker's push as the engine path's
        # is: the pushed images then hold the same base bytes (a `docker save` archive's
        # layers are plain tars, which would be pushed so).
        docker("tag", args.base, run.oci_base)
        docker("push", "-q", run.oci_base)
        versions = {"orchestrator": tool_version([*run.exe, "--version"]),
                    "docker engine": engine_version(), "base image": args.base,
                    "repository": repo_state()}
        t0 = time.perf_counter()
        run.oci()  # downloads the wheels (first run), builds member wheels
        if "engine" in wanted:
            run.orch("build", "--base", make_base(args.base, prefix, run_id, "warmup"))
        print(f"  warm-up (untimed) {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        if {"naive", "multistage"} & set(wanted):
            ds_naive_contexts(run)
        for rep in range(args.reps):
            for variant in rotated(wanted, rep):
                ds_round(run, variant, rep, args.no_change)
        sizes: dict[str, dict[str, int]] = {}
        pushes: dict[str, dict[str, object]] = {}
        if storage is not None and not args.no_push:
            reglog = RegistryLog(storage)
            for variant in wanted:
                pushes[variant] = ds_push(run, variant, reglog)
                sizes.setdefault(variant, {})["pushed"] = int(
                    pushes[variant]["scorer_pushed_size"])  # type: ignore[call-overload]
        for variant in wanted:
            if variant == "engine":
                ref = next(t for t in docker("images", "--format", "{{.Repository}}:{{.Tag}}",
                                             f"{prefix}/scorer").split() if t)
                sizes.setdefault(variant, {})["local"] = image_size(ref)
            elif variant in run.naive:
                scorer = run.naive[variant]["scorer"].ref
                sizes.setdefault(variant, {})["local"] = image_size(scorer)
        table = ds_table(run, pushes, sizes)
        print(table)
        goals = {}
        for scenario, limit in DS_GOALS.items():
            for variant in ("oci", "engine"):
                samples = run.samples.get(scenario, {}).get(variant)
                if samples:
                    med = Summary.of(samples).median
                    goals[f"{variant} {scenario} ≤ {limit} s"] = {"met": med <= limit,
                                                                  "median": med}
        print("\nGoals:")
        for goal, result in goals.items():
            print(f"- {goal}: {'met' if result['met'] else 'NOT met'} "
                  f"({result['median']:.3f} s)")
        path = write_results("images-datasci", {
            "command": " ".join([sys.executable, *sys.argv]), "machine": machine_info(),
            "load_average": os.getloadavg(), "versions": versions, "reps": args.reps,
            "samples": run.samples,
            "summary": {sc: {v: summary_dict(Summary.of(s)) for v, s in by.items()}
                        for sc, by in run.samples.items()},
            "push": pushes, "sizes": sizes, "goals": goals,
            "lock": (root / "services" / "scorer" / "pylock.toml").read_text()})
        print(f"\nresults: {path}", file=sys.stderr)
    except CommandFailedError as exc:
        print(f"benchmark aborted: {exc}", file=sys.stderr)
        return 1
    finally:
        end_run(run_id, work, keep=args.keep)
    return 0


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--reps", type=int, default=3,
                   help="rounds of cold + code-only builds per variant (default 3)")
    p.add_argument("--no-change", type=int, default=5,
                   help="no-change orchestrator builds per round (default 5)")
    p.add_argument("--code", type=int, default=3,
                   help="code-only orchestrator rebuilds per round after the first (default 3)")
    p.add_argument("--empty-cache", type=int, default=1,
                   help="cold orchestrator builds with an empty wheel cache (default 1)")
    p.add_argument("--service", default="orders",
                   help="the service of the code-only change and the naive Dockerfiles")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help="comma-separated subset of " + ",".join(VARIANTS))
    p.add_argument("--base", default=docker_infra.setting(docker_infra.BASE_IMAGE_VAR)
                   or DEFAULT_BASE, help=f"base image (default {DEFAULT_BASE})")
    p.add_argument("--workspace", type=Path, default=REPO_ROOT,
                   help="workspace root to copy (default: the repository's example workspace)")
    p.add_argument("--keep", action="store_true",
                   help="keep the temp dir and the images (printed at the end)")
    p.add_argument("--datasci", action="store_true",
                   help="the data-science service, four ways (issue 12): a generated "
                   "workspace with pandas, numpy, pyarrow and scikit-learn")
    p.add_argument("--ds-variants", default=",".join(DS_VARIANTS),
                   help="with --datasci: comma-separated subset of " + ",".join(DS_VARIANTS))
    p.add_argument("--cache", type=Path, default=DS_CACHE,
                   help=f"with --datasci: the wheel cache kept between runs (default {DS_CACHE})")
    p.add_argument("--no-push", action="store_true",
                   help="leave out the bytes-pushed scenario (of --datasci, or of the oci "
                   "variant)")
    args = p.parse_args(argv)
    for name in ("reps", "empty_cache"):
        if not 0 <= getattr(args, name) <= MAX_NETWORK_REPS:
            p.error(f"--{name.replace('_', '-')} must be between 0 and {MAX_NETWORK_REPS}")
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variants: {', '.join(sorted(unknown))}")
    return args


def prepare(args: argparse.Namespace, work: Path, prefix: str
            ) -> tuple[Orchestrator, list[Naive], MemberInfo]:
    source = args.workspace.resolve()
    root = copy_workspace(source, work / "ws")
    if (source / "templates").is_dir():
        shutil.copytree(source / "templates", root / "templates")
    set_registry(root, prefix)
    cache = work / "cache"
    env = docker_env()
    env["ORCHESTRATOR_CACHE_DIR"] = str(cache)
    orch = Orchestrator(root, cache, orchestrator_cmd(), env)
    run_timed(orch.cmd("-q", "lock"), root, env)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "benchmark copy of the example workspace")
    members = load_members(root)
    service = next((m for m in members if m.path.name == args.service
                    or canonicalize_name(m.name) == canonicalize_name(args.service)), None)
    if service is None or service.kind != "service":
        raise CommandFailedError(f"no service {args.service!r} in {source}")
    libs = runtime_libraries(service, members)
    proc = subprocess.run(orch.cmd("-q", "export", service.name, "--no-dev", "--no-workspace"),
                          cwd=root, env=env, capture_output=True, text=True, check=True)
    naive = []
    for name, template, reqs in (("naive", NAIVE_DOCKERFILE, None),
                                 ("multistage", MULTISTAGE_DOCKERFILE, proc.stdout)):
        ctx = naive_context(work / name, service, libs, root, template, reqs)
        edit = source_file(ctx / service.path.relative_to(root))
        naive.append(Naive(name, ctx, f"{prefix}/{name}-{service.path.name}:bench", edit))
    return orch, naive, service


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.datasci:
        return datasci_main(args)
    if not docker_infra.docker_available():
        print(f"no Docker engine: {docker_infra.skip_reason('docker')}", file=sys.stderr)
        return 2
    wanted = args.variants.split(",")
    run_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    registry = docker_infra.setting(docker_infra.REGISTRY_VAR) or "127.0.0.1:5000"
    prefix = f"{registry}/bench/{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="bench-images-"))
    res = Results()
    try:
        orch, naive, service = prepare(args, work, prefix)
        svc = service.path.name
        versions = {"orchestrator": tool_version([*orch.exe, "--version"]),
                    "docker engine": engine_version(), "base image": args.base,
                    "base image id": str(inspect(args.base)["Id"]),
                    "base python": container_python(args.base),
                    "repository": repo_state()}
        for key, value in versions.items():
            print(f"{key}: {value}", file=sys.stderr)
        edit = source_file(orch.root / service.path.relative_to(orch.root))
        if "orchestrator" in wanted:  # fill the private wheel cache and build environments
            warm = make_base(args.base, prefix, run_id, "warmup")
            seconds, _ = orch.build(warm)
            print(f"  warm-up build (downloads, untimed) {seconds:.1f} s", file=sys.stderr)
        oci: list[str] = []
        if "oci" in wanted:  # the base as a `docker save` archive: the only daemon use
            archive = work / "base.tar"
            docker("save", args.base, "-o", str(archive))
            oci = ["--engine", "oci", "--base", f"docker-archive:{archive}"]
            seconds = orch.run("build", *oci)[0]
            print(f"  warm-up oci build (untimed) {seconds:.1f} s", file=sys.stderr)
        variants = [v for v in VARIANTS if v in wanted]
        def fresh_base() -> str:
            return make_base(args.base, prefix, run_id, uuid.uuid4().hex[:12])

        for rep in range(args.reps):
            k = rep % len(variants)
            for name in [*variants[k:], *variants[:k]]:
                if name == "orchestrator":
                    run_orchestrator_round(orch, fresh_base, svc, edit, rep, args.no_change,
                                           args.code, res)
                elif name == "oci":
                    run_oci_round(orch, oci, svc, edit, work / f"oci-layout-{rep}", rep,
                                  args.no_change, args.code, res)
                else:
                    variant = next(n for n in naive if n.name == name)
                    run_naive_round(variant, fresh_base(), rep, res)
        if "oci" in wanted and not args.no_push:
            members = load_members(orch.root)
            libs = runtime_libraries(next(m for m in members if m.path == service.path),
                                     members)
            if libs:
                run_oci_push(orch, oci, libs[0], res)
        for n in naive:
            res.refs[n.name] = n.ref
        for name in variants:
            if name != "oci":  # the oci images are not in the engine
                res.layers[name] = layer_table(res.refs[name])
        if "orchestrator" in wanted:
            for _ in range(args.empty_cache):
                reset_dir(orch.cache)
                res.add("cold-empty", "orchestrator", orch.build(fresh_base())[0])
        goals = targets(res, svc)
        print(markdown_tables(res, svc))
        for label, rows in res.layers.items():
            print(f"\nLayers of the {label} image, bottom to top:")
            for row in rows:
                print(f"  {mb(int(row['bytes'])):>9}  {row['created_by']}")
        print("\nTargets:")
        for goal, result in goals.items():
            print(f"- {goal}: {'met' if result['met'] else 'NOT met'} ({result['measured']})")
        path = write_results("images", {
            "command": " ".join([sys.executable, *sys.argv]),
            "machine": machine_info(), "versions": versions,
            "repetitions": {"reps": args.reps, "no_change": args.no_change, "code": args.code,
                            "empty_cache": args.empty_cache},
            "service": svc, "times": res.times,
            "summary": {sc: {v: summary_dict(Summary.of(s)) for v, s in by.items()}
                        for sc, by in res.times.items()},
            "per_service_engine_seconds": res.per_service, "image_sizes": res.sizes,
            "code_only_new_bytes": res.new_bytes,
            "code_only_new_layers": res.new_layer_counts,
            "code_only_cached_steps": res.cached_steps,
            "layers": res.layers, "targets": goals, "oci_library_change_push": res.oci_push,
        })
        print(f"\nresults: {path}", file=sys.stderr)
    except CommandFailedError as exc:
        print(f"benchmark aborted: {exc}", file=sys.stderr)
        return 1
    finally:
        end_run(run_id, work, keep=args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
