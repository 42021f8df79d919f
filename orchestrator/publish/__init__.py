"""Members released as Python packages: built reproducibly, checked, uploaded.

- ``rewrite``: workspace dependencies become version ranges in pyproject.toml;
- ``archives``: sdists and wheels re-packed deterministically;
- ``package``: a member's sdist, then its wheel from that sdist (``orchestrator package``);
- ``checks``: what ``twine check`` asks of each file;
- ``credentials``: per repository, from the environment, ~/.pypirc or keyring;
- ``upload``: the legacy upload API (multipart ``file_upload``) over httpx;
- ``release``: the ``orchestrator publish`` run that ties them together.

Nothing here is imported at CLI start-up; the commands import what they use.
"""
