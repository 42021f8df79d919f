#!/bin/sh
# Tools that check the OCI layouts `orchestrator build --engine oci` writes:
# skopeo (inspect, copy) and umoci (unpack). tests/test_oci.py skips without them.
set -eu
if command -v skopeo >/dev/null 2>&1 && command -v umoci >/dev/null 2>&1; then
    exit 0
fi
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q skopeo umoci
