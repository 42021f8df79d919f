"""Adopting an existing repository: ``orchestrator init``.

``plan.plan_init`` works out the whole adoption in memory (members, kinds,
Python, indexes, converted pyproject.toml files, workspace.yaml) and
``plan.write_plan`` writes it all or nothing. The modules, in the order data
flows through them:

- ``discover``: every pyproject.toml under the directory, minus venvs, builds
  and git-ignored paths;
- ``layout``: member globs, each member's kind and the workspace Python, each
  with the reason ``init`` prints;
- ``indexes``: Poetry, uv and pdm sources as ordered workspace indexes and pins;
- ``poetry`` (with ``constraints``), ``uv``, ``pdm``, ``references``: one
  converter per tool, editing the file through ``tomledit`` (tomlkit);
- ``validate``: a converted ``[project]`` checked as core metadata;
- ``manifest``: workspace.yaml's text.

Existing pins from the old tools' lock files are read by ``locks`` (the first
``lock`` after ``init`` prefers them); ``init`` itself never touches a lock file.
"""
