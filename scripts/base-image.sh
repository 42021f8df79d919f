#!/usr/bin/env bash
# Build a local Debian bookworm base image with python3 (3.11), for use as
# `image.base` where no public registry can be reached:
#
#   scripts/base-image.sh [--force] [--arch ARCH] [TAG]
#       # default orchestrator/python-base:3.11-bookworm (-ARCH for another arch)
#
# The root filesystem comes from Debian's packages (mmdebstrap, minbase variant,
# python3 + python3-venv + ca-certificates, the host's apt sources) and is
# `docker import`ed under TAG. Skips everything when TAG already exists; the
# rootfs tarball is cached in $ORCHESTRATOR_INFRA_CACHE/base/, so re-importing
# (e.g. after docker-down.sh --purge) takes seconds. Starts the engine with
# docker-up.sh if none answers. Prints TAG as the last line of stdout.
# --force re-imports TAG even if it exists (from the cached rootfs when present).
#
# --arch arm64 on an amd64 host: the rootfs is debootstrapped for arm64 under
# qemu-user-static (scripts/oci-tools.sh sets up binfmt_misc; about 4 minutes the
# first time, cached like the host's), then `docker load`ed as an arm64 image (an
# archive written here: `docker import --platform` of Docker 20.10 records the
# host's architecture) and checked with `docker run --platform linux/arm64`.
# Records ORCHESTRATOR_TEST_BASE_IMAGE_<ARCH> (tests/test_oci_arm64.py).
#
# Environment: ORCHESTRATOR_BASE_SUITE (bookworm), ORCHESTRATOR_BASE_MIRROR (an
# apt sources file or mirror URL; default: the host's Debian sources).
set -euo pipefail
# shellcheck source=scripts/_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

force=0
host_arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
ARCH=$host_arch
while [[ ${1:-} == --* ]]; do
  case $1 in
    --force) force=1; shift ;;
    --arch) ARCH=${2:?--arch needs an architecture (arm64)}; shift 2 ;;
    *) die "usage: ${0##*/} [--force] [--arch ARCH] [TAG]" ;;
  esac
