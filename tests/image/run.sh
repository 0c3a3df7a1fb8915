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
t=$SECONDS
make --no-print-directory build VARIANT=cpu "${build_args[@]}" "${torch_index[@]}" WHEELS="$(pip_config find-links)"
echo "image-test: CPU image built in $((SECONDS - t)) s"
t=$SECONDS
make --no-print-directory build VARIANT=gpu "${build_args[@]}"  # PyPI's CUDA torch; no local CPU wheel
echo "image-test: GPU image built in $((SECONDS - t)) s"

image=$(make --no-print-directory -s image-name COMMIT="$commit")
$DOCKER image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -F "${image#*:}" | sed 's/^/image-test: size /'
t=$SECONDS
IMAGE_TEST="$image" COMMIT="$commit" REGISTRY="$REGISTRY" .venv/bin/python -m pytest tests/image -p no:cacheprovider
echo "image-test: tests ran in $((SECONDS - t)) s; image test total $((SECONDS - t0)) s"
