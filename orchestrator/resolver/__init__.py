"""Resolve a member's dependencies for the workspace's target environments.

``resolve()`` runs resolvelib once per target (a CPython version on a Linux
platform, never the host), over the member's main dependencies, all its
dependency groups and all its own extras together, then folds the answers
into lock entries with PEP 751 markers. The pieces:

* ``core``: ``resolve()`` itself, ``Resolution`` and ``UsedRequirement``;
* ``environment``: marker values and wheel tags of a target;
* ``catalog``: the ``PackageFinder`` protocol and a per-run cache over it;
* ``provider``: requirements, candidates and the resolvelib provider;
* ``explain``: the human text of a failed resolution;
* ``origin``: main, a dependency group or an extra, where a root requirement is from;
* ``merge``: per-target answers to ``ResolvedPackage`` entries.

The names below are imported on first use (module ``__getattr__``): a command
that needs only ``environment`` (selecting a lock's packages for a sync) then
imports neither resolvelib nor the provider's requirement parsing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.resolver.catalog import Catalog, PackageFinder
    from orchestrator.resolver.core import Resolution, UsedRequirement, resolve
    from orchestrator.resolver.merge import ResolvedPackage

__all__ = ["Catalog", "PackageFinder", "Resolution", "ResolvedPackage", "UsedRequirement",
           "resolve"]

# exported name -> the submodule that defines it
_HOMES = {
    "Catalog": "catalog",
    "PackageFinder": "catalog",
    "Resolution": "core",
    "UsedRequirement": "core",
    "resolve": "core",
    "ResolvedPackage": "merge",
}


def __getattr__(name: str) -> object:
    """The re-exported names, each imported from its submodule when first asked for."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
