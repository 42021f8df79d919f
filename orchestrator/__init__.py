"""orchestrator: plan, lock, install and build the services of a Python monorepo."""

from __future__ import annotations

__version__ = "0.1.0"
