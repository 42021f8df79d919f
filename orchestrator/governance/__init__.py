"""Governance over the locks: vulnerability audit, license policy, SBOMs, and `check`'s secrets.

``osv`` reads advisories in the OSV format (a directory, a zip export, or the
OSV API) and ``audit`` matches them against each member's locked packages;
``cvss`` turns a CVSS vector into a severity; ``licenses`` reads each locked
package's license from its core metadata and applies the workspace's policy;
``sbom`` writes CycloneDX (and SPDX) documents from a lock; ``secrets`` and
``drift`` are what `check` runs over pyproject.toml, workspace.yaml and each
member's .venv. Nothing here is imported by `--help` or a plain `check`.
"""
