#!/bin/sh
# `make build`'s first step: can ENGINE ($1) build the Dockerfiles? They need BuildKit (RUN --mount, --secret).
# podman (buildah) has both. docker has them through buildx, or, before docker 23, through its built-in BuildKit
# (DOCKER_BUILDKIT=1, which the Makefile sets); from docker 23 on, a docker CLI without buildx falls back to the
# legacy builder, which fails with "unknown flag: --secret".
set -eu
engine=${1:?usage: docker/check-builder.sh ENGINE}
version=$("$engine" --version 2>/dev/null || true)
case "$version" in
  Docker*) ;;
  *) exit 0 ;;  # podman, or another engine: its own errors speak for it
esac
"$engine" buildx version >/dev/null 2>&1 && exit 0
release=$(echo "$version" | sed -n 's/^Docker version \([^,]*\).*/\1/p')
major=${release%%.*}
case "$major" in *[!0-9]*|"") major=0 ;; esac
[ "$major" -gt 0 ] && [ "$major" -lt 23 ] && exit 0
echo "make build: docker ${release:-(unknown version)} has no buildx, and without it docker uses its legacy builder, which lacks what the" \
  "Dockerfiles need (RUN --mount, --secret): install the buildx plugin (apt install docker-buildx, or" \
  "docker-buildx-plugin from Docker's repository), or build with podman: make build DOCKER=podman" >&2
exit 1
