# One venv for local use and tests. torch is installed first and pinned: an unpinned torch pulls a
# multi-GB CUDA build. `make test` and `make tune` create the venv when it is missing or stale.
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PROBLEM ?= reacher

.PHONY: venv test test-fast train tune lint bench clean

venv: $(STAMP)

$(STAMP): docker/requirements.txt docker/requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r docker/requirements.txt -r docker/requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

test: venv  ## every test, real training runs included
	$(PY) -m pytest

test-fast: venv  ## skip the real training runs
	$(PY) -m pytest -m "not slow"

train: venv  ## one short local training job
	$(PY) scripts/train.py --problem $(PROBLEM) --hp rl.training.stop.time_total_s=60

tune: venv  ## the main job: a small local tuning run (~15 min on 2 cores)
	$(PY) scripts/tune.py --problem $(PROBLEM)

lint: venv
	$(VENV)/bin/ruff check sagemaker_rl scripts entrypoints tests bench
	$(VENV)/bin/mypy sagemaker_rl

bench: venv
	$(PY) bench/throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
