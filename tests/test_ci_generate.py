"""`ci generate`, `ci child` and `ci check`: real validators, references, structure, bytes."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from orchestrator import report
from orchestrator.ci.generate import SYSTEMS, CiOptions, gitlab_child, render
from orchestrator.graph import affected_since
from orchestrator.workspace import load_workspace
from tests.conftest import MakeWorkspace, pyproject
from tests.support.cli import run as orch

AUDIT = "audit:\n  fail-on: high\n"


@pytest.fixture
def shop(make_workspace: MakeWorkspace) -> Path:
    """Two services sharing a library, plus an unrelated service."""
    return make_workspace({
        "libs/common": pyproject("common", ["attrs"]),
        "services/api": pyproject("api", ["common", "httpx"], tool='kind = "service"'),
        "services/web": pyproject("web", ["requests"]),
    }, manifest="version: 1\nname: shop\npython: \"3.11\"\nplatforms: [linux/amd64]\n"
       "members: [services/*, libs/*]\nimage:\n  registry: ghcr.io/acme\n")


def validate(schema: str, *files: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema,
         *map(str, files)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def generated(root: Path, system: str, *args: str) -> Path:
    code, _, err = orch(root, "ci", "generate", system, *args)
    assert code == 0, err
    name = {"github": ".github/workflows/orchestrator.yml", "gitlab": ".gitlab-ci.yml",
            "bitbucket": "bitbucket-pipelines.yml", "jenkins": "Jenkinsfile"}[system]
    return root / name


# -- real validators ---------------------------------------------------------------------------


@pytest.mark.parametrize("publish", [False, True])
def test_github_workflow_validates(shop: Path, publish: bool) -> None:
    file = generated(shop, "github", *(["--publish"] if publish else []))
    validate("vendor.github-workflows", file)


def test_gitlab_parent_and_child_validate(shop: Path, tmp_path: Path) -> None:
    parent = generated(shop, "gitlab", "--publish")
    child = tmp_path / "child.yml"
    code, _, err = orch(shop, "ci", "child", "--all", "--publish", "-o", str(child))
    assert code == 0, err
    empty = tmp_path / "empty.yml"
    ws = load_workspace(shop)
    empty.write_text(gitlab_child(ws, CiOptions("gitlab", ".gitlab-ci.yml"), []))
    validate("vendor.gitlab-ci", parent, child, empty)
    jobs = yaml.safe_load(child.read_text())
    assert sorted(k for k in jobs if k.startswith("service:")) == ["service:api", "service:web"]
    assert jobs["service:api"]["cache"]["key"]["files"] == ["services/api/pylock.toml",
                                                            "workspace.yaml"]
    assert sorted(jobs["gate"]["needs"]) == ["service:api", "service:web"]
    assert "needs" not in yaml.safe_load(empty.read_text())["gate"]
    trigger = yaml.safe_load(parent.read_text())["service-pipeline"]["trigger"]
    assert trigger["include"] == [{"artifact": "orchestrator-child.yml", "job": "plan"}]


@pytest.mark.parametrize("publish", [False, True])
def test_bitbucket_pipeline_validates(shop: Path, publish: bool) -> None:
    file = generated(shop, "bitbucket", *(["--publish"] if publish else []))
    validate("vendor.bitbucket-pipelines", file)
    doc = yaml.safe_load(file.read_text())
    steps = doc["pipelines"]["branches"]["main"][0]["parallel"]
    assert [s["step"]["name"] for s in steps] == ["api", "web"]
    assert ("tags" in doc["pipelines"]) == publish
    # Each step plans and skips itself when its service is not affected.
    assert "if ! grep -qx api plan.txt; then" in steps[0]["step"]["script"][2]


# -- what the schema cannot see: references between GitHub jobs ------------------------------


NEEDS_REF = re.compile(r"needs\.([\w-]+)\.outputs\.([\w-]+)")
MATRIX_REF = re.compile(r"(?<![.\w])matrix\.([\w-]+)")
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}")
STEPS_REF = re.compile(r"steps\.([\w-]+)\.outputs\.([\w-]+)")


def strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


@pytest.mark.parametrize("publish", [False, True])
def test_github_references_are_defined_by_the_jobs_they_name(shop: Path, publish: bool) -> None:
    file = generated(shop, "github", *(["--publish"] if publish else []))
    jobs = yaml.safe_load(file.read_text())["jobs"]
    ws = load_workspace(shop)
    rows = yaml.safe_load(report.matrix_github(report.matrix_entries(
        ws, affected_since(ws, None))))["include"]
    matrix_keys = set(rows[0])
    seen_needs = seen_matrix = 0
    for name, job in jobs.items():
        needs = job.get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        assert all(n in jobs for n in needs), (name, needs)
        text = [e.group(1) for s in strings(job) for e in EXPRESSION.finditer(s)]
        for ref in (m for s in text for m in NEEDS_REF.finditer(s)):
            seen_needs += 1
            assert ref.group(1) in needs, f"{name} uses {ref.group(0)} without needing it"
            assert ref.group(2) in jobs[ref.group(1)].get("outputs", {}), ref.group(0)
        for ref in (m for s in text for m in MATRIX_REF.finditer(s)):
            seen_matrix += 1
            assert "matrix" in job.get("strategy", {}), f"{name} has no matrix"
            assert ref.group(1) in matrix_keys, f"{name}: {ref.group(0)} is not a matrix key"
        step_ids = {s.get("id") for s in job.get("steps", [])}
        for ref in (m for s in strings(job.get("outputs", {})) for m in STEPS_REF.finditer(s)):
            assert ref.group(1) in step_ids, f"{name}: no step {ref.group(1)}"
    assert seen_needs >= 2 and seen_matrix >= 3
    gate = jobs["gate"]
    assert set(gate["needs"]) == set(jobs) - {"gate"}
    assert gate["if"] == "${{ always() }}"


# -- Jenkins: the declarative structure ------------------------------------------------------


@dataclass
class Block:
    head: str
    lines: list[str] = field(default_factory=list)
    children: list[Block] = field(default_factory=list)

    def child(self, head: str) -> Block:
        found = [c for c in self.children if c.head == head]
        assert len(found) == 1, (head, [c.head for c in self.children])
        return found[0]

    def text(self) -> str:
        return "\n".join(self.lines + [c.text() for c in self.children])


def parse_groovy(text: str) -> Block:
    """Blocks by `head {` ... `}`, skipping strings, ''' strings and // comments."""
    root = Block("")
    stack = [root]
    in_triple = False
    for raw in text.splitlines():
        line = raw.strip()
        if in_triple:
            in_triple = not line.endswith("'''")
            stack[-1].lines.append(line)
            continue
        if line.startswith("//") or not line:
            continue
        code = re.sub(r"'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"", "S", line)
        if code.endswith("'''") or code.count("'''") % 2:
            in_triple = True
        if code.startswith("}") and code.endswith("{"):  # `} else {`
            stack.pop()
            block = Block(line.lstrip("} ").rstrip(" {"))
            stack[-1].children.append(block)
            stack.append(block)
        elif code.endswith("{"):
            block = Block(line[:-1].strip())
            stack[-1].children.append(block)
            stack.append(block)
        elif code == "}":
            stack.pop()
            assert stack, "unbalanced braces"
        else:
            stack[-1].lines.append(line)
    assert stack == [root] and not in_triple, "unclosed block"
    return root


@pytest.mark.parametrize("publish", [False, True])
def test_jenkinsfile_declarative_stages(shop: Path, publish: bool) -> None:
    file = generated(shop, "jenkins", *(["--publish"] if publish else []))
    text = file.read_text()
    assert text.startswith("// generated by orchestrator ci generate jenkins -o Jenkinsfile")
    pipeline = parse_groovy(text).child("pipeline")
    assert "agent any" in pipeline.lines
    assert "disableConcurrentBuilds(abortPrevious: true)" in pipeline.child("options").lines
    assert any(line.startswith("ORCHESTRATOR_CACHE_DIR =")
               for line in pipeline.child("environment").lines)
    stages = pipeline.child("stages")
    names = [c.head for c in stages.children]
    expected = ["stage('plan')", "stage('services')", "stage('gate')"]
    if publish:
        expected.insert(2, "stage('publish')")
    assert names == expected
    for stage in stages.children:
        assert stage.child("steps")
    plan = stages.child("stage('plan')").child("steps").text()
    assert "--format jenkins" in plan and "--all" in plan
    services = stages.child("stage('services')").child("steps").child("script")
    assert "parallel branches" in services.text()
    body = services.text()
    for command in ("orchestrator lock --check", "orchestrator check",
                    'orchestrator sync "$SERVICE"', 'orchestrator build "$SERVICE" --push'):
        assert command in body
    if publish:
        publish_stage = stages.child("stage('publish')")
        assert "when { buildingTag() }" in publish_stage.lines


# -- bytes, headers and staleness ---------------------------------------------------------------


@pytest.mark.parametrize("system", SYSTEMS)
def test_generate_twice_gives_identical_bytes(shop: Path, system: str) -> None:
    first = generated(shop, system, "--python", "3.12").read_bytes()
    second = generated(shop, system, "--python", "3.12").read_bytes()
    assert first == second
    assert f"ci generate {system} -o ".encode() in first.splitlines()[0]
    assert b"regenerate with `orchestrator ci generate " in first.splitlines()[0]
    assert b"3.12" in first


def test_ci_check_fails_after_a_member_is_added(shop: Path) -> None:
    files = [generated(shop, s) for s in SYSTEMS]
    code, out, err = orch(shop, "ci", "check")
    assert code == 0, err
    assert out.count("is current") == 4
    code, _, err = orch(shop, "new", "service", "billing")
    assert code == 0, err
    code, out, err = orch(shop, "ci", "check", str(files[0]))
    assert code == 1
    assert f"error: {files[0]} is stale" in err
    assert "hint: run `orchestrator ci generate github -o .github/workflows/orchestrator.yml`" \
        in err
    code, _, err = orch(shop, "ci", "check")
    assert code == 1 and err.count("is stale") == 4


def test_ci_check_rejects_a_file_it_did_not_write(shop: Path) -> None:
    (shop / ".gitlab-ci.yml").write_text("stages: [test]\n")
    code, _, err = orch(shop, "ci", "check", str(shop / ".gitlab-ci.yml"))
    assert code == 1
    assert "was not written by `orchestrator ci generate` (no header)" in err


def test_ci_check_of_a_binary_file_is_an_error_not_a_traceback(shop: Path) -> None:
    (shop / "Jenkinsfile").write_bytes(b"\xff\xfe\x00binary")
    code, _, err = orch(shop, "ci", "check", str(shop / "Jenkinsfile"))
    assert code == 1
    assert err == (f"error: cannot read {shop / 'Jenkinsfile'}: it is not UTF-8 text\n"
                   "hint: pass a file `orchestrator ci generate` wrote\n")


def test_a_bitbucket_step_quotes_a_service_path_with_a_space(make_workspace: MakeWorkspace,
                                                             tmp_path: Path) -> None:
    root = make_workspace({"services/my api": pyproject("api", tool='kind = "service"')},
                          manifest="version: 1\nname: shop\nmembers: [services/*]\n")
    doc = yaml.safe_load(generated(root, "bitbucket").read_text())
    (step,) = doc["pipelines"]["branches"]["main"][0]["parallel"]
    export = step["step"]["script"][3].splitlines()[0]
    assert export == "export SERVICE=api SERVICE_PATH='services/my api'"
    shown = subprocess.run(["bash", "-c", f'{export}; echo "$SERVICE_PATH"'],
                           capture_output=True, text=True, check=True).stdout
    assert shown == "services/my api\n"


def test_audit_only_when_configured(shop: Path) -> None:
    assert "orchestrator audit" not in generated(shop, "github").read_text()
    manifest = shop / "workspace.yaml"
    manifest.write_text(manifest.read_text() + AUDIT)
    assert 'orchestrator audit "$SERVICE"' in generated(shop, "github").read_text()


def test_registry_login_only_for_a_remote_registry(shop: Path, tmp_path: Path) -> None:
    doc = yaml.safe_load(generated(shop, "github").read_text())
    script = doc["jobs"]["service"]["steps"][-1]["run"]
    login = script[script.index("python - <<'PY'"):script.index("\nPY\n") + 4]
    # The login the job runs writes the Docker config that push and reuse read.
    env = {"HOME": str(tmp_path), "REGISTRY_USER": "ci", "REGISTRY_PASSWORD": "s3cret",
           "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    done = subprocess.run(["bash", "-c", login], env=env, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    config = (tmp_path / ".docker" / "config.json").read_text()
    assert config == '{"auths": {"ghcr.io": {"auth": "Y2k6czNjcmV0"}}}'
    for loopback in ("127.0.0.1:5000", "localhost:5000", "[::1]:5000", "127.0.0.2"):
        local = generated(shop, "github", "--registry", loopback).read_text()
        assert "python - <<'PY'" not in local and "REGISTRY_PASSWORD" not in local, loopback
    remote = generated(shop, "github", "--registry", "localhost.example.com").read_text()
    assert "REGISTRY_PASSWORD" in remote  # a name that starts like localhost is not it


# -- matrix formats ------------------------------------------------------------------------------


def test_matrix_bitbucket_and_jenkins_formats(shop: Path) -> None:
    code, out, err = orch(shop, "matrix", "--all", "--format", "bitbucket")
    assert code == 0, err
    assert out == "web\napi\n"  # build order: api waits for its library
    code, out, err = orch(shop, "matrix", "--all", "--format", "jenkins")
    assert code == 0, err
    assert out == ("web\tservices/web\tghcr.io/acme/web\t1.0.0\n"
                   "api\tservices/api\tghcr.io/acme/api\t1.0.0\n")


def test_render_matches_the_cli(shop: Path) -> None:
    ws = load_workspace(shop)
    for system in SYSTEMS:
        file = generated(shop, system)
        options = CiOptions(system, file.relative_to(shop).as_posix())
        assert render(ws, options) == file.read_text()
