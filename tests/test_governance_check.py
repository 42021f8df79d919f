"""`check` as the governance gate: drift, secrets, bounds, lock sources, audit, licenses."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from orchestrator.governance.secrets import scan_file
from tests.conftest import MakeWorkspace, index_manifest, pyproject
from tests.support.cli import run
from tests.support.indexserver import IndexServer
from tests.support.wheels import build_wheel

REPO = Path(__file__).parents[1]
GITHUB_TOKEN = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"  # the shape of one, made up
PYPI_TOKEN = "pypi-AgEIcHlwaS5vcmc" + "CJGQ1ZTk0ZDg3LTZmNzUtNDc3Yy1hZGE0LWY1ZDk2Mjc"
RANDOM_PASSWORD = "q8Z!vR2#mK9$wL4x"


def findings(root: Path) -> list[dict[str, object]]:
    code, out, _err = run(root, "check", "--format", "json")
    found: list[dict[str, object]] = json.loads(out)
    assert code == (1 if any(f["severity"] == "error" for f in found) else 0)
    return found


def of(found: list[dict[str, object]], check: str) -> list[dict[str, object]]:
    return [f for f in found if f["check"] == check]


def test_a_clean_locked_workspace_passes(locked_shop: Path) -> None:
    assert run(locked_shop, "lock")[0] == 0
    code, out, err = run(locked_shop, "check")
    assert (code, err) == (0, ""), err
    assert out.endswith("ok: no problems found\n")


# -- venv drift ------------------------------------------------------------------------------


def pip_install(venv: Path, wheels: Path, *requirements: str) -> None:
    """What a user does behind the tool's back: pip (from outside) into the member's venv."""
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin/python"),
                    "install", "--quiet", "--no-index", "--find-links", str(wheels),
                    "--no-deps", *requirements], check=True, capture_output=True)


def test_a_drifted_venv_fails_naming_each_package(locked_shop: Path, tmp_path: Path) -> None:
    code, out, err = run(locked_shop, "sync", "api")
    assert code == 0, out + err
    assert of(findings(locked_shop), "venv_drift") == []
    wheels = tmp_path / "behind"
    build_wheel(wheels, "leftpad", "1.0")
    build_wheel(wheels, "attrs", "23.1.0")
    venv = locked_shop / "services/api/.venv"
    pip_install(venv, wheels, "leftpad==1.0", "attrs==23.1.0")
    code, _out, err = run(locked_shop, "check")
    assert code == 1
    assert ("error: services/api/.venv: attrs is installed at 23.1.0, but the lock pins 24.2.0 "
            "(installed behind the lock's back, e.g. with pip)\n"
            "hint: add it to services/api/pyproject.toml with `orchestrator add api attrs`, "
            "or run `orchestrator sync api` to remove it\n") in err
    assert ("error: services/api/.venv: leftpad 1.0 is installed but not in the lock "
            "(installed behind the lock's back, e.g. with pip)\n") in err
    drift = of(findings(locked_shop), "venv_drift")
    assert [(f["member"], f["key"], f["file"]) for f in drift] == [
        ("api", "attrs", str(venv)), ("api", "leftpad", str(venv))]
    assert run(locked_shop, "sync", "api")[0] == 0  # an exact sync repairs it
    assert of(findings(locked_shop), "venv_drift") == []


# -- secrets ---------------------------------------------------------------------------------


def test_a_secret_in_pyproject_fails_masked(make_workspace: MakeWorkspace) -> None:
    tool = (f'kind = "service"\nenv = {{API_TOKEN = "{GITHUB_TOKEN}", DB_PASSWORD = '
            f'"{RANDOM_PASSWORD}", LOG_LEVEL = "info", TOKEN_FILE = "/run/secrets/token"}}\n'
            f"# deploy with {PYPI_TOKEN}\n")
    root = make_workspace({"services/api": pyproject("api", ["attrs"], tool=tool)})
    code, out, err = run(root, "check")
    assert code == 1
    lines = (root / "services/api/pyproject.toml").read_text().splitlines()
    env_line = next(i for i, line in enumerate(lines, 1) if "API_TOKEN" in line)
    assert (f"error: services/api/pyproject.toml:{env_line}: tool.orchestrator.env.API_TOKEN: "
            "a GitHub token is stored in the file (ghp_... (40 characters))\n") in err
    assert (f"error: services/api/pyproject.toml:{env_line}: tool.orchestrator.env.DB_PASSWORD: "
            "a secret in a key named 'DB_PASSWORD' is stored in the file "
            "(q8... (16 characters))\n") in err
    assert (f"error: services/api/pyproject.toml:{env_line + 1}: a PyPI API token is stored in "
            "the file (pypi-... (64 characters))\n") in err
    assert "hint: remove it and rotate it" in err
    _code, as_json, _ = run(root, "check", "--format", "json")
    for text in (out, err, as_json):
        for secret in (GITHUB_TOKEN, RANDOM_PASSWORD, PYPI_TOKEN):
            assert secret not in text and secret[:12] not in text
    assert len(of(json.loads(as_json), "secrets")) == 3  # LOG_LEVEL, TOKEN_FILE: not secrets


def test_secrets_in_workspace_yaml(make_workspace: MakeWorkspace) -> None:
    manifest = ("version: 1\nname: demo\nmembers: [services/*]\n"
                "audit:\n  ignore:\n    - {id: X-1, reason: 'see https://bot:hunter2secret@ci"
                ".example.com/'}\n"
                "# aws: AKIAIOSFODNN7EXAMPLE\n")
    root = make_workspace({"services/api": pyproject("api")}, manifest=manifest)
    secrets = of(findings(root), "secrets")
    assert [(f["key"], f["message"]) for f in secrets] == [
        ("audit.ignore[0].reason", "workspace.yaml:6: audit.ignore[0].reason: a password in a "
         "URL is stored in the file (https://bot:****@)"),
        (None, "workspace.yaml:7: a AWS access key id is stored in the file (AKIA... "
         "(20 characters))"),
    ]


def test_private_keys_and_placeholders(tmp_path: Path) -> None:
    file = tmp_path / "pyproject.toml"
    file.write_text('[tool.x]\nkey = """-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n'
                    '-----END OPENSSH PRIVATE KEY-----"""\npassword = "${DB_PASSWORD}"\n'
                    'url = "https://user:${TOKEN}@example.com/simple"\n'
                    'secret_name = "short"\n')
    assert [(s.line, s.key, s.kind, s.masked) for s in scan_file(file)] == [
        (2, "tool.x.key", "private key", "-----BEGIN OPENSSH PRIVATE KEY-----")]


