"""Two `sync` processes on one member at once serialize on the venv's lock: no errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.installer import PENDING


def _orchestrator() -> str:
    return str(Path(sys.executable).parent / "orchestrator")


def _site(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def test_two_syncs_of_one_member_started_together_20_times(locked_shop: Path) -> None:
    result = CliRunner().invoke(cli, ["-w", str(locked_shop), "lock"])
    assert result.exit_code == 0, result.stderr
    venv = locked_shop / "services/api/.venv"
    env = dict(os.environ)
    failures = []
    for round_ in range(20):
        if round_ % 2 == 0:  # from nothing half the time, from a synced venv the rest
            shutil.rmtree(venv, ignore_errors=True)
        procs = [
            subprocess.Popen([_orchestrator(), "-w", str(locked_shop), "sync", "api"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for _ in range(2)
        ]
        for proc in procs:
            _out, err = proc.communicate(timeout=120)
            if proc.returncode != 0 or "internal error" in err:
                failures.append((round_, proc.returncode, err))
        site = _site(venv)
        dists = sorted(p.name for p in site.glob("*.dist-info"))
        assert len(dists) == 7, (round_, dists)
        assert not list(site.glob(f"*.dist-info/{PENDING}")), round_
        assert all((d / "RECORD").is_file() for d in site.glob("*.dist-info")), round_
        assert not list(venv.parent.glob(".venv.tmp-*")), round_
    assert failures == []
    probe = subprocess.run([str(venv / "bin/python"), "-c", "import attrs, httpx, idna"],
                           capture_output=True, text=True, check=False)
    assert probe.returncode == 0, probe.stderr
    check = CliRunner().invoke(cli, ["-w", str(locked_shop), "sync", "api"])
    assert check.stderr == "api: up to date (7 packages)\n"
    verify = CliRunner().invoke(cli, ["-w", str(locked_shop), "cache", "verify"])
    assert verify.exit_code == 0 and verify.stdout.endswith(": 0 damaged\n"), verify.stdout


UNPACK_SCRIPT = """
import sys, time
from pathlib import Path
from orchestrator.cache import WheelCache

root, wheel, sha, log = sys.argv[1:]

def slow_unpack(archive, dest):
    with open(log, "a") as f:
        f.write("unpacked\\n")
    time.sleep(0.5)  # long enough for the other process to arrive meanwhile
    (dest / "file.py").write_text("x = 1\\n")

print(WheelCache(Path(root)).unpacked(Path(wheel), sha, slow_unpack))
"""


def test_two_processes_unpack_one_entry_once(tmp_path: Path) -> None:
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(b"not read by this unpacker")
    sha, log = "ab" * 32, tmp_path / "log"
    procs = [subprocess.Popen([sys.executable, "-c", UNPACK_SCRIPT, str(tmp_path / "cache"),
                               str(wheel), sha, str(log)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [proc.communicate(timeout=60)[0].strip() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    assert outs[0] == outs[1]
    assert log.read_text() == "unpacked\n"
