#!/usr/bin/env bash
# Stop the dockerd that scripts/docker-up.sh started (found by its pidfile);
# never touches an engine this project did not start.
#
#   scripts/docker-down.sh [--purge]
#
# --purge also deletes its data-root (all images, containers and build cache).
set -euo pipefail
# shellcheck source=scripts/_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

DATA_ROOT=${ORCHESTRATOR_DOCKER_DATA_ROOT:-$ORCH_STATE_DIR/docker}
EXEC_ROOT=$ORCH_RUN_DIR/docker-exec
PIDFILE=$ORCH_RUN_DIR/dockerd.pid
purge=0
case ${1:-} in
  --purge) purge=1 ;;
  "") ;;
  *) die "usage: ${0##*/} [--purge]" ;;
esac

take_lock docker
if pid=$(pid_of "$PIDFILE" "$ORCH_DOCKER_SOCK"); then
  # dockerd stops its containers (up to 15 s each) and its containerd on SIGTERM.
  stop_pid "$pid" dockerd 60
else
  log "no dockerd started by docker-up.sh is running"
fi
# A dockerd that was killed hard may leave its containerd behind.
if cpid=$(pid_of "$EXEC_ROOT/containerd/containerd.pid" "$EXEC_ROOT"); then
  stop_pid "$cpid" containerd 15
fi
# dockerd leaves its default netns handle mounted under the exec-root.
if [[ -z $(pid_of "$PIDFILE" "$ORCH_DOCKER_SOCK" || true) ]]; then
  awk -v root="$EXEC_ROOT/" 'index($2, root) == 1 { print $2 }' /proc/self/mounts | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
fi
rm -f "$PIDFILE" "$ORCH_DOCKER_SOCK"
if [[ $(env_file_get DOCKER_HOST || true) == "$ORCH_DOCKER_HOST" ]]; then
  env_file_unset DOCKER_HOST
fi

if ((purge)); then
  if grep -qF " $DATA_ROOT/" /proc/self/mounts; then
    die "mounts remain under $DATA_ROOT; not deleting it"
  fi
  rm -rf "$DATA_ROOT"
  log "deleted $DATA_ROOT"
fi