# -- upper bounds, lock sources ---------------------------------------------------------------


def test_upper_bounds_only_when_the_policy_asks(make_workspace: MakeWorkspace) -> None:
    members = {
        "libs/common": pyproject("common", ["attrs>=23", "idna~=3.7", "click==8.*"]),
        "services/api": pyproject("api", ["common", "httpx>=0.27,<1", "rich"],
                                  groups={"dev": ["pytest!=8.0"]}),
    }
    root = make_workspace(members)
    assert of(findings(root), "upper_bounds") == []
    (root / "workspace.yaml").write_text((root / "workspace.yaml").read_text()
                                         + "policy:\n  require-upper-bounds: true\n")
    found = of(findings(root), "upper_bounds")
    assert [(f["member"], f["key"], f["message"]) for f in found] == [
        ("api", "project.dependencies", "services/api/pyproject.toml: project.dependencies: "
         "'rich' has no upper bound (policy.require-upper-bounds)"),
        ("api", "dependency-groups.dev", "services/api/pyproject.toml: dependency-groups.dev: "
         "'pytest!=8.0' has no upper bound (policy.require-upper-bounds)"),
        ("common", "project.dependencies", "libs/common/pyproject.toml: project.dependencies: "
         "'attrs>=23' has no upper bound (policy.require-upper-bounds)"),
    ]


def test_lock_entries_without_hashes_or_from_urls(locked_shop: Path) -> None:
    assert run(locked_shop, "lock")[0] == 0
    lock = locked_shop / "services/api/pylock.toml"
    text = lock.read_text()
    text = re.sub(r", hashes = \{sha256 = \"[0-9a-f]+\"\}", "", text, count=1)
    text += ('\n[[packages]]\nname = "vendored"\nversion = "1.0"\n\n[packages.archive]\n'
             'url = "https://example.com/vendored-1.0.tar.gz"\nhashes = {sha256 = "00"}\n')
    lock.write_text(text)
    found = of(findings(locked_shop), "lock_sources")
    messages = [str(f["message"]) for f in found]
    assert any(re.fullmatch(r"services/api/pylock.toml: packages\[\d+\]\.wheels\[0\]: \S+ lists "
                            r"\S+\.whl without a hash", m) for m in messages), messages
    assert any(m.endswith(": vendored comes from a direct URL "
                          "(https://example.com/vendored-1.0.tar.gz), not from an index")
               for m in messages), messages


# -- audit and licenses, when configured -------------------------------------------------------


def advisory_db(root: Path, package: str, fixed: str) -> Path:
    (root / "vulns" / package).mkdir(parents=True)
    record = {"id": "PYSEC-2099-1", "aliases": ["CVE-2099-1"], "summary": "bad",
              "affected": [{"package": {"name": package, "ecosystem": "PyPI"},
                            "ranges": [{"type": "ECOSYSTEM", "events": [
                                {"introduced": "0"}, {"fixed": fixed}]}]}]}
    (root / "vulns" / package / "PYSEC-2099-1.yaml").write_text(yaml.safe_dump(record))
    return root


