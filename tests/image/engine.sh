#!/usr/bin/env bash
# Prepares a container engine for the image test, also on a fresh Debian machine with no reachable registry:
#   - uses a running Docker engine when there is one; otherwise podman (installed with apt when missing,
#     with runc since crun refuses a hybrid cgroup layout, and a containers.conf under $STATE);
#   - makes a stand-in for the Dockerfiles' default base image (debootstrap of Debian bookworm, whose
#     python3 is 3.11) when that base cannot be pulled;
#   - starts Debian's docker-registry on 127.0.0.1:$REGISTRY_PORT for the push/pull test.
# Nothing global is configured. Prints the environment the test needs (`eval "$(tests/image/engine.sh)"`);
# progress goes to stderr.
set -euo pipefail
STATE=${IMAGE_TEST_STATE:-/tmp/sagemaker-rl-image-test}
REGISTRY_PORT=${REGISTRY_PORT:-5000}
BASE_IMAGE=${BASE_IMAGE:-docker.io/library/python:3.11-slim}
mkdir -p "$STATE"
say() { echo "image-test: $*" >&2; }

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  engine=docker
  needs=(debootstrap docker-registry curl)
else
  engine=podman
  needs=(podman runc debootstrap docker-registry curl)
fi
missing=()
for tool in "${needs[@]}"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
  say "installing ${missing[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 && apt-get install -y -q "${missing[@]}" >&2
fi

if [ "$engine" = podman ]; then
  cat >"$STATE/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
EOF
  cat >"$STATE/registries.conf" <<EOF
unqualified-search-registries = ["docker.io"]
[[registry]]
location = "127.0.0.1:$REGISTRY_PORT"
insecure = true
EOF
  export CONTAINERS_CONF="$STATE/containers.conf" CONTAINERS_REGISTRIES_CONF="$STATE/registries.conf"
  echo "export CONTAINERS_CONF=$CONTAINERS_CONF CONTAINERS_REGISTRIES_CONF=$CONTAINERS_REGISTRIES_CONF"
fi

if ! $engine image inspect "$BASE_IMAGE" >/dev/null 2>&1 && ! $engine pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
  say "$BASE_IMAGE cannot be pulled: making a stand-in with debootstrap (about 80 s)"
  rootfs="$STATE/rootfs"
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" \
    http://deb.debian.org/debian >"$STATE/debootstrap.log" 2>&1 || { tail -20 "$STATE/debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | $engine import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$BASE_IMAGE" >&2
  rm -rf "$rootfs"
fi

if ! curl -sf "http://127.0.0.1:$REGISTRY_PORT/v2/" >/dev/null; then
  say "starting a registry on 127.0.0.1:$REGISTRY_PORT"
  rm -rf "$STATE/registry"  # only earlier runs' test pushes (GBs each): start empty so runs do not fill the disk
  mkdir -p "$STATE/registry"
  cat >"$STATE/registry.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $STATE/registry
http:
  addr: 127.0.0.1:$REGISTRY_PORT
EOF
  setsid docker-registry serve "$STATE/registry.yml" >"$STATE/registry.log" 2>&1 < /dev/null &
  echo "export REGISTRY_PID=$!"  # started here: the caller stops it
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$REGISTRY_PORT/v2/" >/dev/null && break; sleep 0.2; done
  curl -sf "http://127.0.0.1:$REGISTRY_PORT/v2/" >/dev/null || { say "the registry did not start"; exit 1; }
fi

echo "export DOCKER=$engine REGISTRY=127.0.0.1:$REGISTRY_PORT"
