#!/usr/bin/env bash
# Stop what scripts/infra-up.sh started (only processes these scripts started,
# found by their pidfiles) and clear the env file. Images stay in the engine's
# data-root, so the next infra-up.sh is fast.
#
#   scripts/infra-down.sh [REGISTRY_PORT] [--purge]
#
# --purge also deletes the engine's data-root (images, build cache).
set -euo pipefail
# shellcheck source=scripts/_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

port=() purge=()
for a in "$@"; do
  case $a in
    --purge) purge=(--purge) ;;
    [0-9]*) port=("$a") ;;
    *) die "usage: ${0##*/} [REGISTRY_PORT] [--purge]" ;;
  esac
done

rc=0
"$ORCH_SCRIPTS/registry-down.sh" "${port[@]}" || rc=1
"$ORCH_SCRIPTS/docker-down.sh" "${purge[@]}" || rc=1
env_file_unset ORCHESTRATOR_TEST_BASE_IMAGE
env_file_unset ORCHESTRATOR_TEST_REGISTRY
if [[ $(env_file_get DOCKER_HOST || true) == "$ORCH_DOCKER_HOST" ]]; then
  env_file_unset DOCKER_HOST
fi
exit "$rc"
