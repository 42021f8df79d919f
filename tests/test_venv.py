"""Virtual environments: creation, wheel installs, uninstall, editable members, sync."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from orchestrator import installer
from orchestrator.cache import WheelCache
from orchestrator.errors import VenvError
from orchestrator.records import parse_record, record_hash
from orchestrator.venv import (
    VenvInfo,
    WantedDist,
    create_venv,
    find_python,
    install,
    installed,
    sync_venv,
    uninstall,
)
from tests.support.wheels import build_wheel, sha256_of

PY = f"{sys.version_info.major}.{sys.version_info.minor}"


def rich_wheel(directory: Path, version: str = "1.0") -> Path:
    """A wheel using every install feature: .data schemes, scripts, entry points."""
    return build_wheel(
        directory,
        "demo-pkg",
        version,
        files={
            "demo_pkg/__init__.py": f'__version__ = "{version}"\n',
            "demo_pkg/cli.py": "def main():\n    print('hello from demo')\n    return 0\n",
            f"demo_pkg-{version}.data/scripts/demo-raw": "#!python\nprint('raw script')\n",
            f"demo_pkg-{version}.data/data/share/demo/notes.txt": "data file\n",
            f"demo_pkg-{version}.data/headers/demo.h": "#define DEMO 1\n",
            f"demo_pkg-{version}.data/purelib/demo_extra.py": "EXTRA = 1\n",
        },
        console_scripts={"demo": "demo_pkg.cli:main"},
    )


def wanted_wheel(wheel: Path, name: str, version: str) -> WantedDist:
    return WantedDist(name, version, wheel=wheel, sha256=sha256_of(wheel))


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def run(venv: VenvInfo, *args: str) -> str:
    proc = subprocess.run(
        [str(venv.python), *args], capture_output=True, text=True, check=True, timeout=60
    )
    return proc.stdout


@pytest.fixture
def venv(tmp_path: Path) -> VenvInfo:
    return create_venv(tmp_path / "venv", PY)


@pytest.fixture
def cache(tmp_path: Path) -> WheelCache:
    return WheelCache(tmp_path / "cache")


# -- creation -------------------------------------------------------------------


def test_create_venv_has_no_seed_packages(venv: VenvInfo) -> None:
    assert venv.version.startswith(PY + ".")
    assert venv.python.exists()
    assert venv.site_packages.is_dir()
    assert installed(venv.path) == {}
    assert run(venv, "-c", "import sys; print(sys.prefix)").strip() == str(venv.path)


def test_missing_interpreter_names_what_was_looked_for() -> None:
    with pytest.raises(VenvError) as info:
        find_python("3.99")
    assert info.value.message == "no Python 3.99 interpreter found: looked for python3.99 on PATH"
    assert info.value.hint == (
        "install Python 3.99, or pass --python with the path of an interpreter"
    )


def test_missing_interpreter_path(tmp_path: Path) -> None:
    with pytest.raises(VenvError) as info:
        find_python(tmp_path / "nope" / "python")
    assert info.value.message == (
        f"Python interpreter {tmp_path}/nope/python does not exist or is not executable"
    )
    assert info.value.hint is not None and "--python" in info.value.hint


def test_create_venv_refuses_to_clear_another_directory(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "keep.txt").write_text("precious")
    with pytest.raises(VenvError) as info:
        create_venv(tmp_path / "project", PY)
    assert info.value.message == (
        f"{tmp_path}/project exists and is not a virtual environment; refusing to replace it"
    )
    assert (tmp_path / "project" / "keep.txt").read_text() == "precious"


def test_create_venv_replaces_an_existing_venv(tmp_path: Path) -> None:
    first = create_venv(tmp_path / "venv", PY)
    (first.site_packages / "stray.py").write_text("")
    second = create_venv(tmp_path / "venv", PY)
    assert not (second.site_packages / "stray.py").exists()


# -- install / uninstall -----------------------------------------------------------


def test_install_wheel_places_every_scheme_and_runs(
    tmp_path: Path, venv: VenvInfo, cache: WheelCache
) -> None:
    wheel = rich_wheel(tmp_path / "wheels")
    dist = install(venv, wanted_wheel(wheel, "demo-pkg", "1.0"), cache)

    assert (dist.name, dist.version, dist.complete) == ("demo-pkg", "1.0", True)
    assert run(venv, "-c", "import demo_pkg, demo_extra; print(demo_pkg.__version__)") == "1.0\n"
    script = venv.scheme.scripts / "demo"
    assert script.read_text().startswith(f"#!{venv.python}\n")
    out = subprocess.run([str(script)], capture_output=True, text=True, check=True)
    assert out.stdout == "hello from demo\n"
    raw = subprocess.run(
        [str(venv.scheme.scripts / "demo-raw")], capture_output=True, text=True, check=True
    )
    assert raw.stdout == "raw script\n"
    assert (venv.path / "share" / "demo" / "notes.txt").read_text() == "data file\n"
    assert (venv.scheme.headers / "demo-pkg" / "demo.h").exists()

    dist_info = venv.site_packages / "demo_pkg-1.0.dist-info"
    assert (dist_info / "INSTALLER").read_text() == "orchestrator\n"
    assert not (dist_info / installer.PENDING).exists()
    paths = {row.path for row in parse_record((dist_info / "RECORD").read_text())}
    assert "demo_pkg/__init__.py" in paths
    assert "../../../bin/demo" in paths and "../../../bin/demo-raw" in paths
    assert "../../../share/demo/notes.txt" in paths
    assert "demo_pkg-1.0.dist-info/RECORD" in paths
    assert not any(".data/" in p for p in paths)


def test_installed_files_are_hardlinks_into_the_unpacked_cache(
    tmp_path: Path, venv: VenvInfo, cache: WheelCache
) -> None:
    wheel = rich_wheel(tmp_path / "wheels")
    install(venv, wanted_wheel(wheel, "demo-pkg", "1.0"), cache)
    cached = cache.unpacked(wheel, sha256_of(wheel), installer.unpack) / "demo_pkg" / "cli.py"
    assert (venv.site_packages / "demo_pkg" / "cli.py").stat().st_ino == cached.stat().st_ino


def test_native_scripts_are_linked_and_python_scripts_rewritten(
    tmp_path: Path, venv: VenvInfo, cache: WheelCache
) -> None:
    built = build_wheel(
        tmp_path / "built",
        "tool",
        "1.0",
        files={
            "tool/__init__.py": "",
            "tool-1.0.data/scripts/tool-native": "#!/bin/sh\necho native\n",
            "tool-1.0.data/scripts/tool-py": "#!python\nprint('py')\n",
        },
    )
    wheel = tmp_path / "wheels" / built.name  # the native one executable, as tools ship it
    wheel.parent.mkdir()
    with zipfile.ZipFile(built) as src, zipfile.ZipFile(wheel, "w") as out:
        for info in src.infolist():
            if info.filename.endswith("tool-native"):
                info.external_attr = 0o755 << 16
            out.writestr(info, src.read(info))

    install(venv, wanted_wheel(wheel, "tool", "1.0"), cache)

    tree = cache.unpacked(wheel, sha256_of(wheel), installer.unpack)
    cached = tree / "tool-1.0.data" / "scripts" / "tool-native"
    native = venv.scheme.scripts / "tool-native"
    assert native.stat().st_ino == cached.stat().st_ino
    assert subprocess.run([str(native)], capture_output=True, text=True, check=True).stdout == (
        "native\n"
    )
    assert (venv.scheme.scripts / "tool-py").read_text().startswith(f"#!{venv.python}\n")
    record = (venv.site_packages / "tool-1.0.dist-info" / "RECORD").read_text()
    assert "../../../bin/tool-native,sha256=" in record


def test_direct_url_is_written_when_given(
    tmp_path: Path, venv: VenvInfo, cache: WheelCache
) -> None:
    wheel = build_wheel(tmp_path / "wheels", "local", "2.0")
    direct = json.dumps({"url": wheel.as_uri(), "archive_info": {}})
    wanted = WantedDist("local", "2.0", wheel=wheel, sha256=sha256_of(wheel), direct_url=direct)
    dist = install(venv, wanted, cache)
    assert (dist.dist_info / "direct_url.json").read_text() == direct


def test_uninstall_leaves_nothing(tmp_path: Path, venv: VenvInfo, cache: WheelCache) -> None:
    before = tree(venv.path)
    install(venv, wanted_wheel(rich_wheel(tmp_path / "wheels"), "demo-pkg", "1.0"), cache)
    run(venv, "-c", "import demo_pkg.cli, demo_extra")  # leaves runtime pycs behind

    removed = uninstall(venv.path, "Demo_Pkg")

    assert tree(venv.path) - {".orchestrator/sync-state.json"} == before
    assert venv.site_packages / "demo_pkg" / "cli.py" in removed
    with pytest.raises(VenvError, match=r"^demo-pkg is not installed in "):
        uninstall(venv.path, "demo-pkg")


def test_paths_holding_commas_and_quotes_sync_and_uninstall(
    tmp_path: Path, venv: VenvInfo, cache: WheelCache
) -> None:
    """RECORD is CSV: such a path is one quoted field, never cut at its comma."""
    source = "VALUE = 'comma'\n"
    files = {"odd/__init__.py": "", "odd/a,b.py": source, 'odd/say "hi".txt': "quoted\n"}
    first = build_wheel(tmp_path / "v1", "odd", "1.0", files=files)
    second = build_wheel(tmp_path / "v2", "odd", "2.0", files={"odd/__init__.py": ""})
    sync_venv(venv.path, [wanted_wheel(first, "odd", "1.0")], cache)

    comma = venv.site_packages / "odd" / "a,b.py"
    code = f"import runpy; print(runpy.run_path({str(comma)!r})['VALUE'])"
    assert run(venv, "-c", code) == "comma\n"
    record = (venv.site_packages / "odd-1.0.dist-info" / "RECORD").read_text()
    rows = {row.path: row for row in parse_record(record)}
    assert (rows["odd/a,b.py"].hash, rows["odd/a,b.py"].size) == (
        record_hash(source.encode()),
        str(len(source)),
    )
    assert 'odd/say "hi".txt' in rows
    run(venv, "-m", "py_compile", str(comma))
    (pyc,) = (comma.parent / "__pycache__").glob("a,b.*.pyc")

    report = sync_venv(venv.path, [wanted_wheel(second, "odd", "2.0")], cache)  # uninstalls 1.0

    assert [(c.name, c.new) for c in report.upgraded] == [("odd", "2.0")]
    assert not comma.exists() and not pyc.exists()
    assert not (venv.site_packages / "odd" / 'say "hi".txt').exists()
    removed = uninstall(venv.path, "odd")
    assert venv.site_packages / "odd" / "__init__.py" in removed
    assert not (venv.site_packages / "odd").exists()


@pytest.mark.parametrize(
    "evil", ["../../../../escaped.py", "/tmp/orchestrator-absolute.py", "a/../../x.py"]
)
def test_wheel_with_traversal_paths_is_rejected(
    tmp_path: Path, venv: VenvInfo, cache: WheelCache, evil: str
) -> None:
    wheel = build_wheel(tmp_path / "wheels", "evil", "1.0", files={evil: "x = 1\n"})
    before = tree(venv.path)

    with pytest.raises(VenvError, match="refusing to install it"):
        install(venv, wanted_wheel(wheel, "evil", "1.0"), cache)

    assert tree(venv.path) == before
    assert not (tmp_path / "escaped.py").exists()
    assert not Path("/tmp/orchestrator-absolute.py").exists()


def test_data_path_escaping_via_scheme_is_rejected(
    tmp_path: Path, venv: VenvInfo, cache: WheelCache
) -> None:
    wheel = build_wheel(
        tmp_path / "wheels", "evil", "1.0", files={"evil-1.0.data/unknown/x.txt": "x"}
    )
    with pytest.raises(VenvError, match=r"is not under a known \.data scheme"):
        install(venv, wanted_wheel(wheel, "evil", "1.0"), cache)


# -- editable ---------------------------------------------------------------------


def make_member(root: Path, name: str, *, src_layout: bool) -> Path:
    package = (root / "src" if src_layout else root) / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 'from source'\n")
    (package / "cli.py").write_text("def main():\n    print('member cli')\n")
    return root


@pytest.mark.parametrize("src_layout", [True, False])
def test_editable_member_imports_from_source_and_has_scripts(
    tmp_path: Path, venv: VenvInfo, cache: WheelCache, src_layout: bool
) -> None:
    member = make_member(tmp_path / "member", "svc", src_layout=src_layout)
    wanted = WantedDist("svc", "0.1.0", editable=member, scripts=(("svc", "svc.cli:main"),))

    report = sync_venv(venv.path, [wanted], cache)

    assert [c.name for c in report.installed] == ["svc"]
    assert run(venv, "-c", "import svc; print(svc.VALUE)") == "from source\n"
    (member / ("src" if src_layout else "") / "svc" / "__init__.py").write_text("VALUE = 2\n")
    assert run(venv, "-c", "import svc; print(svc.VALUE)") == "2\n"
    out = subprocess.run(
        [str(venv.scheme.scripts / "svc")], capture_output=True, text=True, check=True
    )
    assert out.stdout == "member cli\n"
    dist = installed(venv.path)["svc"]
    assert dist.editable == member.resolve()
    direct = json.loads((dist.dist_info / "direct_url.json").read_text())
    assert direct == {"url": member.resolve().as_uri(), "dir_info": {"editable": True}}


# -- sync ---------------------------------------------------------------------------


@pytest.fixture
def versions(tmp_path: Path) -> dict[str, WantedDist]:
    out = {}
    for name, version in [("alpha", "1.0"), ("alpha", "2.0"), ("beta", "1.0"), ("gamma", "1.0")]:
        wheel = build_wheel(tmp_path / "wheels", name, version)
        out[f"{name}=={version}"] = wanted_wheel(wheel, name, version)
    return out


def test_sync_installs_upgrades_removes_and_skips_when_nothing_changed(
    venv: VenvInfo, cache: WheelCache, versions: dict[str, WantedDist]
) -> None:
    first = sync_venv(venv.path, [versions["alpha==1.0"], versions["beta==1.0"]], cache)
    assert [(c.name, c.new) for c in first.installed] == [("alpha", "1.0"), ("beta", "1.0")]

    second = sync_venv(venv.path, [versions["alpha==2.0"], versions["gamma==1.0"]], cache)
    assert [(c.name, c.old, c.new) for c in second.upgraded] == [("alpha", "1.0", "2.0")]
    assert [c.name for c in second.installed] == ["gamma"]
    assert [(c.name, c.old) for c in second.removed] == [("beta", "1.0")]
    assert run(venv, "-c", "import alpha, gamma; print(alpha.__version__)") == "2.0\n"
    assert sorted(installed(venv.path)) == ["alpha", "gamma"]
    assert not (venv.site_packages / "beta").exists()

    started = time.perf_counter()
    noop = sync_venv(venv.path, [versions["gamma==1.0"], versions["alpha==2.0"]], cache)
    elapsed = time.perf_counter() - started
    assert noop.fast_path and not noop.changed, elapsed
    assert noop.unchanged == ("alpha", "gamma")


def test_sync_notices_changes_made_behind_its_back(
    venv: VenvInfo, cache: WheelCache, versions: dict[str, WantedDist]
) -> None:
    wanted = [versions["alpha==1.0"], versions["beta==1.0"]]
    sync_venv(venv.path, wanted, cache)
    uninstall(venv.path, "beta")  # as `pip uninstall` would

    report = sync_venv(venv.path, wanted, cache)

    assert not report.fast_path
    assert [c.name for c in report.installed] == ["beta"]
    assert report.unchanged == ("alpha",)


def test_same_version_from_another_wheel_is_reinstalled(
    tmp_path: Path, venv: VenvInfo, cache: WheelCache
) -> None:
    one = build_wheel(tmp_path / "a", "alpha", "1.0")
    other = build_wheel(tmp_path / "b", "alpha", "1.0", files={"alpha/__init__.py": "X = 2\n"})
    sync_venv(venv.path, [wanted_wheel(one, "alpha", "1.0")], cache)
    report = sync_venv(venv.path, [wanted_wheel(other, "alpha", "1.0")], cache)
    assert [c.name for c in report.upgraded] == ["alpha"]
    assert run(venv, "-c", "import alpha; print(alpha.X)") == "2\n"


def test_non_exact_sync_keeps_extra_packages(
    venv: VenvInfo, cache: WheelCache, versions: dict[str, WantedDist]
) -> None:
    sync_venv(venv.path, [versions["alpha==1.0"], versions["beta==1.0"]], cache)
    report = sync_venv(venv.path, [versions["alpha==1.0"]], cache, exact=False)
    assert report.removed == ()
    assert sorted(installed(venv.path)) == ["alpha", "beta"]


def test_interrupted_install_is_repaired_by_the_next_sync(
    tmp_path: Path, venv: VenvInfo, cache: WheelCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = rich_wheel(tmp_path / "wheels")
    wanted = [wanted_wheel(wheel, "demo-pkg", "1.0")]
    real_link = os.link
    calls = 0

    def crash_after_two(*args: Any, **kwargs: Any) -> None:  # every link goes through here
        nonlocal calls
        calls += 1
        if calls > 2:
            raise KeyboardInterrupt  # what Ctrl-C does halfway through an install
        real_link(*args, **kwargs)

    monkeypatch.setattr(os, "link", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        sync_venv(venv.path, wanted, cache)
    monkeypatch.setattr(os, "link", real_link)
    assert calls == 3
    broken = installed(venv.path)["demo-pkg"]
    assert not broken.complete

    report = sync_venv(venv.path, wanted, cache)

    assert [c.name for c in report.repaired] == ["demo-pkg"]
    assert installed(venv.path)["demo-pkg"].complete
    assert run(venv, "-c", "import demo_pkg.cli; print('ok')") == "ok\n"


KILL_SCRIPT = """
import os, signal, sys
from pathlib import Path
from orchestrator.cache import WheelCache
from orchestrator.venv import WantedDist, sync_venv

