"""The no-op fast path (orchestrator/noop.py): a stamp answers only what the normal path would.

Each command runs as the real CLI in a subprocess (the fast path is about what a new
process imports). The subprocess sets ``noop.RACY_NS`` to 0 unless a test asks for the
real rule: the workspaces here are seconds old, and every edit below comes at least one
CLI run after the file was last written, so its timestamps move.
"""

from __future__ import annotations

import json
import marshal
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator import noop
from tests.conftest import pyproject
from tests.support.cli import run

SCRIPT = """\
import atexit, os, sys
import orchestrator.noop as noop
noop.RACY_NS = int(os.environ.get("NOOP_TEST_RACY_NS", "0"))
def loaded():
    with open(os.environ["NOOP_TEST_MODULES"], "w") as f:
        f.write(",".join(sorted(sys.modules)))
atexit.register(loaded)
from orchestrator.cli import main
main(sys.argv[1:])
"""


@dataclass(frozen=True, slots=True)
class Outcome:
    code: int
    out: str
    err: str
    click: bool  # the normal path ran (the fast path imports no click)

    @property
    def shown(self) -> tuple[int, str, str]:
        """Code and output, without `lock`'s timing line (the one line that varies)."""
        err = "".join(line for line in self.err.splitlines(keepends=True)
                      if not line.startswith("locked in "))
        return self.code, self.out, err


def cli(cwd: Path, *args: str, fast: bool = True, racy_ns: int = 0,
        env: dict[str, str] | None = None) -> Outcome:
    handle, modules = tempfile.mkstemp(prefix="noop-modules-")
    os.close(handle)
    full = {**os.environ, **(env or {}), "NOOP_TEST_MODULES": modules,
            "NOOP_TEST_RACY_NS": str(racy_ns)}
    if not fast:
        full[noop.DISABLE_ENV] = "1"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *args], cwd=cwd, env=full,
                          capture_output=True, text=True, check=False)
    loaded = Path(modules).read_text().split(",")
    os.unlink(modules)
    return Outcome(proc.returncode, proc.stdout, proc.stderr, "click" in loaded)


