#!/usr/bin/env bash
# Pass the tests on a fresh machine: a venv with the dev extras, the real components
# the tests use (Docker engine, base image, loopback registry), then pytest.
# Usage: scripts/test.sh [PYTEST ARGS...]   (VENV=path to reuse a venv)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-$PWD/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi
"$VENV/bin/python" -m pip install -q -e '.[dev]'
export PATH="$VENV/bin:$PATH"

"$VENV/bin/python" -m pytest "$@"
