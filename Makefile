# One venv for local use and tests. torch is installed first and pinned: an unpinned torch pulls a
# multi-GB CUDA build. `make test` and `make tune` create the venv when it is missing or stale.
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PROBLEM ?= reacher
# The main job's plan: 15 minutes of wall time, a Bayesian search whose answer is judged and its policy trained
# at 150 training seconds (the plan chosen by measurement on reacher: docs/benchmarks.md, "The main job's 15
# minutes"; elsewhere a training budget makes ASHA the default strategy).
TUNE_FLAGS ?= --max-runtime 15m --train-budget 150s --strategy Bayesian

# Images: `make build [VARIANT=cpu|gpu] [DOCKER=podman]`, `make push REGISTRY=host[:port][/path]`.
DOCKER   ?= $(shell command -v docker >/dev/null && docker info >/dev/null 2>&1 && echo docker || echo podman)
VARIANT  ?= cpu gpu
IMAGE    ?= sagemaker-rl
VERSION  := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
COMMIT   := $(shell git rev-parse --short HEAD 2>/dev/null || echo nogit)
REGISTRY ?=
, := ,
WHEELS   ?=# a directory of wheels the build may use (e.g. a torch CPU wheel where its index is unreachable)
PIP_CERT ?=# a CA bundle for pip in the build (a TLS-inspecting proxy); never stored in the image
BASE_IMAGE ?=
TORCH_INDEX_URL ?=# default: the Dockerfile's (PyTorch's CPU wheel index for cpu, PyPI's CUDA wheels for gpu)

.PHONY: venv test test-fast train tune lint docs bench clean build push image-name image-test

venv: $(STAMP)

$(STAMP): docker/requirements-torch.txt docker/requirements.txt docker/requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r docker/requirements-torch.txt
	$(PY) -m pip install --quiet -r docker/requirements.txt -r docker/requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

test: venv  ## every test, real training runs included
	$(PY) -m pytest

test-fast: venv  ## skip the real training runs
	$(PY) -m pytest -m "not slow"

train: venv  ## one short local training job
	$(PY) scripts/train.py --problem $(PROBLEM) --hp rl.training.stop.time_total_s=60

tune: venv  ## the main job: a small local tuning run (15 min on 2 cores), hyperparameters and a trained policy
	$(PY) scripts/tune.py --problem $(PROBLEM) $(TUNE_FLAGS)

lint: venv
	$(VENV)/bin/ruff check sagemaker_rl scripts entrypoints tests bench docs
	$(VENV)/bin/mypy sagemaker_rl scripts
	$(VENV)/bin/hadolint --failure-threshold error docker/Dockerfile.cpu docker/Dockerfile.gpu
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# The site is built from docs/ with the generated parts filled in (docs/hooks.py); README.md's headline figures
# come from bench/results/*.json (bench/pages.py) and are rewritten here, before the strict build checks them.
# Never `mkdocs build --quiet`: it hides the warnings strict mode counts, and a broken link passes.
docs: venv  ## the documentation site in site/ (strict) and README.md's headline figures
	$(PY) docs/hooks.py readme
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# The Dockerfiles need BuildKit (docker/check-builder.sh says what to install when docker lacks it); the wheels
# lent to the build are removed after it, also when it fails.
build:  ## the images, tagged IMAGE:VERSION-VARIANT and IMAGE:VERSION-COMMIT-VARIANT
	@docker/check-builder.sh $(DOCKER)
	rm -f docker/wheels/*.whl
	$(if $(WHEELS),cp -l $(WHEELS)/*.whl docker/wheels/ 2>/dev/null || cp $(WHEELS)/*.whl docker/wheels/)
	for variant in $(VARIANT); do \
	  DOCKER_BUILDKIT=1 $(DOCKER) build -f docker/Dockerfile.$$variant \
	    $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) \
	    $(if $(TORCH_INDEX_URL),--build-arg TORCH_INDEX_URL=$(TORCH_INDEX_URL)) \
	    $(if $(PIP_CERT),--secret id=pip-cert$(,)src=$(PIP_CERT)) \
	    -t $(IMAGE):$(VERSION)-$$variant -t $(IMAGE):$(VERSION)-$(COMMIT)-$$variant . \
	    || { rm -f docker/wheels/*.whl; exit 1; }; \
	done
	rm -f docker/wheels/*.whl

push: $(if $(findstring .dkr.ecr.,$(REGISTRY)),venv)  ## push the built images to REGISTRY; an ECR registry is logged in to and its repository created
	$(if $(REGISTRY),,$(error set REGISTRY, e.g. make push REGISTRY=123456789012.dkr.ecr.us-east-1.amazonaws.com))
	$(if $(findstring .dkr.ecr.,$(REGISTRY)),$(PY) -m sagemaker_rl.sagemaker.ecr login $(REGISTRY)/$(IMAGE) | \
	  $(DOCKER) login --username AWS --password-stdin $(firstword $(subst /, ,$(REGISTRY))))
	for variant in $(VARIANT); do for tag in $(VERSION)-$$variant $(VERSION)-$(COMMIT)-$$variant; do \
	  $(DOCKER) tag $(IMAGE):$$tag $(REGISTRY)/$(IMAGE):$$tag && $(DOCKER) push $(REGISTRY)/$(IMAGE):$$tag || exit 1; \
	done; done

image-name:  ## the images' name without the variant (IMAGE:VERSION-COMMIT)
	@echo $(IMAGE):$(VERSION)-$(COMMIT)

image-test: venv  ## build both images and test them (installs podman when no engine is present)
	tests/image/run.sh

bench: venv  ## benchmark suite, ~80 min on 2 cores (BENCH_ARGS=--quick: a few minutes); SB3 goes into .venv only
	$(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
