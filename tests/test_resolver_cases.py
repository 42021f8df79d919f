"""Every recorded case of the resolvelib corpus, and this project's own cases, through resolve().

The corpus (``../shared/data/resolvelib-cases``) records real resolutions:
``requested`` requirements and either the ``resolved`` versions pip picks or
the ``conflicted`` project when no resolution exists. Its indexes carry no
Requires-Python and no wheel tags: every release is served as one
``py3-none-any`` wheel, resolved for CPython 3.11 on linux/amd64 (the
"modern CPython 3 on Linux" the corpus assumes).
"""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from orchestrator.errors import ResolutionError
from orchestrator.models import Member, MemberOptions, Target
from orchestrator.resolver import Resolution, resolve
from tests.support.memfinder import MemoryFinder, load_corpus_index

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "resolvelib-cases"
CORPUS_CASES = sorted((CORPUS / "case").glob("*.json")) if CORPUS.is_dir() else []
TARGET = Target("3.11", "linux/amd64")

# Where a recorded answer is not what a correct resolver (or pip) gives, the
# difference is spelled out here, with the reason, instead of skipping the case.
CORPUS_CORRECTIONS: dict[str, dict[str, Any]] = {
    # resolvelib's own test provider drops every dependency that carries a
    # marker from a candidate without extras (its marker check is any() over
    # the empty set of extras), so its recording lacks urllib3. botocore
    # 1.14.15 requires `urllib3>=1.20,<1.26; python_version!='3.4'`, which holds
    # on CPython 3.11: pip installs urllib3 1.25.8 here.
    "chalice": {"resolved+": {"urllib3": "1.25.8"}},
    # Upstream marks this case xfail ("Too many rounds") and records an empty
    # answer as a placeholder. It has no resolution: pyrax 1.9.8 pins
    # python-novaclient 2.27.0 (pbr<2.0,>=1.6, oslo.serialization>=1.4.0); the
    # oslo.serialization releases from 1.6.0 on need msgpack-python (whose only
    # release needs msgpack, of which the snapshot has no release) or msgpack,
    # and 1.4.0/1.5.0 need pbr<1.0.
    "pyrex-1.9.8": {"conflicted": {"pbr": [], "msgpack": []}},
}

_indexes: dict[str, MemoryFinder] = {}


def synthetic_member(requested: list[str]) -> Member:
    return Member(
        name="corpus-root",
        display_name="corpus-root",
        path=Path("/nonexistent/corpus-root"),
        relpath="corpus-root",
        version="0",
        description=None,
        requires_python=None,
        dependencies=tuple(requested),
        groups={},
        optional={},
        scripts={},
        options=MemberOptions(),
    )


def corpus_finder(index: str) -> MemoryFinder:
    if index not in _indexes:
        _indexes[index] = MemoryFinder(load_corpus_index(CORPUS / "index" / f"{index}.json"))
    return _indexes[index]


def expected_versions(resolved: dict[str, Any]) -> dict[str, Version]:
    return {
        name: Version(value["version"] if isinstance(value, dict) else value)
        for name, value in resolved.items()
    }


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"resolver corpus not found at {CORPUS}")
@pytest.mark.parametrize("path", CORPUS_CASES, ids=[p.stem for p in CORPUS_CASES])
def test_corpus_case(path: Path) -> None:
    case = json.loads(path.read_text())
    correction = CORPUS_CORRECTIONS.get(path.stem, {})
    if "conflicted" in correction:
        case.pop("resolved", None)
        case["conflicted"] = correction["conflicted"]
    case.setdefault("resolved", {}).update(correction.get("resolved+", {}))
    member = synthetic_member(case["requested"])
    finder = corpus_finder(case["index"])
    started = time.perf_counter()
    if case.get("conflicted"):
        with pytest.raises(ResolutionError) as raised:
            resolve(member, {}, [TARGET], finder)
        for project in case["conflicted"]:
            assert project in str(raised.value)
    else:
        resolution = resolve(member, {}, [TARGET], finder)
        got = {p.name: Version(p.version or "0") for p in resolution.packages}
        assert got == expected_versions(case["resolved"])
    print(f"{path.stem}: {time.perf_counter() - started:.2f}s")


# -- this project's own recorded cases ----------------------------------------

OWN_CASES = sorted(Path(__file__).parent.joinpath("resolver_cases").glob("*.toml"))


def _member(name: str, spec: dict[str, Any]) -> Member:
    return Member(
        name=name,
        display_name=name,
        path=Path("/workspace") / spec.get("path", name),
        relpath=spec.get("path", name),
        version=spec.get("version"),
        description=None,
        requires_python=spec.get("requires_python"),
        dependencies=tuple(spec.get("dependencies", ())),
        groups={g: tuple(reqs) for g, reqs in spec.get("groups", {}).items()},
        optional={e: tuple(reqs) for e, reqs in spec.get("optional", {}).items()},
        scripts={},
        options=MemberOptions(),
    )


def _target(text: str) -> Target:
    python, platform = text.split()
    return Target(python, platform)


def _entry(package: Any) -> dict[str, Any]:
    return {
        "name": package.name,
        "version": package.version,
        "marker": package.marker,
        "main": package.main,
        "groups": sorted(package.groups),
        "directory": package.directory,
        "files": [f.filename for f in package.files],
        "dependencies": list(package.dependencies),
    }


@pytest.mark.parametrize("path", OWN_CASES, ids=[p.stem for p in OWN_CASES])
def test_own_case(path: Path) -> None:
    case = tomllib.loads(path.read_text())
    members = {name: _member(name, spec) for name, spec in case.get("members", {}).items()}
    root = members.get("app") or _member("app", {"dependencies": case.get("requested", [])})
    targets = [_target(t) for t in case.get("targets", ["3.11 linux/amd64"])]
    finder = MemoryFinder(case.get("index", {}))

    def run() -> Resolution:
        return resolve(
            root,
            members,
            targets,
            finder,
            preferred=case.get("preferred", {}),
            upgrade=case.get("upgrade", False),
            allow_prerelease=case.get("allow_prerelease", ()),
        )

    if "error" in case:
        with pytest.raises(ResolutionError) as raised:
            run()
        assert str(raised.value) == case["error"].strip()
        return
    got = [_entry(p) for p in run().packages]
    # an expected entry lists only the keys it cares about
    assert [{k: g[k] for k in e} for g, e in zip(got, case["resolved"], strict=False)] == case[
        "resolved"
    ]
    assert len(got) == len(case["resolved"]), got
