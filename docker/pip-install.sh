#!/bin/sh
# pip install "$@" into /opt/venv (created on first use) in the Dockerfiles' builder stage. A CA bundle
# given as the build secret `pip-cert` (for a TLS-inspecting proxy) is used for the step only and never
# stored in the image; wheels lent to the build (`make build WHEELS=…`) are in /tmp/build/wheels.
set -eu
if [ -f /run/secrets/pip-cert ]; then export PIP_CERT=/run/secrets/pip-cert; fi
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
if [ -d /tmp/build/wheels ]; then export PIP_FIND_LINKS=/tmp/build/wheels; fi
[ -d /opt/venv ] || python3 -m venv /opt/venv
/opt/venv/bin/pip install --quiet "$@"