done
[[ $# -le 1 && ${1:-} != -* ]] || die "usage: ${0##*/} [--force] [--arch ARCH] [TAG]"
if [[ $ARCH == "$host_arch" ]]; then
  ENV_KEY=ORCHESTRATOR_TEST_BASE_IMAGE
  TAG=${1:-${ORCHESTRATOR_TEST_BASE_IMAGE:-$ORCH_DEFAULT_BASE_TAG}}
else
  ENV_KEY=ORCHESTRATOR_TEST_BASE_IMAGE_${ARCH^^}
  TAG=${1:-$ORCH_DEFAULT_BASE_TAG-$ARCH}
  if ! "$ORCH_SCRIPTS/oci-tools.sh" --binfmt-only; then
    die "no $ARCH emulation on this machine (binfmt_misc + qemu-user-static, see above): no $ARCH base image"
  fi
fi
SUITE=${ORCHESTRATOR_BASE_SUITE:-bookworm}
INCLUDE=python3,python3-venv,ca-certificates
PATH_IN_IMAGE=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

DOCKER_HOST=$("$ORCH_SCRIPTS/docker-up.sh" | tail -n 1)
export DOCKER_HOST

if ((force == 0)) && docker image inspect "$TAG" >/dev/null 2>&1; then
  log "$TAG already exists; nothing to do"
  env_file_set "$ENV_KEY" "$TAG"
  printf '%s\n' "$TAG"
  exit 0
fi

take_lock "base-image-$ARCH"
if ((force == 0)) && docker image inspect "$TAG" >/dev/null 2>&1; then
  log "$TAG was imported by a concurrent run"
  env_file_set "$ENV_KEY" "$TAG"
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
arch_args=()
if [[ $ARCH != "$host_arch" ]]; then
  tarball=$ORCH_CACHE_DIR/base/$SUITE-$ARCH-minbase-python3-$key.tar
  arch_args=(--arch="$ARCH")
fi
if [[ -s $tarball ]]; then
  log "using cached rootfs $tarball"
else
  need_root "building the base rootfs with mmdebstrap"
  apt_install mmdebstrap
  [[ $ARCH == "$host_arch" ]] || apt_install arch-test
  [[ -d $hooks ]] && hook_args=(--hook-dir="$hooks")
  mkdir -p "$(dirname "$tarball")"
  tmp=$(mktemp "$tarball.XXXXXX.tar")
  trap 'rm -f "$tmp"' EXIT
  if [[ $ARCH == "$host_arch" ]]; then about="about 20 s"; else about="about 4 min under qemu"; fi
  log "mmdebstrap $SUITE $ARCH (minbase + $INCLUDE) from ${mirror:-the default Debian mirrors}; $about"
  t1=$(now_ms)
  mmdebstrap --quiet --variant=minbase --include="$INCLUDE" "${arch_args[@]}" \
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
  if [[ $ARCH == "$host_arch" ]]; then old="$SUITE-minbase-python3-*.tar"
  else old="$SUITE-$ARCH-minbase-python3-*.tar"; fi
  find "$(dirname "$tarball")" -maxdepth 1 -name "$old" ! -name "${tarball##*/}" -delete
  rm -f "$tarball.log"
  log "rootfs built in $(elapsed "$t1"): $tarball ($(du -h "$tarball" | cut -f1))"
fi

if [[ $ARCH == "$host_arch" ]]; then
  log "docker import as $TAG"
  docker import \
    --change "ENV PATH=$PATH_IN_IMAGE" \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL org.opencontainers.image.description=\"Debian $SUITE minbase with python3, built locally by mmdebstrap\"" \
    --change 'CMD ["python3"]' \
    --message "orchestrator scripts/base-image.sh: mmdebstrap $SUITE minbase + $INCLUDE" \
    "$tarball" "$TAG" >/dev/null
  run_platform=()
else
  # A `docker save` archive of one layer (the rootfs tar as it is) whose config says
  # $ARCH, streamed into `docker load`.
  log "docker load as $TAG ($ARCH)"
  python3 - "$tarball" "$TAG" "$ARCH" "$PATH_IN_IMAGE" "$SUITE" <<'PY' | docker load >/dev/null
import hashlib, io, json, sys, tarfile
rootfs, tag, arch, path, suite = sys.argv[1:6]
sha = hashlib.sha256()
with open(rootfs, "rb") as f:
    while chunk := f.read(1 << 20):
        sha.update(chunk)
diff = "sha256:" + sha.hexdigest()
config = json.dumps({
    "architecture": arch, "os": "linux",
    "config": {"Env": [f"PATH={path}", "LANG=C.UTF-8"], "Cmd": ["python3"], "Labels": {
        "org.opencontainers.image.description":
            f"Debian {suite} minbase with python3 for {arch}, built locally by mmdebstrap"}},
    "rootfs": {"type": "layers", "diff_ids": [diff]},
    "history": [{"created_by": f"orchestrator scripts/base-image.sh: mmdebstrap {suite} "
                 f"{arch} minbase"}]}, sort_keys=True).encode()
name = hashlib.sha256(config).hexdigest()
manifest = json.dumps([{"Config": f"{name}.json", "RepoTags": [tag],
                        "Layers": [f"{diff[7:]}/layer.tar"]}]).encode()
with tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as tar:
    for member, data in ((f"{name}.json", config), ("manifest.json", manifest)):
        info = tarfile.TarInfo(member)
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    tar.add(rootfs, arcname=f"{diff[7:]}/layer.tar")
PY
  run_platform=(--platform "linux/$ARCH")
fi

version=$(docker run --rm "${run_platform[@]}" --network none "$TAG" \
  python3 -c 'import os, platform, ssl, sys, venv; print(os.path.realpath(sys.executable), sys.version.split()[0], platform.machine())') ||
  die "the imported image $TAG does not run python3"
log "$TAG ready in $(elapsed "$t0"): python3 -> $version"
env_file_set "$ENV_KEY" "$TAG"
printf '%s\n' "$TAG"