venv, cache, wheel, sha, kill_after = sys.argv[1:]
real = os.link
calls = 0

def link(*args, **kwargs):  # every link the installer makes goes through here
    global calls
    calls += 1
    if calls > int(kill_after):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)

os.link = link
sync_venv(Path(venv), [WantedDist("demo-pkg", "2.0", wheel=Path(wheel), sha256=sha)],
          WheelCache(Path(cache)))
"""


def test_sync_killed_mid_upgrade_is_repaired(
    tmp_path: Path, venv: VenvInfo, cache: WheelCache
) -> None:
    old = rich_wheel(tmp_path / "v1", "1.0")
    new = rich_wheel(tmp_path / "v2", "2.0")
    sync_venv(venv.path, [wanted_wheel(old, "demo-pkg", "1.0")], cache)
    args = [str(venv.path), str(cache.root), str(new), sha256_of(new), "3"]
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, *args],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr

    report = sync_venv(venv.path, [wanted_wheel(new, "demo-pkg", "2.0")], cache)

    assert [(c.name, c.new) for c in report.repaired] == [("demo-pkg", "2.0")]
    assert run(venv, "-c", "import demo_pkg; print(demo_pkg.__version__)") == "2.0\n"
    assert [d.name for d in venv.site_packages.iterdir() if d.name.endswith(".dist-info")] == [
        "demo_pkg-2.0.dist-info"
    ]
    assert sync_venv(venv.path, [wanted_wheel(new, "demo-pkg", "2.0")], cache).fast_path


def test_many_wheels_install_in_parallel(tmp_path: Path, cache: WheelCache) -> None:
    wanted = []
    for i in range(30):
        files = {f"mod{i}/sub{j}.py": f"X = {j}\n" for j in range(20)}
        files[f"mod{i}/__init__.py"] = ""
        wheel = build_wheel(tmp_path / "wheels", f"mod{i}", "1.0", files=files)
        wanted.append(wanted_wheel(wheel, f"mod{i}", "1.0"))
    venv = create_venv(tmp_path / "venv", PY)

    report = sync_venv(venv.path, wanted, cache, jobs=4)

    assert len(report.installed) == 30
    code = "import mod0.sub3, mod29.sub19; print(mod0.sub3.X + mod29.sub19.X)"
    assert run(venv, "-c", code) == "22\n"


# -- creation without virtualenv ---------------------------------------------------


def test_created_venv_works_like_a_virtualenv(venv: VenvInfo) -> None:
    cfg = dict(
        line.split(" = ", 1) for line in (venv.path / "pyvenv.cfg").read_text().splitlines()
    )
    assert cfg["include-system-site-packages"] == "false"
    assert cfg["version"] == venv.version
    probe = "import site, sys; print(sys.prefix, sys.base_prefix, sys.path, sep='\\n')"
    prefix, base_prefix, path = run(venv, "-c", probe).splitlines()
    assert prefix == str(venv.path) and base_prefix != prefix
    assert str(venv.site_packages) in path
    assert Path(cfg["executable"]) == venv.python.resolve()
    assert Path(cfg["home"]) == Path(cfg["executable"]).parent
    for alias in ("python3", f"python{PY}"):
        assert (venv.scheme.scripts / alias).resolve() == (venv.python).resolve()
    assert (venv.path / ".gitignore").read_text().endswith("*\n")


def test_activate_script_puts_the_venv_first_on_path(venv: VenvInfo) -> None:
    script = (
        f'. "{venv.scheme.scripts}/activate"; echo "$VIRTUAL_ENV"; command -v python; '
        'deactivate; echo "${VIRTUAL_ENV:-unset}"'
    )
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [str(venv.path), str(venv.python), "unset"]


def test_interpreter_answer_is_cached_by_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator import venv as venv_module

    python = Path(os.path.realpath(sys.executable))  # a binary, not a wrapper script
    venv_module._FACTS.clear()
    first = create_venv(tmp_path / "one", python, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache" / "interpreters-v1").glob("*.json"))) == 1

    def no_subprocess(*args: object, **kwargs: object) -> None:
        raise AssertionError("the interpreter was asked again")

    venv_module._FACTS.clear()  # a new process: only the cache dir remembers
    monkeypatch.setattr(venv_module, "_ask_interpreter", no_subprocess)
    second = create_venv(tmp_path / "two", python, cache_dir=tmp_path / "cache")
    monkeypatch.undo()

    assert second.version == first.version
    assert second.scheme.purelib == tmp_path / "two" / first.site_packages.relative_to(first.path)
    assert run(second, "-c", "import sys; print(sys.prefix)").strip() == str(second.path)


def test_interrupted_creation_keeps_the_old_venv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator import venv as venv_module

    first = create_venv(tmp_path / "venv", PY)
    (first.site_packages / "keep.py").write_text("")

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(venv_module, "_lay_out", interrupted)
    with pytest.raises(KeyboardInterrupt):
        create_venv(tmp_path / "venv", PY)

    assert (first.site_packages / "keep.py").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["venv"]


def test_a_symlinked_venv_dir_stays_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "env"
    target.mkdir(parents=True)
    (tmp_path / "project").mkdir()
    link = tmp_path / "project" / ".venv"
    link.symlink_to(target)
    create_venv(link, PY)
    venv = create_venv(link, PY)  # replaces the environment, not the link

    assert link.is_symlink() and (target / "pyvenv.cfg").exists()
    assert run(venv, "-c", "print('ok')") == "ok\n"


def test_venv_directory_mode_follows_the_umask(venv: VenvInfo) -> None:
    umask = os.umask(0)
    os.umask(umask)
    assert venv.path.stat().st_mode & 0o777 == 0o777 & ~umask


# -- install-time files ------------------------------------------------------------


def test_install_never_writes_through_a_leftover_hardlink(
    tmp_path: Path, venv: VenvInfo, cache: WheelCache
) -> None:
    wheel = rich_wheel(tmp_path / "wheels")
    cached = cache.unpacked(wheel, sha256_of(wheel), installer.unpack) / "demo_pkg" / "cli.py"
    before = cached.read_bytes()
    os.link(cached, venv.scheme.scripts / "demo")  # where the entry point script goes

    install(venv, wanted_wheel(wheel, "demo-pkg", "1.0"), cache)

    assert cached.read_bytes() == before
    assert (venv.scheme.scripts / "demo").read_text().startswith(f"#!{venv.python}\n")


def test_cut_short_pending_file_counts_whole_lines_only(tmp_path: Path) -> None:
    dist_info = tmp_path / "site" / "demo-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / installer.PENDING).write_text("demo/a.py,sha256=x,1\n../bin/b,,\ndemo/c")
    assert installer._recorded_paths(dist_info) == [
        tmp_path / "site" / "demo" / "a.py",
        tmp_path / "bin" / "b",
    ]
    # cut inside a quoted field that holds a newline: that row is not whole either
    (dist_info / installer.PENDING).write_text('"demo/a,b.py",,\n"demo/new\nline.py",sha')
    assert installer._recorded_paths(dist_info) == [tmp_path / "site" / "demo" / "a,b.py"]
    # written by an older orchestrator: one absolute path per line
    (dist_info / installer.PENDING).write_text(f"{tmp_path}/old.py\n")
    assert installer._recorded_paths(dist_info) == [tmp_path / "old.py"]


def test_uninstall_renames_record_to_pending_first(
    tmp_path: Path, venv: VenvInfo, cache: WheelCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = install(venv, wanted_wheel(rich_wheel(tmp_path / "wheels"), "demo-pkg", "1.0"), cache)
    record = (dist.dist_info / "RECORD").read_text()

    def interrupted(path: Path) -> list[Path]:
        raise KeyboardInterrupt  # Ctrl-C as the first file goes

    monkeypatch.setattr(installer, "_pycs_of", interrupted)
    with pytest.raises(KeyboardInterrupt):
        uninstall(venv.path, "demo-pkg")

    assert (dist.dist_info / installer.PENDING).read_text() == record
    assert not installed(venv.path)["demo-pkg"].complete


def test_old_entry_in_a_read_only_cache_still_installs(
    tmp_path: Path, venv: VenvInfo, cache: WheelCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = rich_wheel(tmp_path / "wheels")
    tree = cache.unpacked(wheel, sha256_of(wheel), installer.unpack)
    shutil.rmtree(tree / installer.OWN_DIR)  # unpacked before manifests existed

    def read_only(*args: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(installer, "write_manifest", read_only)
    dist = install(venv, wanted_wheel(wheel, "demo-pkg", "1.0"), cache)

    assert dist.complete and not (tree / installer.OWN_DIR).exists()
    assert (dist.dist_info / "INSTALLER").read_text() == "orchestrator\n"
    assert run(venv, "-c", "import demo_pkg; print(demo_pkg.__version__)") == "1.0\n"


@pytest.mark.parametrize(
    ("name", "sub"),
    [("demo", "../../../../evil"), ("../../../../../x", "fine.h")],
    ids=["climbing-path", "climbing-headers-dir"],
)
def test_a_linked_path_leaving_the_venv_is_refused_before_anything_is_written(
    tmp_path: Path, venv: VenvInfo, name: str, sub: str
) -> None:
    # A tree's link plan skips the per-file check only when no path can climb out of
    # its scheme directory; either way out is still refused, naming the path.
    tree = tmp_path / "tree"
    (tree / "demo-1.0.dist-info").mkdir(parents=True)
    (tree / "evil").write_text("x")
    key = "purelib" if name == "demo" else "headers"
    manifest = installer.WheelManifest(
        name, "1.0", "demo-1.0.dist-info", True, (("evil", key, sub, "", ""),), (), (),
        stored=False,
    )
    options = installer.InstallOptions(str(venv.python))
    with pytest.raises(VenvError, match="outside the environment"):
        installer.install_unpacked(tree, venv.scheme, options, origin={}, manifest=manifest)
    assert not (venv.site_packages / "demo-1.0.dist-info").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree", "venv"]
