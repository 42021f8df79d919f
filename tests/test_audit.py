"""`audit` against the PyPA advisory database snapshot, a zip export, and a local OSV API.

The expected advisories are computed from the snapshot's own files by
``tests.support.osvserver.affects`` (a plain reading of the OSV spec,
written apart from orchestrator's), never copied by hand.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from packaging.version import Version

from orchestrator.errors import GovernanceError
from orchestrator.governance.cvss import band, base_score
from orchestrator.governance.osv import Advisory, open_database
from tests.conftest import MakeWorkspace, index_manifest, pyproject
from tests.support.cli import run
from tests.support.indexserver import IndexServer
from tests.support.osvserver import ADVISORIES, OsvServer, affects, fixed_versions, load_records

SARIF_SCHEMA = Path("/work/shared/data/schemas/sarif-schema-2.1.0.json")
VULNERABLE = {"django": "3.2.10", "jinja2": "2.10", "requests": "2.19.0", "urllib3": "1.24.1"}

# What `audit --format json` promises (README, "Machine-readable output").
AUDIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["source", "fail_on", "failed", "notes", "members"],
    "additionalProperties": False,
    "properties": {
        "source": {"type": "string"},
        "fail_on": {"enum": ["any", "low", "medium", "high", "critical"]},
        "failed": {"type": "boolean"},
        "notes": {"type": "array", "items": {"type": "string"}},
        "members": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["member", "path", "lock", "packages", "findings", "upgrades"],
            "properties": {
                "member": {"type": "string"}, "path": {"type": "string"},
                "lock": {"type": "string"}, "packages": {"type": "integer"},
                "upgrades": {"type": "object",
                             "additionalProperties": {"type": ["string", "null"]}},
                "findings": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False,
                    "required": ["package", "version", "id", "aliases", "advisories", "summary",
                                 "severity", "score", "fixed", "fix", "targets", "url",
                                 "ignored", "failing"],
                    "properties": {
                        "package": {"type": "string"}, "version": {"type": "string"},
                        "id": {"type": "string"}, "summary": {"type": "string"},
                        "aliases": {"type": "array", "items": {"type": "string"}},
                        "advisories": {"type": "array", "minItems": 1,
                                       "items": {"type": "string"}},
                        "severity": {"enum": ["none", "low", "medium", "high", "critical",
                                              "unknown"]},
                        "score": {"type": ["number", "null"]},
                        "fixed": {"type": "array", "items": {"type": "string"}},
                        "fix": {"type": ["string", "null"]},
                        "targets": {"type": "array", "items": {"type": "string"}},
                        "url": {"type": ["string", "null"]},
                        "ignored": {"oneOf": [{"type": "null"}, {
                            "type": "object", "required": ["id", "reason", "expires"]}]},
                        "failing": {"type": "boolean"},
                    }}},
            }}},
    },
}


@pytest.fixture(scope="module")
def records() -> dict[str, dict[str, Any]]:
    return load_records(VULNERABLE)


def expected_ids(records: Mapping[str, dict[str, Any]], name: str, version: str) -> set[str]:
    return {i for i, r in records.items() if affects(r, name, version)}


def safe_version(records: Mapping[str, dict[str, Any]], name: str) -> str:
    """A version no advisory in the snapshot affects: the highest fixed version of *name*."""
    fixed = {v for r in records.values() for v in fixed_versions(r, name)}
    best = str(max(fixed, key=Version))
    assert not expected_ids(records, name, best), best
    return best


def pinned_workspace(make_workspace: MakeWorkspace, index: IndexServer,
                     pins: Mapping[str, str], manifest_extra: str = "") -> Path:
    """A service and a library pinned to *pins*, locked against the local index."""
    for name, version in pins.items():
        index.add_wheel(name, version)
    web = [f"{n}=={v}" for n, v in pins.items() if n in ("django", "jinja2")]
    net = [f"{n}=={v}" for n, v in pins.items() if n not in ("django", "jinja2")]
    root = make_workspace({
        "services/web": pyproject("web", [*web, "net"], tool='kind = "service"'),
        "libs/net": pyproject("net", net),
    }, manifest=index_manifest(index) + manifest_extra)
    code, out, err = run(root, "lock")
    assert code == 0, out + err
    return root


def test_reports_exactly_the_advisories_the_snapshot_lists(
        make_workspace: MakeWorkspace, index: IndexServer,
        records: dict[str, dict[str, Any]]) -> None:
    root = pinned_workspace(make_workspace, index, VULNERABLE)
    code, out, err = run(root, "audit", "--db", str(ADVISORIES), "--format", "json")
    assert code == 1, err
    report = json.loads(out)
    jsonschema.validate(report, AUDIT_SCHEMA)
    by_member = {m["member"]: m for m in report["members"]}
    for member, names in (("web", ("django", "jinja2", "requests", "urllib3")),
                          ("net", ("requests", "urllib3"))):
        findings = by_member[member]["findings"]
        for name in names:
            want = expected_ids(records, name, VULNERABLE[name])
            assert want, f"the snapshot lists no advisory for {name} {VULNERABLE[name]}"
            got = [f for f in findings if f["package"] == name]
            assert {a for f in got for a in f["advisories"]} == want
            for finding in got:  # the fix is above the version and clears every advisory
                assert finding["fix"] is None or (
                    Version(finding["fix"]) > Version(VULNERABLE[name])
                    and not any(affects(records[a], name, finding["fix"])
                                for a in finding["advisories"]))
                assert finding["targets"] == ["3.11 linux/amd64"]
        assert {f["package"] for f in findings} == set(names)
        # A fix computed as None everywhere would pass the check above: these have fixes.
        assert {f["package"] for f in findings if f["fix"] is not None} == set(names)
    assert "error: " in err and "at or above --fail-on any" in err


def test_nothing_for_the_fixed_versions(make_workspace: MakeWorkspace, index: IndexServer,
                                        records: dict[str, dict[str, Any]]) -> None:
    root = pinned_workspace(make_workspace, index,
                            {n: safe_version(records, n) for n in VULNERABLE})
    code, out, err = run(root, "audit", "--db", str(ADVISORIES))
    assert code == 0, out + err
    assert "web (services/web/pylock.toml): 4 packages, no known vulnerabilities" in out
    assert "0 finding(s), 0 failing (--fail-on any)" in out


def test_sarif_validates_against_the_schema(make_workspace: MakeWorkspace,
                                            index: IndexServer) -> None:
    root = pinned_workspace(make_workspace, index, VULNERABLE)
    code, out, _ = run(root, "audit", "--db", str(ADVISORIES), "--format", "sarif")
    assert code == 1
    sarif = json.loads(out)
    jsonschema.validate(sarif, json.loads(SARIF_SCHEMA.read_text()))
    results = sarif["runs"][0]["results"]
    assert results and {r["level"] for r in results} == {"error"}
    lock = (root / "services/web/pylock.toml").read_text().splitlines()
    for result in results:
        place = result["locations"][0]["physicalLocation"]
        assert place["artifactLocation"]["uri"] in ("services/web/pylock.toml",
                                                     "libs/net/pylock.toml")
        if place["artifactLocation"]["uri"] == "services/web/pylock.toml":
            line = lock[place["region"]["startLine"] - 1]
            assert line.startswith('name = "') and line.split('"')[1] in result["message"]["text"]
    rules = {r["id"] for r in sarif["runs"][0]["tool"]["driver"]["rules"]}
    assert rules == {r["ruleId"] for r in results}


# -- a database of our own: aliases, withdrawn, last_affected, versions, severity ----------


def osv(vuln_id: str, *, aliases: list[str] | None = None,
        events: list[dict[str, str]] | None = None, versions: list[str] | None = None,
        **extra: object) -> dict[str, Any]:
    affected: dict[str, object] = {"package": {"name": "demo", "ecosystem": "PyPI"}}
    if events is not None:
        affected["ranges"] = [{"type": "ECOSYSTEM", "events": events}]
    if versions is not None:
        affected["versions"] = versions
    return {"id": vuln_id, "modified": "2024-01-01T00:00:00Z", "aliases": aliases or [],
            "summary": f"{vuln_id} in demo", "affected": [affected], **extra}


DEMO_DB: list[dict[str, Any]] = [
    # one CVE, two databases: one finding
    osv("PYSEC-2024-1", aliases=["CVE-2024-1"], events=[{"introduced": "0"}, {"fixed": "1.2"}],
        severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}]),
    osv("GHSA-aaaa-bbbb-cccc", aliases=["CVE-2024-1"],
        events=[{"introduced": "1.0"}, {"fixed": "1.2"}],
        database_specific={"severity": "MODERATE"}),
    # last_affected 1.1: 1.1 affected, 1.1.1 not; no severity at all
    osv("PYSEC-2024-2", events=[{"introduced": "1.0"}, {"last_affected": "1.1"}]),
    # withdrawn: never reported
    osv("PYSEC-2024-3", events=[{"introduced": "0"}], withdrawn="2024-02-01T00:00:00Z"),
    # only a versions list; low severity
    osv("PYSEC-2024-4", versions=["1.1", "2.0"],
        severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:L/PR:L/UI:R/S:U/C:L/I:N/A:N"}]),
    # about another ecosystem only: dropped
    {"id": "GO-2024-1", "affected": [{"package": {"name": "demo", "ecosystem": "Go"},
                                      "ranges": [{"type": "SEMVER", "events": [
                                          {"introduced": "0"}]}]}]},
]


def write_db(directory: Path, records: list[dict[str, Any]]) -> Path:
    (directory / "vulns/demo").mkdir(parents=True)
    for record in records:
        text = yaml.safe_dump(record, sort_keys=False)
        (directory / "vulns/demo" / f"{record['id']}.yaml").write_text(text)
    return directory


def demo(make_workspace: MakeWorkspace, index: IndexServer, version: str,
         manifest_extra: str = "", root: Path | None = None) -> Path:
    index.add_wheel("demo", version)
    root = make_workspace({"services/app": pyproject("app", [f"demo=={version}"])},
                          manifest=index_manifest(index) + manifest_extra, root=root)
    assert run(root, "lock", "--refresh")[0] == 0  # the index page may be cached without it
    return root


def audit_json(root: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    code, out, err = run(root, "audit", "--format", "json", *args)
    assert out, err
    return code, json.loads(out), err


def test_aliases_merge_and_withdrawn_are_skipped(tmp_path: Path, make_workspace: MakeWorkspace,
                                                 index: IndexServer) -> None:
    db = write_db(tmp_path / "db", DEMO_DB)
    root = demo(make_workspace, index, "1.1")
    code, report, _ = audit_json(root, "--db", str(db))
    assert code == 1
    findings = report["members"][0]["findings"]
    assert [(f["id"], f["advisories"], f["aliases"]) for f in findings] == [
        ("GHSA-aaaa-bbbb-cccc", ["GHSA-aaaa-bbbb-cccc", "PYSEC-2024-1"],
         ["CVE-2024-1", "PYSEC-2024-1"]),
        ("PYSEC-2024-2", ["PYSEC-2024-2"], []),
        ("PYSEC-2024-4", ["PYSEC-2024-4"], []),
    ]
    merged, last, listed = findings
    assert (merged["severity"], merged["score"], merged["fix"]) == ("high", 7.5, "1.2")
    assert (last["severity"], last["fix"]) == ("unknown", None)  # last_affected: no fix known
    assert (listed["severity"], listed["score"]) == ("low", 2.8)
    # 1.2 fixes the merged finding, and no advisory affects it (PYSEC-2024-2 ends at 1.1)
    assert report["members"][0]["upgrades"] == {"demo": "1.2"}


def test_last_affected_and_versions_lists(tmp_path: Path) -> None:
    db = open_database(write_db(tmp_path / "db", DEMO_DB), None)
    advisories = db.advisories([("demo", "x")])["demo"]
    hits = {v: sorted(a.id for a in advisories if a.affects("demo", v))
            for v in ("0.9", "1.0", "1.1", "1.1.1", "1.2", "2.0", "2.0.0")}
    assert hits == {
        "0.9": ["PYSEC-2024-1"],
        "1.0": ["GHSA-aaaa-bbbb-cccc", "PYSEC-2024-1", "PYSEC-2024-2"],
        "1.1": ["GHSA-aaaa-bbbb-cccc", "PYSEC-2024-1", "PYSEC-2024-2", "PYSEC-2024-4"],
        "1.1.1": ["GHSA-aaaa-bbbb-cccc", "PYSEC-2024-1"],
        "1.2": [],
        "2.0": ["PYSEC-2024-4"],
        "2.0.0": ["PYSEC-2024-4"],  # PEP 440: 2.0.0 is 2.0
    }
    assert db.count == 4  # withdrawn and Go-only records are not kept


def test_fail_on_thresholds_and_unknown_severity(tmp_path: Path, make_workspace: MakeWorkspace,
                                                 index: IndexServer) -> None:
    low_only = write_db(tmp_path / "low", [r for r in DEMO_DB if r["id"] == "PYSEC-2024-4"])
    root = demo(make_workspace, index, "2.0")
    assert run(root, "audit", "--db", str(low_only), "--fail-on", "medium")[0] == 0
    assert run(root, "audit", "--db", str(low_only), "--fail-on", "low")[0] == 1
    unknown = write_db(tmp_path / "unknown", [r for r in DEMO_DB if r["id"] == "PYSEC-2024-2"])
    root = demo(make_workspace, index, "1.0", root=tmp_path / "other")
    code, _out, err = run(root, "audit", "--db", str(unknown), "--fail-on", "critical")
    assert code == 1  # an unknown severity fails closed, at every level
    assert "error: 1 finding(s) at or above --fail-on critical" in err
    assert run(root, "audit", "--db", str(unknown), "--ignore", "PYSEC-2024-2")[0] == 0


def test_ignores_with_reason_and_expiry(tmp_path: Path, make_workspace: MakeWorkspace,
                                        index: IndexServer) -> None:
    db = write_db(tmp_path / "db", DEMO_DB[:2])
    expired = (f"audit:\n  db: {db}\n  ignore:\n"
               "    - {id: CVE-2024-1, reason: not reachable from our code, expires: 2020-01-01}\n")
    root = demo(make_workspace, index, "1.1", expired)
    code, report, err = audit_json(root)
    assert code == 1
    assert report["members"][0]["findings"][0]["ignored"] is None
    assert ("note: the ignore of CVE-2024-1 expired on 2020-01-01; it no longer applies "
            "(reason given: not reachable from our code)") in err
    current = expired.replace("2020-01-01", "2999-12-31")
    (root / "workspace.yaml").write_text(index_manifest(index) + current)
    code, report, err = audit_json(root)
    assert code == 0, err
    finding = report["members"][0]["findings"][0]
    assert finding["ignored"] == {"id": "CVE-2024-1", "reason": "not reachable from our code",
                                  "expires": "2999-12-31"}
    assert finding["failing"] is False
    code, out, _ = run(root, "audit", "--format", "sarif")
    assert json.loads(out)["runs"][0]["results"][0]["suppressions"] == [
        {"kind": "external", "justification": "not reachable from our code"}]
    code, _out, err = run(root, "audit", "--ignore", "PYSEC-2024-9")
    assert "note: the ignore of PYSEC-2024-9 matches no finding" in err


def test_an_osv_zip_export_reads_like_the_directory(tmp_path: Path, make_workspace: MakeWorkspace,
                                                    index: IndexServer) -> None:
    export = tmp_path / "all.zip"
    with zipfile.ZipFile(export, "w") as archive:
        for record in DEMO_DB:
            archive.writestr(f"{record['id']}.json", json.dumps(record))
    root = demo(make_workspace, index, "1.1")
    from_zip = audit_json(root, "--db", str(export))[1]
    from_dir = audit_json(root, "--db", str(write_db(tmp_path / "db", DEMO_DB)))[1]
    assert from_zip["members"] == from_dir["members"]


def test_the_database_is_read_once_and_again_when_it_changes(tmp_path: Path) -> None:
    root = write_db(tmp_path / "db", DEMO_DB[:1])
    cache = tmp_path / "cache"
    assert open_database(root, cache).count == 1
    file = root / "vulns/demo/PYSEC-2024-1.yaml"
    before = file.stat()
    file.write_text("id: [" + " " * (before.st_size - 6) + "\n")  # same size, broken
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert open_database(root, cache).count == 1  # unchanged stamp: the cache answers
    (root / "vulns/demo/PYSEC-2024-2.yaml").write_text(yaml.safe_dump(DEMO_DB[2]))
    with pytest.raises(GovernanceError, match=r"cannot read the advisory "
                       r"vulns/demo/PYSEC-2024-1\.yaml in "):
        open_database(root, cache)


def test_a_missing_database_is_named(make_workspace: MakeWorkspace, index: IndexServer,
                                     tmp_path: Path) -> None:
    root = demo(make_workspace, index, "1.1")
    code, _out, err = run(root, "audit", "--db", str(tmp_path / "nowhere"))
    assert code == 1
    assert err == (f"error: --db: the advisory database {tmp_path / 'nowhere'} does not exist\n"
                   "hint: point it at a directory of OSV files (a checkout of the PyPA advisory "
                   "database) or an OSV zip export, or use --online\n")
    code, _out, err = run(root, "audit")
    assert code == 1 and err.startswith("error: no advisory database is configured\n")


# -- online: the OSV API's batch endpoint, served on 127.0.0.1 ----------------------------


def test_online_queries_the_batch_endpoint_and_caches(
        make_workspace: MakeWorkspace, index: IndexServer, monkeypatch: pytest.MonkeyPatch,
        records: dict[str, dict[str, Any]]) -> None:
    root = pinned_workspace(make_workspace, index, VULNERABLE)
    offline = audit_json(root, "--db", str(ADVISORIES))[1]
    with OsvServer(records, page_size=3) as server:  # 3 per page: django needs paging
        monkeypatch.setenv("ORCHESTRATOR_OSV_URL", server.url)
        code, online, err = audit_json(root, "--online")
        assert code == 1, err
        assert online["source"] == f"the OSV API ({server.url})"
        assert online["members"] == offline["members"]
        fetched = [p for m, p in server.requests if m == "GET"]
        assert len(fetched) == len(set(fetched))  # each record fetched once
        assert sum(1 for m, _p in server.requests if m == "POST") > 1  # paged
        server.requests.clear()
        assert audit_json(root, "--online")[1]["members"] == offline["members"]
        assert [m for m, _p in server.requests] == ["POST"] * len(
            [m for m, _p in server.requests])  # records came from the cache


def test_online_paging_past_the_limit_is_a_note(
        make_workspace: MakeWorkspace, index: IndexServer, monkeypatch: pytest.MonkeyPatch,
        records: dict[str, dict[str, Any]]) -> None:
    from orchestrator.governance import osv_api

    root = pinned_workspace(make_workspace, index, VULNERABLE)
    monkeypatch.setattr(osv_api, "PAGES", 1)
    with OsvServer(records, page_size=1) as server:  # one ID a page: every package is cut
        monkeypatch.setenv("ORCHESTRATOR_OSV_URL", server.url)
        _code, online, _err = audit_json(root, "--online")
    cut = [n for n in online["notes"] if n.startswith("the OSV API listed more than 1 pages")]
    assert len(cut) == 1, online["notes"]
    assert cut[0].endswith("; the rest were not read")
    assert f"django {VULNERABLE['django']}" in cut[0]


def test_online_unreachable_says_so_and_falls_back(
        make_workspace: MakeWorkspace, index: IndexServer, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    db = write_db(tmp_path / "db", DEMO_DB)
    root = demo(make_workspace, index, "1.1")
    with OsvServer({str(r["id"]): r for r in DEMO_DB}) as server:
        dead = server.url
    monkeypatch.setenv("ORCHESTRATOR_OSV_URL", dead)
    fresh = tmp_path / "fresh-cache"
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(fresh))
    code, out, err = run(root, "audit", "--online")
    assert code == 1 and out == ""
    assert err.startswith(f"error: cannot reach the OSV API at {dead} (")
    assert "hint: pass --db PATH (or set audit.db in workspace.yaml) to a local copy" in err
    code, report, err = audit_json(root, "--online", "--db", str(db))
    assert report["source"] == str(db.resolve())
    assert f"note: cannot reach the OSV API at {dead}" in err
    assert f"audited from the local database {db.resolve()} instead" in err
    assert len(report["members"][0]["findings"]) == 3


def test_online_unreachable_uses_the_last_answers(
        make_workspace: MakeWorkspace, index: IndexServer, monkeypatch: pytest.MonkeyPatch) -> None:
    root = demo(make_workspace, index, "1.1")
    with OsvServer({str(r["id"]): r for r in DEMO_DB}) as server:
        monkeypatch.setenv("ORCHESTRATOR_OSV_URL", server.url)
        first = audit_json(root, "--online")[1]
    _code, report, err = audit_json(root, "--online")
    assert report["members"] == first["members"]
    assert "note: cannot reach the OSV API" in err and "using its answers cached on" in err


# -- units ------------------------------------------------------------------------------


@pytest.mark.parametrize(("vector", "score", "rating"), [
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8, "critical"),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0, "critical"),
    ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5, "high"),
    ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N", 6.4, "medium"),
    ("CVSS:3.1/AV:L/AC:L/PR:L/UI:R/S:U/C:L/I:N/A:N", 2.8, "low"),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0, "none"),
    ("AV:N/AC:L/Au:N/C:P/I:P/A:P", 7.5, "high"),
    ("AV:N/AC:M/Au:N/C:N/I:P/A:N", 4.3, "medium"),
])
def test_cvss_base_scores(vector: str, score: float, rating: str) -> None:
    assert base_score(vector) == score
    assert band(score) == rating


def test_cvss_4_and_garbage_have_no_score() -> None:
    assert base_score("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N") is None
    assert base_score("CVSS:3.1/AV:X") is None
    v4 = Advisory.from_osv({"id": "X", "affected": [
        {"package": {"name": "a", "ecosystem": "PyPI"}, "versions": ["1"]}],
        "severity": [{"type": "CVSS_V4", "score": "CVSS:4.0/AV:N"}],
        "database_specific": {"severity": "CRITICAL"}})
    assert v4 is not None and (v4.severity, v4.score) == ("critical", None)
