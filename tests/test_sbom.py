"""`sbom`: CycloneDX 1.6 from a member's lock, valid by cyclonedx-python-lib's own validator."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from orchestrator.governance.sbom import collect, cyclonedx_json
from orchestrator.models import Target
from orchestrator.session import Session
from tests.conftest import MakeWorkspace, index_manifest, pyproject
from tests.support.cli import run
from tests.support.indexserver import IndexServer


@pytest.fixture
def service(make_workspace: MakeWorkspace, index: IndexServer) -> Path:
    index.add_wheel("web", "2.0", requires_dist=["idna>=3"], extra_metadata=["License: MIT"])
    index.add_wheel("idna", "3.7", extra_metadata=["License-Expression: BSD-3-Clause"])
    index.add_wheel("idna", "3.7", tag="py2-none-any")  # a second file of the same release
    root = make_workspace({
        "libs/common": pyproject("common", ["attrs>=23"]),
        "services/api": pyproject("api", ["common", "web"], groups={"test": ["pytest"]},
                                  tool='kind = "service"'),
    }, manifest=index_manifest(index))
    code, out, err = run(root, "lock")
    assert code == 0, out + err
    return root


def lock_of(root: Path) -> dict[str, Any]:
    with (root / "services/api/pylock.toml").open("rb") as fh:
        return tomllib.load(fh)


def test_sbom_validates_and_its_components_are_the_locks_packages(service: Path) -> None:
    code, out, err = run(service, "sbom", "api")
    assert code == 0, err
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(out) is None
    bom = json.loads(out)
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
    lock = lock_of(service)
    components = {c["name"]: c for c in bom["components"]}
    assert sorted((c["name"], c.get("version")) for c in bom["components"]) == sorted(
        (p["name"], p.get("version")) for p in lock["packages"])
    for package in lock["packages"]:
        component = components[package["name"]]
        hashes = sorted(w["hashes"]["sha256"] for w in package.get("wheels", ()))
        assert sorted(h["content"] for h in component.get("hashes", ())) == hashes
        if "directory" in package:  # a workspace member: a component of its own
            assert component["bom-ref"] == f"workspace:{package['name']}"
            assert "purl" not in component
        else:
            assert component["purl"] == f"pkg:pypi/{package['name']}@{package['version']}"
            urls = sorted(r["url"] for r in component["externalReferences"])
            assert urls == sorted(w["url"] for w in package["wheels"])
    assert components["web"]["licenses"] == [{"expression": "MIT"}]
    assert components["idna"]["licenses"] == [{"expression": "BSD-3-Clause"}]
    subject = bom["metadata"]["component"]
    assert (subject["name"], subject["type"], subject["bom-ref"]) == (
        "api", "application", "workspace:api")


def test_the_dependency_graph_is_the_locks(service: Path) -> None:
    bom = json.loads(run(service, "sbom", "api")[1])
    graph = {d["ref"]: sorted(d.get("dependsOn", ())) for d in bom["dependencies"]}
    refs = {c["name"]: c["bom-ref"] for c in bom["components"]}
    assert graph["workspace:api"] == sorted([refs["common"], refs["web"], refs["pytest"]])
    for package in lock_of(service)["packages"]:
        wanted = sorted(refs[d["name"]] for d in package.get("dependencies", ()))
        assert graph[refs[package["name"]]] == wanted


def test_one_target_and_the_main_dependencies_only(service: Path) -> None:
    with Session(service) as session:
        member = session.member("api")
        when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
        bom = collect(session, member, target=Target("3.11", "linux/amd64"), timestamp=when)
        again = collect(session, member, target=Target("3.11", "linux/amd64"), timestamp=when)
    assert {c.name for c in bom.components} == {"attrs", "common", "idna", "web"}
    idna = next(c for c in bom.components if c.name == "idna")
    assert [a.filename for a in idna.artifacts] == ["idna-3.7-py3-none-any.whl"]
    text = cyclonedx_json(bom)
    assert text == cyclonedx_json(again)  # same inputs, same bytes (serial number included)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    assert json.loads(text)["metadata"]["timestamp"] == "2024-01-02T03:04:05+00:00"


def test_spdx_json_and_output_file(service: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "api.spdx.json"
    target.parent.mkdir()
    code, out, err = run(service, "sbom", "api", "--format", "spdx-json", "-o", str(target))
    assert code == 0 and out == "", err
    document = json.loads(target.read_text())
    assert document["spdxVersion"] == "SPDX-2.3"
    names = sorted(p["name"] for p in document["packages"])
    assert names == sorted(["api", *(p["name"] for p in lock_of(service)["packages"])])
    web = next(p for p in document["packages"] if p["name"] == "web")
    assert web["licenseDeclared"] == "MIT"
    assert web["externalRefs"][0]["referenceLocator"] == "pkg:pypi/web@2.0"
    kinds = {r["relationshipType"] for r in document["relationships"]}
    assert kinds == {"DESCRIBES", "DEPENDS_ON"}
