"""An audit as SARIF 2.1.0, for code-scanning dashboards (GitHub, GitLab, Azure DevOps).

One rule per advisory (its ID; the severity as ``security-severity``, which
GitHub ranks by), one result per finding, located at the package's entry in
the member's pylock.toml. A finding that fails the run is an ``error``, one
that does not a ``warning``, and an ignored one carries its reason as an
external suppression.
"""

from __future__ import annotations

from orchestrator import __version__
from orchestrator.governance.audit import AuditReport, Finding, lock_line
from orchestrator.models import Member

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://ossf.github.io/osv-schema/"
# A band's middle, for advisories rated by a database word instead of a CVSS score.
_BAND_SCORES = {"none": 0.0, "low": 2.0, "medium": 5.5, "high": 8.0, "critical": 9.5}


def to_sarif(report: AuditReport) -> dict[str, object]:
    rules: dict[str, dict[str, object]] = {}
    results: list[dict[str, object]] = []
    for member_audit in report.members:
        for finding in member_audit.findings:
            rules.setdefault(finding.id, _rule(finding))
            results.append(_result(report, member_audit.member, finding))
    driver: dict[str, object] = {"name": "orchestrator", "version": __version__,
                                 "informationUri": INFORMATION_URI,
                                 "rules": [rules[k] for k in sorted(rules)]}
    run: dict[str, object] = {"tool": {"driver": driver}, "results": results,
                              "properties": {"advisorySource": report.source}}
    return {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}


def _rule(finding: Finding) -> dict[str, object]:
    text = finding.summary or f"{finding.id} affects {finding.package}"
    properties: dict[str, object] = {"tags": ["security", "vulnerability", "dependency"]}
    score = finding.score if finding.score is not None else _BAND_SCORES.get(finding.severity)
    if score is not None:
        properties["security-severity"] = f"{score:.1f}"
    rule: dict[str, object] = {"id": finding.id, "shortDescription": {"text": text},
                               "properties": properties}
    if finding.url:
        rule["helpUri"] = finding.url
    return rule


def _result(report: AuditReport, member: Member, finding: Finding) -> dict[str, object]:
    fix = f"; upgrade to {finding.fix}" if finding.fix else "; no fixed version is known"
    aliases = f" ({', '.join(finding.aliases)})" if finding.aliases else ""
    message = (f"{finding.package} {finding.version} in {member.name} is affected by "
               f"{finding.id}{aliases}, severity {finding.severity}{fix}")
    uri = f"{member.relpath}/pylock.toml".removeprefix("./")
    result: dict[str, object] = {
        "ruleId": finding.id,
        "level": "error" if finding.fails(report.fail_on) else "warning",
        "message": {"text": message},
        "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": uri},
            "region": {"startLine": lock_line(member, finding.package)}}}],
        "partialFingerprints": {"package/advisory": f"{member.name}/{finding.package}/"
                                f"{finding.version}/{finding.id}"},
    }
    if finding.ignored is not None:
        result["suppressions"] = [{"kind": "external", "justification": finding.ignored.reason}]
    return result
