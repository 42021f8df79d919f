#!/usr/bin/env bash
# Make sure a Docker engine answers; print its DOCKER_HOST value as the last line
# of stdout:
#
#   export DOCKER_HOST=$(scripts/docker-up.sh | tail -1)
#
# - DOCKER_HOST already set (and not ours): use it if it answers, else fail.
# - our dockerd already running: reuse it.
# - the default socket (/var/run/docker.sock) answers: use it.
# - otherwise (root, Debian): install docker.io if needed and start our own
#   dockerd with no bridge and no iptables, its own data-root, exec-root, pidfile
#   and socket (default unix:///run/orchestrator-docker.sock). Stop it with
#   scripts/docker-down.sh.
#
# Environment: ORCHESTRATOR_DOCKER_SOCK, ORCHESTRATOR_DOCKER_DATA_ROOT,
# ORCHESTRATOR_DOCKER_STORAGE_DRIVER (default: overlay2 when an overlay mount
# works on the data-root's filesystem, else vfs), ORCHESTRATOR_DOCKER_TIMEOUT
# (seconds to wait for the engine, default 60), and those listed in _lib.sh.
set -euo pipefail
# shellcheck source=scripts/_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

DATA_ROOT=${ORCHESTRATOR_DOCKER_DATA_ROOT:-$ORCH_STATE_DIR/docker}
EXEC_ROOT=$ORCH_RUN_DIR/docker-exec
PIDFILE=$ORCH_RUN_DIR/dockerd.pid
LOGFILE=$ORCH_RUN_DIR/dockerd.log
CONFIG=$ORCH_RUN_DIR/dockerd.json
TIMEOUT=${ORCHESTRATOR_DOCKER_TIMEOUT:-60}

use_host() {
  env_file_set DOCKER_HOST "$1"
  printf '%s\n' "$1"
  exit 0
}

# 1. An explicit DOCKER_HOST that is not ours wins.
if [[ -n ${DOCKER_HOST:-} && $DOCKER_HOST != "$ORCH_DOCKER_HOST" ]]; then
  docker_answers "$DOCKER_HOST" && use_host "$DOCKER_HOST"
  die "DOCKER_HOST=$DOCKER_HOST is set but no docker engine answers there; fix it, or unset DOCKER_HOST to let this script start its own engine"
fi

# 2. Ours, already running.
if pid_of "$PIDFILE" "$ORCH_DOCKER_SOCK" >/dev/null && docker_answers "$ORCH_DOCKER_HOST"; then
  use_host "$ORCH_DOCKER_HOST"
fi

# 3. The system's default engine.
if [[ -z ${DOCKER_HOST:-} ]] && docker_answers "unix:///var/run/docker.sock"; then
  log "using the engine at the default socket /var/run/docker.sock"
  use_host "unix:///var/run/docker.sock"
fi

# 4. Start our own.
need_root "starting dockerd"
take_lock docker
# Another run may have started it while we waited for the lock.
if pid_of "$PIDFILE" "$ORCH_DOCKER_SOCK" >/dev/null && docker_answers "$ORCH_DOCKER_HOST"; then
  use_host "$ORCH_DOCKER_HOST"
fi
t0=$(now_ms)

if ! command -v dockerd >/dev/null; then
  # docker.io brings containerd, runc, tini (docker-init) and iptables (a hard
  # dependency, unused here: we run with --iptables=false).
  apt_install docker.io
fi
command -v docker >/dev/null || die "no docker client on PATH after installing docker.io"

if pid=$(pid_of "$PIDFILE" "$ORCH_DOCKER_SOCK"); then
  # Running but not answering (yet): give it the usual time, then report.
  log "dockerd (pid $pid) is running but does not answer yet; waiting"
else
  mkdir -p "$DATA_ROOT" "$EXEC_ROOT" "$ORCH_RUN_DIR"

  driver=${ORCHESTRATOR_DOCKER_STORAGE_DRIVER:-}
  if [[ -z $driver ]]; then
    # overlay2 needs an overlay mount to work on the data-root's filesystem
    # (it does not on overlayfs itself, e.g. when nested in a container).
    driver=vfs
    probe=$(mktemp -d "$DATA_ROOT/.overlay-probe.XXXXXX")
    mkdir -p "$probe"/{lower,upper,work,merged}
    if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" \
      "$probe/merged" 2>/dev/null; then
      umount "$probe/merged"
      driver=overlay2
    fi
    rm -rf "$probe"
  fi
  [[ $driver == vfs ]] && log "overlay mounts do not work under $DATA_ROOT; using the (slow, space-hungry) vfs storage driver"

  # Our own (empty) config file, so a system /etc/docker/daemon.json can't interfere.
  printf '{}\n' >"$CONFIG"
  rm -f "$ORCH_DOCKER_SOCK"
  log "starting dockerd (storage driver $driver, data-root $DATA_ROOT, log $LOGFILE)"
  {
    printf '\n=== %s docker-up.sh starting dockerd\n' "$(date -u +%FT%TZ)"
  } >>"$LOGFILE"
  setsid dockerd \
    --config-file "$CONFIG" \
    -H "$ORCH_DOCKER_HOST" \
    --data-root "$DATA_ROOT" \
    --exec-root "$EXEC_ROOT" \
    --pidfile "$PIDFILE" \
    --storage-driver "$driver" \
    --bridge=none \
    --iptables=false \
    --ip6tables=false \
    --ip-forward=false \
    --ip-masq=false \
    >>"$LOGFILE" 2>&1 </dev/null 9>&- &
  pid=$!
fi

for ((i = 0; i < TIMEOUT * 5; i++)); do
  if docker_answers "$ORCH_DOCKER_HOST"; then
    log "dockerd answers at $ORCH_DOCKER_HOST ($(DOCKER_HOST=$ORCH_DOCKER_HOST docker version --format 'engine {{.Server.Version}}, API {{.Server.APIVersion}}' 2>/dev/null)) after $(elapsed "$t0")"
    use_host "$ORCH_DOCKER_HOST"
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    log "dockerd exited; last lines of $LOGFILE:"
    tail -n 25 "$LOGFILE" >&2 || true
    die "dockerd failed to start"
  fi
  sleep 0.2
done
log "last lines of $LOGFILE:"
tail -n 25 "$LOGFILE" >&2 || true
die "dockerd (pid $pid) did not answer at $ORCH_DOCKER_HOST within ${TIMEOUT}s"
