"""Where templates come from: the workspace's own templates/, else the ones shipped.

Both `new` (templates/new/) and the image builder (templates/docker/) read here.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from orchestrator.errors import WorkspaceError
from orchestrator.models import Workspace

# The package whose data are the templates/ directory at the top of orchestrator's own
# repository (pyproject.toml maps it there): site-packages/orchestrator/_templates in a
# regular install, the checkout's templates/ in an editable one.
BUNDLED_TEMPLATES = "orchestrator._templates"


def templates_dir(workspace: Workspace, *parts: str) -> Path:
    """templates/<parts> of the workspace when it has that directory, else the bundled one.

    A workspace overrides directory by directory: its own templates/docker/ is used
    for images while `new` still finds the bundled templates/new/.
    """
    own = workspace.root.joinpath("templates", *parts)
    if own.is_dir():
        return own
    return bundled_templates().joinpath(*parts)


def bundled_templates() -> Path:
    """The templates shipped with orchestrator, found through importlib.resources."""
    try:
        root = resources.files(BUNDLED_TEMPLATES)
    except ModuleNotFoundError as exc:
        raise WorkspaceError(
            f"orchestrator's own templates ({BUNDLED_TEMPLATES}) are not installed",
            hint="install orchestrator with `pip install` (or `pip install -e` for a checkout),"
                 " or give the workspace its own templates/") from exc
    if not isinstance(root, Path):  # a zip import: the renderers need real files
        raise WorkspaceError(f"orchestrator's own templates at {root} are not a directory",
                             hint="install orchestrator unpacked, with `pip install`")
    return root
