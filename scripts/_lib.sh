# shellcheck shell=bash disable=SC2034
# Shared helpers for the infra scripts in this directory. Source it, don't run it.
#
# Layout (each path can be overridden by the environment variable named beside it):
#   state (docker data-root)      ORCHESTRATOR_INFRA_STATE   /var/lib/orchestrator-infra
#   runtime (pids, logs, sockets) ORCHESTRATOR_INFRA_RUN     /run/orchestrator-infra
#   cache (base rootfs tarballs)  ORCHESTRATOR_INFRA_CACHE   /var/cache/orchestrator-infra
#   env file for tests and CI     ORCHESTRATOR_INFRA_ENV_FILE <repo>/.orchestrator-infra/env
#   our dockerd's socket          ORCHESTRATOR_DOCKER_SOCK   /run/orchestrator-docker.sock

ORCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ORCH_SCRIPTS="$ORCH_ROOT/scripts"
ORCH_STATE_DIR=${ORCHESTRATOR_INFRA_STATE:-/var/lib/orchestrator-infra}
ORCH_RUN_DIR=${ORCHESTRATOR_INFRA_RUN:-/run/orchestrator-infra}
ORCH_CACHE_DIR=${ORCHESTRATOR_INFRA_CACHE:-/var/cache/orchestrator-infra}
ORCH_ENV_FILE=${ORCHESTRATOR_INFRA_ENV_FILE:-$ORCH_ROOT/.orchestrator-infra/env}
ORCH_DOCKER_SOCK=${ORCHESTRATOR_DOCKER_SOCK:-/run/orchestrator-docker.sock}
ORCH_DOCKER_HOST="unix://$ORCH_DOCKER_SOCK"
ORCH_DEFAULT_BASE_TAG="orchestrator/python-base:3.11-bookworm"

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# Milliseconds since the epoch, for timings.
now_ms() { date +%s%3N; }
# Seconds elapsed since a now_ms value, one decimal.
elapsed() { local t=$(( $(now_ms) - $1 )); printf '%d.%ds' $((t / 1000)) $(((t % 1000) / 100)); }

need_root() {
  [[ $(id -u) -eq 0 ]] || die "$1 needs root (run as root, or start the component yourself)"
}

# Take an exclusive lock for the rest of the script (fd 9), so that two runs of
# the same script don't race.
take_lock() {
  mkdir -p "$ORCH_RUN_DIR"
  exec 9>"$ORCH_RUN_DIR/$1.lock"
  if ! flock -n 9; then
    log "waiting for another run of $1 to finish (lock $ORCH_RUN_DIR/$1.lock)"
    flock -w 600 9 || die "timed out waiting for lock $ORCH_RUN_DIR/$1.lock"
  fi
}

# apt_install PKG...: install Debian packages that are not installed yet, without
# starting their services. Runs `apt-get update` only when needed.
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  need_root "installing ${missing[*]}"
  command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} by hand"
  local apt=(apt-get -q -o DPkg::Lock::Timeout=600)
  local policy
  policy=$(apt-cache policy "${missing[@]}" 2>/dev/null || true)
  if [[ $(grep -c 'Candidate: [0-9]' <<<"$policy") -lt ${#missing[@]} ]]; then
    log "apt-get update (package lists missing or stale)"
    "${apt[@]}" update >&2 || die "apt-get update failed"
  fi
  # Keep maintainer scripts from starting the packages' own services.
  local made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# temporary, from orchestrator scripts/_lib.sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  log "apt-get install ${missing[*]}"
  local t0 rc=0
  t0=$(now_ms)
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >&2 || rc=$?
  if ((rc != 0)); then
    log "install failed; retrying after apt-get update"
    rc=0
    "${apt[@]}" update >&2 &&
      DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >&2 || rc=$?
  fi
  ((made_policy)) && rm -f /usr/sbin/policy-rc.d
  ((rc == 0)) || die "apt-get install ${missing[*]} failed"
  log "installed ${missing[*]} in $(elapsed "$t0")"
}

# pid_of PIDFILE PATTERN: print the pid in PIDFILE if that process is alive and
# its command line contains PATTERN (so a recycled pid is never mistaken for ours).
pid_of() {
  local pidfile=$1 pattern=$2 pid
  [[ -s $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pattern" || return 1
  printf '%s\n' "$pid"
}

# stop_pid PID NAME TIMEOUT_S: SIGTERM, wait, then SIGKILL.
stop_pid() {
  local pid=$1 name=$2 timeout=$3 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < timeout * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || { log "stopped $name (pid $pid)"; return 0; }
    sleep 0.1
  done
  log "$name (pid $pid) did not stop within ${timeout}s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  sleep 0.2
}

# docker_answers HOST: true when a docker engine answers at HOST.
docker_answers() {
  command -v docker >/dev/null || return 1
  DOCKER_HOST=$1 timeout 15 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

# http_ok URL: true when URL answers with a 2xx status.
http_ok() {
  curl -fsS -o /dev/null --max-time 5 "$1" 2>/dev/null
}

# env_file_set KEY VALUE / env_file_unset KEY: keep the env file (KEY=value lines,
# sourceable by sh) up to date; writes are atomic and serialised.
_env_file_edit() {
  local key=$1 value=${2-} unset=${3:-0} dir tmp
  dir=$(dirname "$ORCH_ENV_FILE")
  [[ $unset == 1 && ! -e $ORCH_ENV_FILE ]] && return 0
  mkdir -p "$dir"
  (
    flock -w 30 8 || exit 1
    tmp=$(mktemp "$dir/.env.XXXXXX")
    if [[ -e $ORCH_ENV_FILE ]]; then
      grep -v "^$key=" "$ORCH_ENV_FILE" >"$tmp" || true
    fi
    [[ $unset == 1 ]] || printf '%s=%s\n' "$key" "$value" >>"$tmp"
    if [[ -s $tmp ]]; then
      chmod 644 "$tmp"
      mv -f "$tmp" "$ORCH_ENV_FILE"
    else
      rm -f "$tmp" "$ORCH_ENV_FILE"
    fi
  ) 8>"$dir/.env.lock"
}
env_file_set() { _env_file_edit "$1" "$2" 0; }
env_file_unset() { _env_file_edit "$1" "" 1; }
env_file_get() {
  [[ -r $ORCH_ENV_FILE ]] || return 1
  local line
  line=$(grep -m1 "^$1=" "$ORCH_ENV_FILE") || return 1
  printf '%s\n' "${line#*=}"
}