def answered(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Outcome:
    """Run until the stamp answers (the normal path stamps first): a few tries, as other
    work in the same checkout may edit orchestrator's code between two runs, which is
    rightly a miss."""
    for _ in range(4):
        outcome = cli(cwd, *args, env=env)
        if not outcome.click:
            return outcome
    raise AssertionError(f"{args} was never answered by its stamp: {outcome}")


def stamps() -> dict[tuple[str, ...], Path]:
    """The stamps in the test's cache, by the arguments each answers."""
    bucket = Path(os.environ["ORCHESTRATOR_CACHE_DIR"]) / noop.BUCKET
    found = {}
    for path in bucket.glob("*.stamp") if bucket.is_dir() else ():
        found[marshal.loads(path.read_bytes())[1][0]] = path
    return found


@pytest.fixture
def synced(locked_shop: Path) -> Path:
    """The shop locked and its venvs synced (so the next sync is sync's own no-op)."""
    assert run(locked_shop, "lock")[0] == 0
    assert run(locked_shop, "sync")[0] == 0
    return locked_shop


FORMS = [("lock", "--check"), ("lock",), ("sync",), ("-q", "lock")]


@pytest.mark.parametrize("args", FORMS)
def test_a_repeated_noop_is_answered_by_the_stamp_without_click(synced: Path,
                                                                args: tuple[str, ...]) -> None:
    normal = cli(synced, *args, fast=False)
    assert normal.code == 0, normal.err
    first = cli(synced, *args)
    assert first.click and first.shown == normal.shown
    assert tuple(args) in stamps()
    second = answered(synced, *args)
    assert second.shown == normal.shown
    assert cli(synced, *args).shown == normal.shown  # and again: the stamp is not used up


def test_the_answers_are_the_normal_paths_bytes(synced: Path) -> None:
    assert cli(synced, "lock", "--check") == Outcome(0, "2 lock(s) up to date\n", "", True)
    assert answered(synced, "lock", "--check") == Outcome(0, "2 lock(s) up to date\n", "",
                                                          False)
    assert cli(synced, "sync").shown == (
        0, "", "api: up to date (7 packages)\ncommon: up to date (2 packages)\n")
    assert answered(synced, "sync") == Outcome(
        0, "", "api: up to date (7 packages)\ncommon: up to date (2 packages)\n", False)


def _edit_same_size(path: Path) -> None:
    text = path.read_text()
    changed = text.replace('version = "1.0.0"', 'version = "1.0.1"')
    assert changed != text and len(changed) == len(text)
    path.write_text(changed)


def _same_size_restored_mtime(path: Path) -> None:
    st = path.stat()
    _edit_same_size(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # only the ctime tells


def _new_member(directory: Path) -> None:
    directory.mkdir()
    (directory / "pyproject.toml").write_text(pyproject(directory.name))


CHANGES: dict[str, Callable[[Path], object]] = {
    "same-size pyproject.toml edit": lambda root: _edit_same_size(
        root / "libs/common/pyproject.toml"),
    "same-size edit, mtime put back": lambda root: _same_size_restored_mtime(
        root / "services/api/pyproject.toml"),
    "workspace.yaml edited": lambda root: (root / "workspace.yaml").write_text(
        (root / "workspace.yaml").read_text() + "# a comment\n"),
    "pylock.toml deleted": lambda root: (root / "services/api/pylock.toml").unlink(),
    "pylock.toml edited": lambda root: (root / "libs/common/pylock.toml").write_text(
        (root / "libs/common/pylock.toml").read_text().replace("lock-version", "lock-versio ")),
    "new member directory": lambda root: _new_member(root / "services/new"),
    "new directory without pyproject.toml": lambda root: (root / "libs/empty").mkdir(),
}


@pytest.mark.parametrize("args", [("lock", "--check"), ("lock",), ("sync",)])
@pytest.mark.parametrize("change", list(CHANGES))
def test_each_change_of_an_input_takes_the_normal_path(synced: Path, args: tuple[str, ...],
                                                       change: str) -> None:
    assert cli(synced, *args).code == 0
    answered(synced, *args)
    CHANGES[change](synced)
    after = cli(synced, *args)
    assert after.click, change
    if args == ("lock", "--check"):  # (the others repair what changed)
        assert after.shown == cli(synced, *args, fast=False).shown, change


def _venv_json(root: Path) -> Path:
    return root / "services/api/.venv/.orchestrator/venv.json"


SYNC_CHANGES: dict[str, Callable[[Path], object]] = {
    "venv deleted": lambda root: shutil.rmtree(root / "services/api/.venv"),
    "venv.json changed": lambda root: _venv_json(root).write_text(
        json.dumps({**json.loads(_venv_json(root).read_text()), "version": "3.11.0"})),
    "a record removed": lambda root: (
        root / "services/api/.venv/.orchestrator/sync-state.json").unlink(),
    "a package removed by hand": lambda root: shutil.rmtree(next(
        (root / "services/api/.venv/lib").glob("python3*/site-packages/attrs-*.dist-info"))),
    "a script added": lambda root: (root / "services/api/.venv/bin/tool").write_text("#!\n"),
}


@pytest.mark.parametrize("change", list(SYNC_CHANGES))
def test_each_change_of_a_venv_takes_the_normal_path(synced: Path, change: str) -> None:
    answered(synced, "sync")
    SYNC_CHANGES[change](synced)
    after = cli(synced, "sync")
    assert after.click, change
    assert after.code == 0, after.err


def test_environment_and_start_are_part_of_the_answer(synced: Path) -> None:
    answered(synced, "lock", "--check")
    assert cli(synced, "lock", "--check", env={"ORCHESTRATOR_HTTP_TIMEOUT": "5"}).click
    assert cli(synced, "lock", "--check", env={"ORCHESTRATOR_INDEX_LOCAL_USERNAME": "u"}).click
    assert cli(synced, "lock", "--check", env={"HOME": str(synced)}).click
    # another working directory, or the same workspace named with --workspace
    sub = synced / "services/api"
    inside = cli(sub, "lock", "--check")
    assert inside.click and inside.code == 0
    named = cli(synced.parent, "--workspace", str(synced), "lock", "--check")
    assert named.click and named.code == 0
    answered(synced.parent, "--workspace", str(synced), "lock", "--check")
    # each context has its own stamp: the default, three variables, a subdirectory, -w
    bucket = Path(os.environ["ORCHESTRATOR_CACHE_DIR"]) / noop.BUCKET
    assert len(list(bucket.glob("*.stamp"))) == 6


def test_discovery_is_recorded(synced: Path) -> None:
    """A workspace.yaml appearing between the start and the workspace found wins the
    search: the stamp recorded that it was absent."""
    sub = synced / "services/api"
    answered(sub, "lock", "--check")
    (sub / "workspace.yaml").write_text("version: 1\nname: inner\nmembers: []\n")
    after = cli(sub, "lock", "--check")
    assert after.click
    assert after.shown == cli(sub, "lock", "--check", fast=False).shown


def test_a_damaged_or_foreign_stamp_is_a_miss(synced: Path) -> None:
    answered(synced, "lock", "--check")
    answered(synced, "sync")
    check, sync = stamps()[("lock", "--check")], stamps()[("sync",)]
    good = check.read_bytes()
    for planted in (b"", b"garbage", good[: len(good) // 2], sync.read_bytes(),
                    b"\x80\x04\x95" + good):  # a pickle header: never unpickled
        check.write_bytes(planted)
        outcome = cli(synced, "lock", "--check")
        assert outcome.click
        assert outcome.shown == (0, "2 lock(s) up to date\n", "")
    answered(synced, "lock", "--check")  # the normal path wrote it again


def test_a_failing_or_changing_command_is_never_stamped(synced: Path) -> None:
    (synced / "services/api/pyproject.toml").write_text(
        pyproject("api", ["common", "httpx", "idna"], groups={"test": ["pytest"]}))
    for _ in range(2):
        failed = cli(synced, "lock", "--check")
        assert failed.code == 1 and failed.click
        assert stamps() == {}
    relocked = cli(synced, "lock")  # resolves and writes: a change, no stamp
    assert relocked.code == 0 and "updated" in relocked.out
    assert stamps() == {}
    synced_again = cli(synced, "sync")  # installs into api's venv: no stamp
    assert synced_again.code == 0 and "synced services/api/.venv" in synced_again.err
    assert stamps() == {}
    assert cli(synced, "sync").code == 0  # now a no-op
    assert list(stamps()) == [("sync",)]


@pytest.mark.parametrize("args", [("-v", "lock", "--check"), ("lock", "api"),
                                  ("sync", "--no-dev"), ("--verbose", "sync")])
def test_other_forms_always_take_the_normal_path(synced: Path, args: tuple[str, ...]) -> None:
    for _ in range(3):
        outcome = cli(synced, *args)
        assert outcome.code == 0, outcome.err
        assert outcome.click


def test_files_younger_than_two_seconds_are_not_trusted(synced: Path) -> None:
    manifest = synced / "workspace.yaml"
    manifest.write_text(manifest.read_text())  # same bytes, a new ctime
    outcome = cli(synced, "lock", "--check", racy_ns=noop.RACY_NS)
    assert outcome.code == 0
    assert stamps() == {}


def test_no_cache_to_write_to_is_no_stamp_and_no_error(synced: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")  # a file where the cache dir would be (root ignores chmod)
    env = {"ORCHESTRATOR_CACHE_DIR": str(blocker)}
    for _ in range(2):
        outcome = cli(synced, "lock", "--check", env=env)
        assert outcome == Outcome(0, "2 lock(s) up to date\n", "", True)


def test_importing_the_cli_package_imports_no_click() -> None:
    code = ("import sys\nimport orchestrator.cli as c\nassert 'click' not in sys.modules\n"
            "assert c.cli.name == 'cli' and 'click' in sys.modules\n"
            "from orchestrator.cli import EXIT_USAGE, App, LazyGroup\nprint(EXIT_USAGE)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert (proc.returncode, proc.stdout) == (0, "2\n"), proc.stderr


def test_parse_accepts_only_the_plain_forms() -> None:
    assert noop.parse(["lock", "--check"]) == (None,)
    assert noop.parse(["-q", "-w", "ws", "sync"]) == ("ws",)
    assert noop.parse(["--workspace=ws", "--quiet", "lock"]) == ("ws",)
    for argv in (["lock", "--check", "-q"], ["-v", "lock"], ["lock", "x"], ["sync", "--frozen"],
                 ["-w"], ["-w", "a", "-w", "b", "lock"], ["--workspace=", "lock"], [],
                 ["update"], ["lock", "--refresh"]):
        assert noop.parse(argv) is None, argv



def test_a_closed_stdout_exits_as_the_normal_path_does(synced: Path) -> None:
    answered(synced, "lock", "--check")
    results = []
    for fast in (True, False):
        handle, modules = tempfile.mkstemp(prefix="noop-modules-")
        os.close(handle)
        env = {**os.environ, "NOOP_TEST_MODULES": modules, "NOOP_TEST_RACY_NS": "0",
               **({} if fast else {noop.DISABLE_ENV: "1"})}
        read, write = os.pipe()
        os.close(read)
        proc = subprocess.run([sys.executable, "-c", SCRIPT, "lock", "--check"], cwd=synced,
                              stdout=write, stderr=subprocess.PIPE, env=env, check=False)
        os.close(write)
        click = "click" in Path(modules).read_text().split(",")
        os.unlink(modules)
        results.append((proc.returncode, proc.stderr, click))
    assert results == [(1, b"", False), (1, b"", True)]
