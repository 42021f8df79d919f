#!/usr/bin/env bash
# Tools that check what `orchestrator build --engine oci` writes, and run its
# foreign-architecture images:
#
#   skopeo, umoci      inspect / unpack the OCI layouts (tests/test_oci.py)
#   qemu-user-static   + binfmt_misc: run linux/arm64 images on an amd64 host
#                      (tests/test_oci_arm64.py, scripts/base-image.sh --arch arm64)
#
#   scripts/oci-tools.sh [--binfmt-only]
#
# binfmt_misc: mounted at /proc/sys/fs/binfmt_misc if it is not, and qemu-aarch64
# registered from /usr/lib/binfmt.d/qemu-aarch64.conf if it is not (the F flag
# makes the kernel open the interpreter now, so it also works inside containers).
# Where that is not permitted (no root, a container without CAP_SYS_ADMIN) it says
# so and exits 3, so callers can tell (base-image.sh --arch stops there, infra-up.sh
# goes on and the arm64 tests skip with the reason). Idempotent; a warm run does
# nothing.
set -euo pipefail
# shellcheck source=scripts/_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

binfmt_only=0
[[ ${1:-} == --binfmt-only ]] && binfmt_only=1

if ((binfmt_only == 0)) && ! { command -v skopeo >/dev/null && command -v umoci >/dev/null; }; then
  apt_install skopeo umoci
fi

BINFMT=/proc/sys/fs/binfmt_misc
CONF=/usr/lib/binfmt.d/qemu-aarch64.conf

# arm64_ready: true when the kernel runs aarch64 ELF files through qemu.
arm64_ready() {
  [[ $(uname -m) == aarch64 ]] && return 0
  [[ -r $BINFMT/qemu-aarch64 ]] && head -n 1 "$BINFMT/qemu-aarch64" | grep -qx enabled
}

if arm64_ready; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  log "arm64 emulation is not set up and this is not root: skipped (run as root, or register qemu-aarch64 in binfmt_misc yourself)"
  exit 3
fi
if [[ ! -e $CONF ]] || ! command -v qemu-aarch64-static >/dev/null; then
  # arch-test lets mmdebstrap check that the foreign architecture runs.
  apt_install qemu-user-static arch-test || { log "cannot install qemu-user-static: arm64 emulation skipped"; exit 3; }
fi
if [[ ! -e $BINFMT/register ]]; then
  mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null || {
    log "cannot mount binfmt_misc at $BINFMT (not permitted here): arm64 emulation skipped"
    exit 3
  }
fi
if [[ ! -e $BINFMT/qemu-aarch64 ]]; then
  # The .conf line is what the kernel's register file takes (systemd-binfmt writes it so).
  grep -v '^[#;]' "$CONF" | grep . >"$BINFMT/register" 2>/dev/null || {
    log "cannot register qemu-aarch64 in $BINFMT (not permitted here): arm64 emulation skipped"
    exit 3
  }
elif ! head -n 1 "$BINFMT/qemu-aarch64" | grep -qx enabled; then
  echo 1 >"$BINFMT/qemu-aarch64" 2>/dev/null || true
fi
if arm64_ready; then
  log "arm64 emulation: qemu-aarch64 registered in $BINFMT ($(sed -n 's/^flags: //p' "$BINFMT/qemu-aarch64"))"
  exit 0
fi
log "arm64 emulation is not available after registering qemu-aarch64: skipped"
exit 3
