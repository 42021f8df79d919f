#!/usr/bin/env bash
# End-to-end smoke test of the components infra-up.sh provides: build a tiny
# image FROM the base image (network host), run it (--network host), push it to
# the loopback registry, delete it locally, pull it back by digest and run it
# again; then the same build/push/pull through the Python docker SDK when it is
# importable. Cleans up its images; exits non-zero on the first failure.
#
#   scripts/infra-check.sh        (after scripts/infra-up.sh)
set -euo pipefail
# shellcheck source=scripts/_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

get() { local v=${!1:-}; [[ -n $v ]] || v=$(env_file_get "$1") || die "$1 unknown; run scripts/infra-up.sh first"; printf '%s\n' "$v"; }
DOCKER_HOST=$(get DOCKER_HOST)
BASE=$(get ORCHESTRATOR_TEST_BASE_IMAGE)
REGISTRY=$(get ORCHESTRATOR_TEST_REGISTRY)
export DOCKER_HOST BASE REGISTRY
docker_answers "$DOCKER_HOST" || die "no docker engine answers at $DOCKER_HOST"

ctx=$(mktemp -d)
repo=$REGISTRY/orchestrator-infra-check/hello
tag=$repo:$$
cleanup() {
  rm -rf "$ctx"
  docker image rm -f "$tag" "$repo:sdk-$$" >/dev/null 2>&1 || true
  if [[ -n ${digest_ref:-} ]]; then docker image rm -f "$digest_ref" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

step() { log "$1: $(elapsed "$t")"; t=$(now_ms); }
t0=$(now_ms) t=$(now_ms)
cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $BASE
RUN python3 -c 'print(1)'
ARG NONCE
RUN echo "\$NONCE" >/nonce
CMD ["python3", "-c", "print('hello from the check image')"]
DOCKERFILE
docker build --quiet --network host --build-arg NONCE="$$-$RANDOM" -t "$tag" "$ctx" >/dev/null 2>"$ctx/build.err" ||
  { cat "$ctx/build.err" >&2; die "docker build --network host failed"; }
step "docker build --network host FROM $BASE"
out=$(docker run --rm --network host "$tag")
[[ $out == "hello from the check image" ]] || die "docker run printed: $out"
step "docker run --network host"
docker push --quiet "$tag" >/dev/null || die "docker push $tag failed"
digest_ref=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$tag" | grep -m1 "^$repo@")
step "docker push -> $digest_ref"
docker image rm -f "$tag" >/dev/null
docker image inspect "$tag" >/dev/null 2>&1 && die "$tag still present after rm"
docker pull --quiet "$digest_ref" >/dev/null || die "docker pull $digest_ref failed"
step "docker pull by digest"
out=$(docker run --rm --network none "$digest_ref")
[[ $out == "hello from the check image" ]] || die "docker run of the pulled image printed: $out"
step "docker run --network none (pulled image)"

if python3 -c 'import docker' 2>/dev/null; then
  python3 - "$ctx" "$repo" "sdk-$$" <<'PY' || die "docker SDK check failed"
import sys
import docker

ctx, repo, tag = sys.argv[1:]
client = docker.from_env()
image, _ = client.images.build(path=ctx, tag=f"{repo}:{tag}", network_mode="host", rm=True,
                               buildargs={"NONCE": tag})
out = client.containers.run(f"{repo}:{tag}", network_mode="host", remove=True)
assert out == b"hello from the check image\n", out
for line in client.images.push(repo, tag=tag, stream=True, decode=True):
    if "error" in line:
        raise SystemExit(f"push failed: {line['error']}")
digest = client.images.get_registry_data(f"{repo}:{tag}").id
client.images.remove(f"{repo}:{tag}", force=True)
pulled = client.images.pull(f"{repo}@{digest}")
out = client.containers.run(pulled.id, network_mode="none", remove=True)
assert out == b"hello from the check image\n", out
client.images.remove(pulled.id, force=True)
print(f"docker SDK {docker.__version__}: build (network_mode=host), run, push, pull {digest[:19]}... ok",
      file=sys.stderr)
PY
  step "docker SDK build/run/push/pull"
fi
log "all checks passed in $(elapsed "$t0") (engine $DOCKER_HOST, base $BASE, registry $REGISTRY)"
