#!/usr/bin/env bash
# Start every real component the tests need and record them in the env file
# (<repo>/.orchestrator-infra/env, KEY=value lines):
#
#   DOCKER_HOST                   docker engine (scripts/docker-up.sh)
#   ORCHESTRATOR_TEST_BASE_IMAGE  local python base image (scripts/base-image.sh)
#   ORCHESTRATOR_TEST_REGISTRY    loopback OCI registry (scripts/registry-up.sh)
#   ORCHESTRATOR_TEST_BASE_IMAGE_ARM64  linux/arm64 base, run under qemu (base-image.sh --arch)
#
# Usage:  scripts/infra-up.sh [REGISTRY_PORT]
#         set -a; . .orchestrator-infra/env; set +a
# The same KEY=value lines are printed on stdout. Idempotent; a warm run takes
# about a second. Stop with scripts/infra-down.sh.
set -euo pipefail
# shellcheck source=scripts/_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

t0=$(now_ms)
# On a fresh machine, install what the steps below will need in one apt-get run.
if [[ $(id -u) -eq 0 ]]; then
  pkgs=()
  command -v curl >/dev/null || pkgs+=(curl)
  command -v docker-registry >/dev/null || pkgs+=(docker-registry)
  # skopeo and umoci check the OCI layouts of `build --engine oci` (tests/test_oci.py).
  command -v skopeo >/dev/null || pkgs+=(skopeo)
  command -v umoci >/dev/null || pkgs+=(umoci)
  if ! command -v dockerd >/dev/null && [[ -z ${DOCKER_HOST:-} ]] &&
    ! docker_answers unix:///var/run/docker.sock; then
    pkgs+=(docker.io)
  fi
  if ! command -v mmdebstrap >/dev/null &&
    ! compgen -G "$ORCH_CACHE_DIR/base/*.tar" >/dev/null; then
    pkgs+=(mmdebstrap)
  fi
  ((${#pkgs[@]} == 0)) || apt_install "${pkgs[@]}"
fi
t=$(now_ms)
DOCKER_HOST=$("$ORCH_SCRIPTS/docker-up.sh" | tail -n 1)
export DOCKER_HOST
log "docker engine: $DOCKER_HOST ($(elapsed "$t"))"

t=$(now_ms)
base=$("$ORCH_SCRIPTS/base-image.sh" | tail -n 1)
log "base image: $base ($(elapsed "$t"))"

# linux/arm64 under qemu (tests/test_oci_arm64.py): binfmt_misc, then an arm64 base;
# about 4 minutes the first time, cached after. ORCHESTRATOR_NO_ARM64=1 leaves it out;
# where emulation is not permitted it is left out with a message, not an error.
if [[ -z ${ORCHESTRATOR_NO_ARM64:-} && $(uname -m) != aarch64 ]]; then
  t=$(now_ms)
  if base_arm64=$("$ORCH_SCRIPTS/base-image.sh" --arch arm64 | tail -n 1); then
    log "arm64 base image: $base_arm64 ($(elapsed "$t"))"
  else
    log "arm64 base image: not available; the arm64 tests will skip ($(elapsed "$t"))"
  fi
fi

t=$(now_ms)
registry=$("$ORCH_SCRIPTS/registry-up.sh" "$@" | tail -n 1)
log "registry: $registry ($(elapsed "$t"))"

# The component scripts have recorded these already; set them together again so
# the file is complete even if it was edited in between.
env_file_set DOCKER_HOST "$DOCKER_HOST"
env_file_set ORCHESTRATOR_TEST_BASE_IMAGE "$base"
env_file_set ORCHESTRATOR_TEST_REGISTRY "$registry"
log "infrastructure up in $(elapsed "$t0"); env file: $ORCH_ENV_FILE"
printf 'DOCKER_HOST=%s\nORCHESTRATOR_TEST_BASE_IMAGE=%s\nORCHESTRATOR_TEST_REGISTRY=%s\n' \
  "$DOCKER_HOST" "$base" "$registry"
