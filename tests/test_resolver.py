"""Unit tests of the resolver's parts; recorded cases live in test_resolver_cases.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.version import Version

import orchestrator.resolver.core as resolver_core
from orchestrator.errors import ConflictCause, ResolutionError
from orchestrator.index import group_by_version, version_text
from orchestrator.models import DistFile, Member, MemberOptions, Target
from orchestrator.resolver import Catalog, Resolution, resolve
from orchestrator.resolver.catalog import group_releases
from orchestrator.resolver.environment import TargetEnvironment, manylinux_platforms
from orchestrator.resolver.merge import targets_marker
from orchestrator.resolver.provider import Provider, Requirement
from tests.support.memfinder import MemoryFinder, to_pep508

AMD64 = Target("3.11", "linux/amd64")
ARM64 = Target("3.11", "linux/arm64")


def member(*dependencies: str, **fields: Any) -> Member:
    values: dict[str, Any] = {
        "name": "app",
        "display_name": "app",
        "path": Path("/workspace/services/app"),
        "relpath": "services/app",
        "version": "0.1.0",
        "description": None,
        "requires_python": None,
        "dependencies": dependencies,
        "groups": {},
        "optional": {},
        "scripts": {},
        "options": MemberOptions(),
    }
    values.update(fields)
    return Member(**values)


def versions(resolution: Resolution) -> dict[str, str | None]:
    return {p.name: p.version for p in resolution.packages}


def test_environment_describes_the_target_not_the_host() -> None:
    env = TargetEnvironment.for_target(ARM64)
    assert env.markers["platform_machine"] == "aarch64"
    assert env.markers["sys_platform"] == "linux"
    assert env.markers["python_full_version"] == "3.11.0"
    assert env.evaluate(
        Marker("platform_machine == 'aarch64' and implementation_name == 'cpython'")
    )
    assert env.evaluate(Marker("extra == 'Fancy_Feature'"), extra="fancy-feature")
    assert env.label == "cpython 3.11 linux/arm64"


def test_environment_ranks_wheel_tags_for_the_target() -> None:
    env = TargetEnvironment.for_target(AMD64)
    best = env.best_rank([Tag("cp311", "cp311", "manylinux_2_17_x86_64")])
    pure = env.best_rank([Tag("py3", "none", "any")])
    assert best is not None and pure is not None and best < pure
    assert env.best_rank([Tag("cp311", "abi3", "manylinux_2_36_x86_64")]) is not None
    assert env.best_rank([Tag("cp311", "cp311", "manylinux_2_38_x86_64")]) is None
    assert env.best_rank([Tag("cp311", "cp311", "musllinux_1_2_x86_64")]) is None
    assert env.best_rank([Tag("cp311", "cp311", "manylinux_2_17_aarch64")]) is None
    assert env.best_rank([Tag("cp312", "cp312", "manylinux_2_17_x86_64")]) is None
    assert "manylinux1_x86_64" in manylinux_platforms("x86_64")
    assert manylinux_platforms("aarch64")[-1] == "manylinux2014_aarch64"


def test_unknown_platform_and_python_are_errors() -> None:
    with pytest.raises(ResolutionError, match="unsupported target platform 'linux/s390x'"):
        TargetEnvironment.for_target(Target("3.11", "linux/s390x"))
    with pytest.raises(ResolutionError, match="invalid target Python '2'"):
        TargetEnvironment.for_target(Target("2", "linux/amd64"))


def test_targets_marker_names_python_only_when_targets_differ_in_it() -> None:
    both = [Target("3.11", "linux/amd64"), Target("3.12", "linux/amd64")]
    assert targets_marker([both[1]], both) == "python_version == '3.12'"
    four = [*both, Target("3.11", "linux/arm64"), Target("3.12", "linux/arm64")]
    assert (
        targets_marker([four[0], four[1]], four)
        == "(python_version == '3.11' and platform_machine == 'x86_64') or "
        "(python_version == '3.12' and platform_machine == 'x86_64')"
    )
    assert targets_marker(four, four) is None


def test_prefetches_the_first_candidate_of_each_project() -> None:
    finder = MemoryFinder({"lib": {f"1.{i}": {} for i in range(10)}})
    resolve(member("lib"), {}, [AMD64], finder)
    assert finder.prefetched == ["lib-1.9-py3-none-any.whl"]
    assert finder.metadata_calls == ["lib-1.9-py3-none-any.whl"]


def test_prefetches_more_candidates_of_a_project_it_backtracks_on() -> None:
    # lib 1.9 needs a release of base that does not exist: resolvelib drops it
    # and asks for lib again, now excluding 1.9; then the next few are prefetched.
    projects: dict[str, dict[str, dict[str, Any]]] = {
        "lib": {f"1.{i}": {} for i in range(9)}, "base": {"1.0": {}}}
    projects["lib"]["1.9"] = {"dependencies": ["base>=2"]}
    finder = MemoryFinder(projects)
    assert versions(resolve(member("lib"), {}, [AMD64], finder))["lib"] == "1.8"
    lib = [name for name in finder.prefetched if name.startswith("lib-")]
    assert lib == [f"lib-1.{i}-py3-none-any.whl" for i in (9, 8, 7, 6, 5)]


def test_upgrade_true_ignores_every_preference() -> None:
    finder = MemoryFinder({"a": {"1.0": {}, "2.0": {}}, "b": {"1.0": {}, "2.0": {}}})
    pinned = {"a": "1.0", "b": "1.0"}
    app = member("a", "b")
    assert versions(resolve(app, {}, [AMD64], finder, preferred=pinned)) == {"a": "1.0", "b": "1.0"}
    upgraded = resolve(app, {}, [AMD64], finder, preferred=pinned, upgrade=True)
    assert versions(upgraded) == {"a": "2.0", "b": "2.0"}


def test_metadata_is_read_once_per_file_across_targets() -> None:
    finder = MemoryFinder({"a": {"1.0": {"dependencies": ["b"]}}, "b": {"1.0": {}}})
    resolution = resolve(member("a"), {}, [AMD64, ARM64], finder)
    assert sorted(finder.metadata_calls) == ["a-1.0-py3-none-any.whl", "b-1.0-py3-none-any.whl"]
    assert [p.marker for p in resolution.packages] == [None, None]
    assert resolution.packages[0].targets == (AMD64, ARM64)
    assert resolution.packages[0].dependencies == ("b",)
    assert resolution.packages[0].index == "mem"


def test_unreadable_requirement_in_metadata_skips_that_release() -> None:
    finder = MemoryFinder({"a": {"2.0": {"dependencies": ["b (>=1x)"]}, "1.0": {}}})
    assert versions(resolve(member("a"), {}, [AMD64], finder)) == {"a": "1.0"}


def test_unknown_project_names_the_index_error() -> None:
    with pytest.raises(ResolutionError) as raised:
        resolve(member("nope"), {}, [AMD64], MemoryFinder({}))
    assert str(raised.value) == (
        "cannot lock app for cpython 3.11 linux/amd64: nope is not available\n"
        "  app -> nope\n"
        "nope was not found on index mem\n"
        "hint: check the spelling of nope, or the indexes in workspace.yaml"
    )
    assert (raised.value.member, raised.value.package) == ("app", "nope")
    assert raised.value.causes == (ConflictCause("nope", ("app", "nope")),)


def test_conflict_carries_each_requirement_chain() -> None:
    finder = MemoryFinder({"a": {"1.0": {"dependencies": ["c>=2"]}}, "c": {"1.0": {}, "2.0": {}}})
    with pytest.raises(ResolutionError) as raised:
        resolve(member("a", "c<2"), {}, [AMD64], finder)
    assert str(raised.value) == (
        "cannot lock app for cpython 3.11 linux/amd64: conflicting requirements on c\n"
        "  app -> c<2\n"
        "  app -> a 1.0 -> c>=2\n"
        "hint: no version of c satisfies all of these; loosen one of them, "
        "or require another version of a package that brings it"
    )
    causes = raised.value.causes
    assert causes == (
        ConflictCause("c", ("app", "c<2")),
        ConflictCause("c", ("app", "a 1.0", "c>=2")),
    )
    assert [cause.requirement for cause in causes] == ["c<2", "c>=2"]
    details = raised.value.details()
    assert (details["member"], details["package"]) == ("app", "c")
    assert details["causes"] == [
        {"package": "c", "chain": ["app", "c<2"]},
        {"package": "c", "chain": ["app", "a 1.0", "c>=2"]},
    ]


def test_no_release_matches_lists_what_exists() -> None:
    finder = MemoryFinder({"a": {"1.0": {}, "1.1": {}}})
    with pytest.raises(ResolutionError) as raised:
        resolve(member("a>=3"), {}, [AMD64], finder)
    assert str(raised.value) == (
        "cannot lock app for cpython 3.11 linux/amd64: no release of a matches >=3\n"
        "  app -> a>=3\n"
        "available: 1.1, 1.0\n"
        "hint: loosen the requirement on a"
    )


def test_member_requires_python_excluding_the_target() -> None:
    app = member(requires_python=">=3.12")
    with pytest.raises(ResolutionError) as raised:
        resolve(app, {}, [AMD64], MemoryFinder({}))
    assert str(raised.value) == (
        "cannot lock app for cpython 3.11 linux/amd64: the member requires Python >=3.12\n"
        "hint: change requires-python in services/app/pyproject.toml or `python` in workspace.yaml"
    )


def test_invalid_and_url_requirements_in_pyproject() -> None:
    with pytest.raises(ResolutionError, match=r"services/app/pyproject.toml: invalid requirement"):
        resolve(member("requests>="), {}, [AMD64], MemoryFinder({}))
    with pytest.raises(ResolutionError) as raised:
        resolve(member(groups={"dev": ["bad req!"]}), {}, [AMD64], MemoryFinder({}))
    error = raised.value
    assert (error.file, error.key, error.member) == (
        Path("/workspace/services/app/pyproject.toml"), "dependency-groups.dev", "app"
    )
    with pytest.raises(ResolutionError, match="direct URL references are not supported"):
        resolve(member("x @ https://example.invalid/x.whl"), {}, [AMD64], MemoryFinder({}))


def test_too_deep_is_a_resolution_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resolver_core, "MAX_ROUNDS", 1)
    finder = MemoryFinder({"a": {"1.0": {"dependencies": ["b"]}}, "b": {"1.0": {}}})
    with pytest.raises(ResolutionError, match="gave up after 1 resolution rounds"):
        resolve(member("a"), {}, [AMD64], finder)


def test_no_targets() -> None:
    with pytest.raises(ResolutionError, match="no target environments"):
        resolve(member(), {}, [], MemoryFinder({}))


def test_old_style_requirements_become_pep508() -> None:
    assert to_pep508("python-dateutil (>=2.7.3)") == "python-dateutil>=2.7.3"
    assert to_pep508("pytest (>=4.0.2) ; extra == 'test'") == "pytest>=4.0.2; extra == 'test'"
    assert to_pep508("dask[array] (>=2.0)") == "dask[array]>=2.0"
    assert to_pep508("six") == "six"


# -- the shared, lazy catalog ------------------------------------------------------------


class GroupedMemoryFinder(MemoryFinder):
    """Answers ``files`` with a ``GroupedFiles`` listing that records which groups are read."""

    def __init__(self, projects: Any) -> None:
        super().__init__(projects)
        self.groups_read: list[str] = []

    def files(self, name: str) -> Any:
        return _RecordingListing(super().files(name), self.groups_read)


class _RecordingListing:
    def __init__(self, files: Any, record: list[str]) -> None:
        self._groups = group_by_version(files, lambda f: f.filename)
        self._record = record

    def version_texts(self) -> Any:
        return [text for text in self._groups if text]

    def files_of(self, text: str) -> list[DistFile]:
        self._record.append(text)
        return self._groups.get(text, [])


def test_one_catalog_lists_each_project_once_for_every_member() -> None:
    finder = MemoryFinder({"a": {"1.0": {"dependencies": ["b"]}}, "b": {"1.0": {}}})
    catalog = Catalog(finder)
    for app in (member("a"), member("a", "b", name="other")):
        resolve(app, {}, [AMD64, ARM64], finder, catalog=catalog)
    assert sorted(finder.files_calls) == ["a", "b"]
    assert sorted(finder.metadata_calls) == ["a-1.0-py3-none-any.whl", "b-1.0-py3-none-any.whl"]


def test_only_the_releases_looked_at_are_read() -> None:
    finder = GroupedMemoryFinder({"big": {f"1.{i}": {} for i in range(50)}})
    assert versions(resolve(member("big"), {}, [AMD64], finder)) == {"big": "1.49"}
    # the chosen release only: its metadata is the only one prefetched
    assert finder.groups_read == ["1.49"]


def test_equal_versions_spelled_differently_are_one_release() -> None:
    files = [
        DistFile("a-1.0-py3-none-any.whl", "https://x/1", "x"),
        DistFile("a-1.0.0.tar.gz", "https://x/2", "x"),
        DistFile("a-0.9-py3-none-any.whl", "https://x/3", "x"),
    ]
    releases = group_releases(files)
    assert [str(r.version) for r in releases] == ["1.0", "0.9"]
    assert [f.file.filename for f in releases[0].files] == [
        "a-1.0-py3-none-any.whl",
        "a-1.0.0.tar.gz",
    ]
    assert releases[0].files[0].tags == frozenset({Tag("py3", "none", "any")})


def test_unparsable_filenames_are_skipped() -> None:
    names = [
        "a-1.0-py3-none-any.whl",
        "a-1.0-x-py3-none-any.whl",  # the build tag must start with a digit
        "a__b-1.0-py3-none-any.whl",  # not a valid wheel name
        "a-1.0-py3-none.whl",  # too few parts
        "a-notaversion.tar.gz",
        "a-1.0.win32.exe",
        "a-1.0-py2.7.egg",
    ]
    releases = group_releases([DistFile(n, f"https://x/{n}", "x") for n in names])
    assert [(str(r.version), [f.file.filename for f in r.files]) for r in releases] == [
        ("1.0", ["a-1.0-py3-none-any.whl"])
    ]


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("pkg-1.0-py3-none-any.whl", "1.0"),
        ("pkg-2.0rc1-1-cp311-cp311-manylinux_2_17_x86_64.whl", "2.0rc1"),
        ("pkg-1.0.post1.tar.gz", "1.0.post1"),
        ("my-pkg-3.zip", "3"),
        ("pkg-1.0-py3-none.whl", ""),
        ("pkg-1.0.tar.bz2", ""),
    ],
)
def test_version_text_splits_where_packaging_does(filename: str, expected: str) -> None:
    assert version_text(filename) == expected


def test_candidates_prerelease_and_pin_rules() -> None:
    finder = MemoryFinder(
        {"a": {"1.0": {}, "2.0b1": {}, "1.1": {}}, "p": {"1.0a1": {}, "1.0a2": {}}}
    )
    env = TargetEnvironment.for_target(AMD64)

    def found(name: str, pin: str | None = None, excluded: tuple[str, ...] = ()) -> list[str]:
        preferred = {name: tuple(Version(p) for p in pin.split(","))} if pin else {}
        provider = Provider(env, Catalog(finder), {}, preferred=preferred, allow_prerelease=())
        wanted = [Requirement(name, SpecifierSet(), name)]
        out = provider.candidates(name, None, wanted, {Version(v) for v in excluded})
        return [str(c.version) for c in out]

    assert found("a") == ["1.1", "1.0"]  # no pre-release while a final release fits
    assert found("a", pin="1.0") == ["1.0", "1.1"]
    assert found("a", pin="2.0b1") == ["1.1", "1.0"]  # a pinned pre-release is no exception
    assert found("a", excluded=("1.1", "1.0")) == []  # excluded finals bring none back
    assert found("p") == ["1.0a2", "1.0a1"]  # only pre-releases: use them
    assert found("p", pin="1.0a1") == ["1.0a1", "1.0a2"]
    # several pins (a foreign lock's versions for different markers): the usable ones first,
    # in the order given; one that does not exist is no preference
    assert found("a", pin="1.0,1.1") == ["1.0", "1.1"]
    assert found("a", pin="9.9,1.0") == ["1.0", "1.1"]
    assert found("a", pin="2.0b1,1.0", excluded=("1.0",)) == ["1.1"]


def _walk(finder: MemoryFinder, app: Member, preferred: dict[str, list[str]] | None = None,
          target: Target = AMD64) -> None:
    from orchestrator.resolver.prefetch import Prefetcher

    prefetcher = Prefetcher(Catalog(finder), {})
    prefetcher.member(app, TargetEnvironment.for_target(target), preferred or {})
    prefetcher.join()
    prefetcher.close()


def test_prefetcher_walks_the_likely_picks_graph() -> None:
    finder = MemoryFinder({
        "web": {"1.0": {}, "2.0": {"dependencies": [
            "core>=1", "winonly; sys_platform == 'win32'", "fast[speed]"]}},
        "core": {"1.0": {}, "1.5": {}, "2.0rc1": {}},
        "fast": {"1.0": {"dependencies": ["turbo; extra == 'speed'"]}},
        "turbo": {"1.0": {}},
        "winonly": {"1.0": {}},
    })
    _walk(finder, member("web", groups={"test": ["tool"]}))
    # newest final release that fits, its metadata, then its dependencies as they
    # apply on the target (no win32-only one; the extra's requirement too)
    assert sorted(finder.metadata_calls) == [
        "core-1.5-py3-none-any.whl", "fast-1.0-py3-none-any.whl",
        "turbo-1.0-py3-none-any.whl", "web-2.0-py3-none-any.whl"]
    assert "winonly" not in finder.files_calls
    assert "tool" in finder.files_calls  # a group's page too (the project is unknown)


def test_prefetcher_prefers_the_previous_pins_and_never_builds_an_sdist() -> None:
    finder = MemoryFinder({
        "web": {"1.0": {"dependencies": ["native"]}, "2.0": {}},
        "native": {"3.0": {"wheels": [], "sdist": True}},
    })
    _walk(finder, member("web"), preferred={"web": ["1.0"]})
    assert finder.metadata_calls == ["web-1.0-py3-none-any.whl"]
    assert finder.files_calls.count("native") == 1


def test_prefetcher_drops_what_fails_and_changes_no_resolution() -> None:
    projects: dict[str, dict[str, dict[str, Any]]] = {
        "web": {"1.0": {"dependencies": ["missing", "ok"]}}, "ok": {"1.0": {}}}
    finder = MemoryFinder(projects)
    _walk(finder, member("web", "bad requirement ;;"))
    assert sorted(finder.metadata_calls) == ["ok-1.0-py3-none-any.whl",
                                             "web-1.0-py3-none-any.whl"]
    with pytest.raises(ResolutionError):
        resolve(member("web"), {}, [AMD64], MemoryFinder(projects))


def test_package_names_import_lazily() -> None:
    """Importing the environment module leaves resolvelib unimported; the names still resolve."""
    import subprocess
    import sys

    code = ("import sys; import orchestrator.resolver.environment; "
            "assert 'resolvelib' not in sys.modules, 'resolvelib imported'; "
            "assert 'orchestrator.resolver.core' not in sys.modules; "
            "from orchestrator.resolver import Catalog, PackageFinder, Resolution, "
            "ResolvedPackage, UsedRequirement, resolve; "
            "import orchestrator.resolver as r; assert r.resolve is resolve; "
            "assert 'resolvelib' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
    import orchestrator.resolver as package

    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        package.nothing  # noqa: B018 (the lookup is what raises)
