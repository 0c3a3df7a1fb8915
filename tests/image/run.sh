#!/usr/bin/env bash
# `make image-test`: prepare an engine (tests/image/engine.sh), build both images, run tests/image.
# Prints how long each part takes and the image sizes.
set -euo pipefail
cd "$(dirname "$0")/../.."
t0=$SECONDS
eval "$(tests/image/engine.sh)"
trap '[ -z "${REGISTRY_PID:-}" ] || kill "$REGISTRY_PID"' EXIT
echo "image-test: engine ready in $((SECONDS - t0)) s"

# Where this machine's pip reaches packages through local wheels and a TLS-inspecting proxy, so does the build.
pip_config() { .venv/bin/python -m pip config get "global.$1" 2>/dev/null || true; }
commit=$(git rev-parse --short HEAD 2>/dev/null || echo nogit)  # one tag for the whole run, even if HEAD moves
build_args=(DOCKER="$DOCKER" COMMIT="$commit")
cert=$(pip_config cert); [ -n "$cert" ] && build_args+=(PIP_CERT="$cert")
torch_index=()
if ! curl -sf --max-time 10 -o /dev/null https://download.pytorch.org/whl/cpu/; then
  torch_index=(TORCH_INDEX_URL=https://pypi.org/simple)  # the CPU wheel must then come from WHEELS
fi
# Each run adds ~9 GB of images (a new venv layer per commit): untag our images that are not this commit's, which
# deletes them, and delete our untagged final images; the build cache (untagged builder stages, whose large layers
# every commit shares) stays. How much a build needs depends on that cache (docs/development.md, measured): refuse
# below what a build with its cache needs, and when a build fails after the test started below what one without it
# needs, say that space may be why.
image=$(make --no-print-directory -s image-name COMMIT="$commit")
ours=$($DOCKER image ls --format '{{.Repository}}:{{.Tag}} {{.ID}}' | grep -E "^([^ ]*/)?${image%%:*}:") || true
keep=$(grep -F -- "-$commit-" <<<"$ours" | cut -d' ' -f2 | sort -u) || true  # none on a commit's first run
grep -vwF -f <(echo "${keep:-none}") <<<"$ours" | cut -d' ' -f1 | xargs -r $DOCKER rmi >/dev/null || true
$DOCKER image prune -f --filter label=org.opencontainers.image.title=sagemaker-rl >/dev/null  # rebuilt commits' finals
storage=$($DOCKER info --format "{{$([ "$DOCKER" = podman ] && echo .Store.GraphRoot || echo .DockerRootDir)}}")
NEEDS_CACHED_GB=30 NEEDS_UNCACHED_GB=42
free_gb=$(df -P --block-size=1G "$storage" | awk 'NR == 2 {print $4}')
echo "image-test: ${free_gb:-?} GB free for the images"
if [ -n "$free_gb" ] && [ "$free_gb" -lt $NEEDS_CACHED_GB ]; then
  echo "image-test: building both images needs about $NEEDS_CACHED_GB GB free in the engine's storage with a warm" \
    "build cache ($NEEDS_UNCACHED_GB GB without) and $free_gb GB are; free some (e.g. $DOCKER system prune -a)" >&2
  exit 1
fi
build() {  # VARIANT, make's arguments
  local variant=$1 t=$SECONDS
  shift
  if ! make --no-print-directory build VARIANT="$variant" "${build_args[@]}" "$@"; then
    if [ -n "$free_gb" ] && [ "$free_gb" -lt $NEEDS_UNCACHED_GB ]; then
      echo "image-test: the $variant build failed; the test started with $free_gb GB free and a build without its" \
        "cache needs about $NEEDS_UNCACHED_GB GB: if the error above is about space, free some (e.g." \
        "$DOCKER system prune -a)" >&2
    fi
    exit 1
  fi
  echo "image-test: ${variant^^} image built in $((SECONDS - t)) s"
}
build cpu "${torch_index[@]}" WHEELS="$(pip_config find-links)"
build gpu  # PyPI's CUDA torch; no local CPU wheel

$DOCKER image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -F "${image#*:}" | sed 's/^/image-test: size /'
t=$SECONDS
IMAGE_TEST="$image" COMMIT="$commit" REGISTRY="$REGISTRY" .venv/bin/python -m pytest tests/image -p no:cacheprovider
echo "image-test: tests ran in $((SECONDS - t)) s; image test total $((SECONDS - t0)) s"
