#!/usr/bin/env bash
# Pass the tests on a fresh machine: a venv with the dev extras, the real components
# the tests use (a Docker engine, a local Debian base image with python3, a registry
# on 127.0.0.1; scripts/infra-up.sh installs and starts them as root on Debian), then
# pytest. What this script started is stopped again at the end.
#
#   scripts/test.sh [PYTEST ARGS...]
#   VENV=path            reuse that venv instead of .venv
#   ORCHESTRATOR_NO_INFRA=1   skip the components (docker tests are then skipped)
#   ORCHESTRATOR_KEEP_INFRA=1 leave them running afterwards
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-$PWD/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi
"$VENV/bin/python" -m pip install -q -e '.[dev]'
export PATH="$VENV/bin:$PATH"

if [ -z "${ORCHESTRATOR_NO_INFRA:-}" ]; then
    # Stop afterwards only what this run starts: nothing was running if our pidfiles
    # are absent (scripts/_lib.sh keeps them under /run/orchestrator-infra).
    run_dir="${ORCHESTRATOR_INFRA_RUN:-/run/orchestrator-infra}"
    started=1
    if ls "$run_dir"/dockerd.pid "$run_dir"/registry-*/*.pid >/dev/null 2>&1; then
        started=0
    fi
    set -a
    # shellcheck disable=SC1090
    . <(scripts/infra-up.sh)
    set +a
    if [ "$started" = 1 ] && [ -z "${ORCHESTRATOR_KEEP_INFRA:-}" ]; then
        trap 'scripts/infra-down.sh >/dev/null 2>&1 || true' EXIT
    fi
fi

# An isolated wheel cache per run: tests must not depend on what a developer cached.
export ORCHESTRATOR_CACHE_DIR="${ORCHESTRATOR_CACHE_DIR:-$(mktemp -d)/cache}"
"$VENV/bin/python" -m pytest "$@"
