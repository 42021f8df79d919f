#!/usr/bin/env bash
# The main job on the example workspace, from a fresh machine:
#   validate and plan, lock every member against the public index, sync every member's
#   venv and run each service's own tests in it, then build every service's layered
#   image through a Docker engine, push it to the loopback registry, and run it.
# The Docker engine, a local Debian base image and the registry are installed and
# started by scripts/infra-up.sh (as root on Debian) when none answers; stop them with
# scripts/infra-down.sh.
#
#   scripts/demo.sh                 VENV=path to use another venv
#   ORCHESTRATOR_BASE_IMAGE=IMAGE   base for the images (default: the local Debian base)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*" >&2; }

VENV="${VENV:-$PWD/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi
"$VENV/bin/python" -m pip install -q -e .
orch="$VENV/bin/orchestrator"

step "plan"
"$orch" check
"$orch" graph
"$orch" matrix --all --format github

step "lock (every member, one process)"
"$orch" lock --check || "$orch" lock

step "sync every member's venv, run each service's tests in it"
"$orch" sync
services=$("$orch" list --services --json | "$VENV/bin/python" -c \
    'import json, sys; print(" ".join(m["name"] for m in json.load(sys.stdin)))')
for service in $services; do
    "$orch" -q run --frozen "$service" -- pytest -q -p no:cacheprovider
done

step "start the Docker engine, base image and registry"
set -a
# shellcheck disable=SC1090
. <(scripts/infra-up.sh)
set +a
base="${ORCHESTRATOR_BASE_IMAGE:-$ORCHESTRATOR_TEST_BASE_IMAGE}"

step "build every service's image and push it to $ORCHESTRATOR_TEST_REGISTRY"
"$orch" build --base "$base" --push

step "run the images (--network host, on 127.0.0.1)"
registry=$("$VENV/bin/python" -c 'import yaml; print(yaml.safe_load(open("workspace.yaml"))["image"]["registry"])')
port=18000
for service in $services; do
    version=$("$orch" version "$service" | cut -d' ' -f2)
    ref="$registry/$service:$version"
    health=$("$VENV/bin/python" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb")).get("tool", {}).get("orchestrator", {}).get("health", ""))' "services/$service/pyproject.toml")
    if [ -n "$health" ]; then
        port=$((port + 1))
        name="orchestrator-demo-$service"
        docker rm -f "$name" >/dev/null 2>&1 || true
        docker run -d --rm --name "$name" --network host -e HOST=127.0.0.1 -e PORT="$port" "$ref" >/dev/null
        for _ in $(seq 1 50); do
            if out=$(curl -fsS "http://127.0.0.1:$port$health" 2>/dev/null); then break; fi
            sleep 0.2
        done
        docker rm -f "$name" >/dev/null
        echo "$service ($ref): GET $health -> ${out:-no answer}"
        [ -n "${out:-}" ]
    else
        echo "$service ($ref): $(docker run --rm --network none "$ref" | tail -n 1)"
    fi
done
step "done; stop the engine and registry with scripts/infra-down.sh"
