#!/usr/bin/env bash
# Build a local Debian bookworm base image with python3 (3.11), for use as
# `image.base` where no public registry can be reached:
#
#   scripts/base-image.sh [--force] [TAG]   # default orchestrator/python-base:3.11-bookworm
#
# The root filesystem comes from Debian's packages (mmdebstrap, minbase variant,
# python3 + python3-venv + ca-certificates, the host's apt sources) and is
# `docker import`ed under TAG. Skips everything when TAG already exists; the
# rootfs tarball is cached in $ORCHESTRATOR_INFRA_CACHE/base/, so re-importing
# (e.g. after docker-down.sh --purge) takes seconds. Starts the engine with
# docker-up.sh if none answers. Prints TAG as the last line of stdout.
# --force re-imports TAG even if it exists (from the cached rootfs when present).
#
# Environment: ORCHESTRATOR_BASE_SUITE (bookworm), ORCHESTRATOR_BASE_MIRROR (an
# apt sources file or mirror URL; default: the host's Debian sources).
set -euo pipefail
# shellcheck source=scripts/_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

force=0
if [[ ${1:-} == --force ]]; then force=1; shift; fi
[[ $# -le 1 && ${1:-} != -* ]] || die "usage: ${0##*/} [--force] [TAG]"
TAG=${1:-${ORCHESTRATOR_TEST_BASE_IMAGE:-$ORCH_DEFAULT_BASE_TAG}}
SUITE=${ORCHESTRATOR_BASE_SUITE:-bookworm}
INCLUDE=python3,python3-venv,ca-certificates
PATH_IN_IMAGE=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

DOCKER_HOST=$("$ORCH_SCRIPTS/docker-up.sh" | tail -n 1)
export DOCKER_HOST

if ((force == 0)) && docker image inspect "$TAG" >/dev/null 2>&1; then
  log "$TAG already exists; nothing to do"
  env_file_set ORCHESTRATOR_TEST_BASE_IMAGE "$TAG"
  printf '%s\n' "$TAG"
  exit 0
fi

take_lock base-image
if ((force == 0)) && docker image inspect "$TAG" >/dev/null 2>&1; then
  log "$TAG was imported by a concurrent run"
  env_file_set ORCHESTRATOR_TEST_BASE_IMAGE "$TAG"
  printf '%s\n' "$TAG"
  exit 0
fi
t0=$(now_ms)

# Where packages come from: the host's apt sources (deb822 or one-line), so
# the image gets the same (possibly snapshot-pinned) mirror the host uses.
mirror=${ORCHESTRATOR_BASE_MIRROR:-}
if [[ -z $mirror ]]; then
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    if [[ -s $f ]] && grep -Eq '^[[:space:]]*(deb |Types:)' "$f"; then mirror=$f; break; fi
  done
fi
mirror_args=()
mirror_key=default
if [[ -n $mirror ]]; then
  mirror_args=("$mirror")
  if [[ -f $mirror ]]; then mirror_key=$(sha256sum <"$mirror"); else mirror_key=$mirror; fi
fi

# Merged /usr set up by mmdebstrap's hook, so apt does not pull in usrmerge and
# with it a full perl (about 50 MB).
hook_args=()
hooks=/usr/share/mmdebstrap/hooks/maybe-merged-usr
key=$(printf '%s\n' "$SUITE" minbase "$INCLUDE" "$mirror_key" v2 | sha256sum | cut -c1-16)
tarball=$ORCH_CACHE_DIR/base/$SUITE-minbase-python3-$key.tar
if [[ -s $tarball ]]; then
  log "using cached rootfs $tarball"
else
  need_root "building the base rootfs with mmdebstrap"
  apt_install mmdebstrap
  [[ -d $hooks ]] && hook_args=(--hook-dir="$hooks")
  mkdir -p "$(dirname "$tarball")"
  tmp=$(mktemp "$tarball.XXXXXX.tar")
  trap 'rm -f "$tmp"' EXIT
  log "mmdebstrap $SUITE (minbase + $INCLUDE) from ${mirror:-the default Debian mirrors}; about 20 s"
  t1=$(now_ms)
  mmdebstrap --quiet --variant=minbase --include="$INCLUDE" \
    --aptopt='Acquire::Retries "3"' --dpkgopt=force-unsafe-io "${hook_args[@]}" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    "$SUITE" "$tmp" "${mirror_args[@]}" >"$tarball.log" 2>&1 || {
    tail -n 30 "$tarball.log" >&2
    die "mmdebstrap failed (log above, in full: $tarball.log); the host's apt sources must reach a Debian mirror"
  }
  chmod 644 "$tmp"
  mv -f "$tmp" "$tarball"
  trap - EXIT
  # Drop rootfs tarballs of older recipes.
  find "$(dirname "$tarball")" -maxdepth 1 -name "$SUITE-minbase-python3-*.tar" \
    ! -name "${tarball##*/}" -delete
  rm -f "$tarball.log"
  log "rootfs built in $(elapsed "$t1"): $tarball ($(du -h "$tarball" | cut -f1))"
fi

log "docker import as $TAG"
docker import \
  --change "ENV PATH=$PATH_IN_IMAGE" \
  --change 'ENV LANG=C.UTF-8' \
  --change "LABEL org.opencontainers.image.description=\"Debian $SUITE minbase with python3, built locally by mmdebstrap\"" \
  --change 'CMD ["python3"]' \
  --message "orchestrator scripts/base-image.sh: mmdebstrap $SUITE minbase + $INCLUDE" \
  "$tarball" "$TAG" >/dev/null

version=$(docker run --rm --network none "$TAG" \
  python3 -c 'import os, ssl, sys, venv; print(os.path.realpath(sys.executable), sys.version.split()[0])') ||
  die "the imported image $TAG does not run python3"
log "$TAG ready in $(elapsed "$t0"): python3 -> $version"
env_file_set ORCHESTRATOR_TEST_BASE_IMAGE "$TAG"
printf '%s\n' "$TAG"
