#!/usr/bin/env bash
# Stop the registry that scripts/registry-up.sh started on PORT (default 5000)
# and delete its storage.
#
#   scripts/registry-down.sh [PORT]
set -euo pipefail
# shellcheck source=scripts/_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

PORT=${1:-${ORCHESTRATOR_REGISTRY_PORT:-5000}}
[[ $PORT =~ ^[0-9]+$ ]] || die "usage: ${0##*/} [PORT]"
DIR=$ORCH_RUN_DIR/registry-$PORT

take_lock "registry-$PORT"
if pid=$(pid_of "$DIR/registry.pid" "$DIR/config.yml"); then
  stop_pid "$pid" "registry on 127.0.0.1:$PORT" 15
else
  log "no registry started by registry-up.sh runs on port $PORT"
fi
rm -rf "$DIR/storage" "$DIR/registry.pid"
if [[ $(env_file_get ORCHESTRATOR_TEST_REGISTRY || true) == "127.0.0.1:$PORT" ]]; then
  env_file_unset ORCHESTRATOR_TEST_REGISTRY
fi
