"""`licenses`: each locked package's license from its metadata, normalized, and the policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import GovernanceError
from orchestrator.governance.licenses import License, Policy, from_fields, spdx
from orchestrator.index.client import METADATA_BUCKET
from orchestrator.models import LicenseFields, LicensePolicy
from tests.conftest import MakeWorkspace, index_manifest, pyproject
from tests.support.cli import run
from tests.support.indexserver import IndexServer

WHEELS = {
    "permissive": ["License-Expression: MIT"],
    "apachey": ["License: Apache 2.0"],
    "classified": ["Classifier: License :: OSI Approved :: MIT License"],
    "vague": ["Classifier: License :: OSI Approved :: BSD License"],
    "copyleft": ["License-Expression: AGPL-3.0-only"],
    "dual": ["License-Expression: MIT OR GPL-3.0-only"],
    "mystery": [],
}


@pytest.fixture
def licensed(make_workspace: MakeWorkspace, index: IndexServer) -> Path:
    for name, headers in WHEELS.items():
        index.add_wheel(name, "1.0", extra_metadata=headers)
    common = pyproject("common", ["permissive"]).replace(
        'version = "1.0.0"', 'version = "1.0.0"\nlicense = "Apache-2.0"')
    root = make_workspace({
        "libs/common": common,
        "services/api": pyproject("api", ["common", *WHEELS]),
    }, manifest=index_manifest(index))
    code, out, err = run(root, "lock")
    assert code == 0, out + err
    return root


def with_policy(root: Path, index: IndexServer, policy: str) -> None:
    (root / "workspace.yaml").write_text(index_manifest(index) + policy)


def as_json(root: Path) -> tuple[int, dict[str, Any], str]:
    code, out, err = run(root, "licenses", "--format", "json")
    return code, json.loads(out), err


def test_lists_each_locked_package_normalized(licensed: Path) -> None:
    code, report, err = as_json(licensed)
    assert code == 0, err
    api = {p["package"]: (p["license"], p["raw"], p["source"]) for p in report["packages"]
           if p["member"] == "api"}
    assert api == {
        "apachey": ("Apache-2.0", "Apache 2.0", "License"),
        "classified": ("MIT", "License :: OSI Approved :: MIT License", "classifier"),
        "common": ("Apache-2.0", "Apache-2.0", "pyproject"),
        "copyleft": ("AGPL-3.0-only", "AGPL-3.0-only", "License-Expression"),
        "dual": ("MIT OR GPL-3.0-only", "MIT OR GPL-3.0-only", "License-Expression"),
        "mystery": (None, None, "none"),
        "permissive": ("MIT", "MIT", "License-Expression"),
        "vague": (None, "BSD License", "classifier"),
    }
    assert report["failed"] is False
    code, out, _err = run(licensed, "licenses", "common")
    assert out == "common\n  permissive 1.0  MIT  (License-Expression)\n"


def test_a_denied_license_fails_naming_package_member_and_license(
        licensed: Path, index: IndexServer) -> None:
    with_policy(licensed, index, "license:\n  deny: [AGPL-*, GPL-3.0-only]\n")
    code, report, err = as_json(licensed)
    assert code == 1
    failing = [(p["member"], p["package"], p["status"]) for p in report["packages"]
               if p["failing"]]
    assert failing == [("api", "copyleft", "denied")]  # dual: MIT is a way out
    assert ("error: copyleft 1.0 in api: AGPL-3.0-only is denied by license.deny "
            "(AGPL-3.0-only)\n") in err
    assert "hint: replace the package, or change `license:` in workspace.yaml" in err


def test_allow_list_and_unknown_fail(licensed: Path, index: IndexServer) -> None:
    with_policy(licensed, index, "license:\n  allow: [MIT, Apache-2.0]\n  unknown: fail\n")
    code, report, err = as_json(licensed)
    assert code == 1
    verdicts = {p["package"]: p["status"] for p in report["packages"] if p["member"] == "api"}
    assert verdicts == {"apachey": "allowed", "classified": "allowed", "common": "allowed",
                        "copyleft": "not-allowed", "dual": "allowed", "mystery": "unknown",
                        "permissive": "allowed", "vague": "unknown"}
    assert "error: mystery 1.0 in api: the license is unknown (unknown)\n" in err
    assert ("error: vague 1.0 in api: the license is unknown (unknown (BSD License))\n"
            in err)
    with_policy(licensed, index, "license:\n  allow: [MIT, Apache-2.0, AGPL-3.0-only]\n")
    code, _report, err = as_json(licensed)
    assert code == 0  # unknown: warn by default
    assert "warning: mystery 1.0 in api: the license is unknown (unknown)\n" in err


def test_licenses_come_from_the_metadata_cache(licensed: Path, index: IndexServer,
                                               tmp_path: Path) -> None:
    index.reset()
    assert as_json(licensed)[0] == 0
    assert index.count() == 0  # locking left every license in the cache
    # Entries cached before licenses were recorded are fetched once, then cached.
    for entry in (tmp_path / "cache" / METADATA_BUCKET).rglob("*.json"):
        data = json.loads(entry.read_text())
        del data["license"]
        entry.write_text(json.dumps(data))
    _code, report, _err = as_json(licensed)
    assert {p["license"] for p in report["packages"] if p["package"] == "apachey"} == {
        "Apache-2.0"}
    assert index.count() > 0
    index.reset()
    as_json(licensed)
    assert index.count() == 0


@pytest.mark.parametrize(("text", "expected"), [
    ("MIT", "MIT"), ("mit", "MIT"), ("Apache 2.0", "Apache-2.0"), ("GPL-3.0", "GPL-3.0-only"),
    ("LGPL-2.1+", "LGPL-2.1-or-later"), ("BSD", None), ("MIT OR Apache-2.0", "MIT OR Apache-2.0"),
    ("LicenseRef-Proprietary", "LicenseRef-Proprietary"), ("Copyright (c) 2020\nPermission", None),
    ("GPL-2.0-only WITH Classpath-exception-2.0", "GPL-2.0-only WITH Classpath-exception-2.0"),
])
def test_spdx_normalization(text: str, expected: str | None) -> None:
    assert spdx(text) == expected


def test_a_whole_license_text_falls_back_to_classifiers() -> None:
    fields = LicenseFields(text="MIT License\n\nCopyright (c) 2020 someone\n...",
                           classifiers=("License :: OSI Approved :: MIT License",))
    assert from_fields(fields) == License("MIT", "License :: OSI Approved :: MIT License",
                                          "classifier")
    assert from_fields(LicenseFields(text="Copyright 2020\nall rights")) == License(
        None, "Copyright 2020", "License")


def test_classifiers_naming_one_license_twice_are_that_license() -> None:
    classifiers = ("License :: OSI Approved :: Apache Software License",
                   "License :: OSI Approved :: Apache-2.0")
    assert from_fields(LicenseFields(classifiers=classifiers)) == License(
        "Apache-2.0", "; ".join(classifiers), "classifier")
    vague = ("License :: OSI Approved :: MIT License", "License :: OSI Approved :: BSD License")
    assert from_fields(LicenseFields(classifiers=vague)).expression is None


def test_policy_expressions_and_globs() -> None:
    policy = Policy.compile(LicensePolicy(deny=("GPL-*",), allow=()))
    ok = License("MIT OR GPL-3.0-only", None, "License-Expression")
    both = License("MIT AND GPL-3.0-only", None, "License-Expression")
    exception = License("GPL-2.0-only WITH Classpath-exception-2.0", None, "License")
    assert [policy.status(x)[0] for x in (ok, both, exception)] == [
        "allowed", "denied", "denied"]
    allow = Policy.compile(LicensePolicy(allow=("GPL-2.0-only WITH Classpath-exception-2.0",
                                                "MIT OR Apache-2.0")))
    assert allow.status(exception)[0] == "allowed"
    assert allow.status(License("Apache-2.0", None, "License"))[0] == "allowed"
    assert allow.status(License("GPL-2.0-only", None, "License"))[0] == "not-allowed"


def test_a_bad_policy_entry_is_named() -> None:
    with pytest.raises(GovernanceError) as caught:
        Policy.compile(LicensePolicy(deny=("MIT OR",)))
    assert caught.value.key == "license.deny[0]"
    assert caught.value.message.startswith(
        "workspace.yaml: license.deny[0]: 'MIT OR' is not an SPDX license expression (")


def test_workspace_yaml_validates_the_license_section(licensed: Path, index: IndexServer) -> None:
    with_policy(licensed, index, "license:\n  unknown: maybe\n")
    code, _out, err = run(licensed, "licenses")
    assert code == 1
    assert "license.unknown: expected fail or warn, got string 'maybe'" in err
    with_policy(licensed, index, "license:\n  denied: [MIT]\n")
    code, _out, err = run(licensed, "licenses")
    assert code == 1 and "license.denied: unknown key" in err
