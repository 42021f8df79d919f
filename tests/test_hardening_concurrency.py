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