def test_audit_in_check_when_a_database_is_configured(locked_shop: Path, index: IndexServer,
                                                      tmp_path: Path) -> None:
    assert run(locked_shop, "lock")[0] == 0
    db = advisory_db(tmp_path / "db", "idna", "3.8")
    manifest = index_manifest(index) + f"audit:\n  db: {db}\n"
    (locked_shop / "workspace.yaml").write_text(manifest)
    found = of(findings(locked_shop), "audit_policy")
    assert [(f["member"], f["message"], f["hint"]) for f in found] == [(
        "api", "services/api/pylock.toml: idna 3.7 is affected by PYSEC-2099-1 (CVE-2099-1), "
        "severity unknown",
        "upgrade idna to 3.8, or accept it under audit.ignore with a reason")]
    (locked_shop / "workspace.yaml").write_text(
        manifest + "  ignore:\n    - {id: CVE-2099-1, reason: not reachable}\n")
    assert of(findings(locked_shop), "audit_policy") == []


def test_a_denied_license_fails_check(make_workspace: MakeWorkspace, index: IndexServer) -> None:
    index.add_wheel("copyleft", "1.0", extra_metadata=["License-Expression: AGPL-3.0-only"])
    index.add_wheel("fine", "1.0", extra_metadata=["License-Expression: MIT"])
    root = make_workspace({"services/api": pyproject("api", ["copyleft", "fine"])},
                          manifest=index_manifest(index) + "license:\n  deny: [AGPL-*]\n")
    assert run(root, "lock")[0] == 0
    index.reset()
    code, _out, err = run(root, "check")
    assert code == 1
    assert ("error: services/api/pylock.toml: copyleft 1.0 in api: AGPL-3.0-only is denied by "
            "license.deny (AGPL-3.0-only)\n"
            "hint: replace the package, or change `license:` in workspace.yaml\n") in err
    assert index.count() == 0  # check stays offline


def test_check_imports_no_governance_library_without_a_policy() -> None:
    # The check must succeed: one stopping early imports little and would pass.
    code = ("import sys\nfrom orchestrator.cli import main\n"
            f"try:\n    main(['-w', {str(REPO)!r}, '-q', 'check'])\n"
            "except SystemExit as exc:\n    assert exc.code in (0, None), exc.code\n"
            "heavy = [m for m in ('license_expression', 'cyclonedx', 'httpx', 'packageurl') "
            "if m in sys.modules]\nprint('HEAVY=' + ','.join(heavy))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "HEAVY="


def test_workspace_yaml_validates_governance_sections(make_workspace: MakeWorkspace) -> None:
    base = "version: 1\nname: demo\nmembers: [services/*]\n"
    cases = {
        "audit:\n  ignore:\n    - {id: X-1}\n": "audit.ignore[0].reason: missing; expected a "
        "string",
        "audit:\n  ignore:\n    - {id: X-1, reason: r, expires: soon}\n":
            "audit.ignore[0].expires: expected a date such as 2025-06-30, got string 'soon'",
        "audit:\n  fail-on: severe\n": "audit.fail-on: expected one of any, low, medium, high, "
        "critical, got string 'severe'",
        "policy:\n  require-upper-bounds: yes please\n":
            "policy.require-upper-bounds: expected true or false, got string 'yes please'",
        "policy:\n  upper-bounds: true\n": "policy.upper-bounds: unknown key",
    }
    for extra, message in cases.items():
        root = make_workspace({"services/api": pyproject("api")}, manifest=base + extra)
        code, _out, err = run(root, "check")
        assert code == 1 and message in err, (extra, err)
    root = make_workspace({"services/api": pyproject("api")}, manifest=base + (
        "audit:\n  db: advisories\n  ignore:\n    - {id: X-1, reason: r, expires: 2030-01-31}\n"
        "license:\n  allow: [MIT, BSD-*]\npolicy:\n  require-upper-bounds: false\n"))
    from orchestrator.workspace import load_workspace

    ws = load_workspace(root)
    assert ws.audit.db == root / "advisories"
    assert ws.audit.ignore[0].expires is not None and str(ws.audit.ignore[0].expires) == \
        "2030-01-31"
    assert ws.license.allow == ("MIT", "BSD-*")
    with (root / "services/api/pyproject.toml").open("rb") as fh:
        assert tomllib.load(fh)["project"]["name"] == "api"


@pytest.mark.parametrize("manifest_key", ["audit", "license", "policy"])
def test_sections_must_be_mappings(make_workspace: MakeWorkspace, manifest_key: str) -> None:
    root = make_workspace({"services/api": pyproject("api")},
                          manifest=f"version: 1\nname: demo\nmembers: [services/*]\n"
                          f"{manifest_key}: [1]\n")
    code, _out, err = run(root, "check")
    assert code == 1 and f"{manifest_key}: expected a mapping with" in err
