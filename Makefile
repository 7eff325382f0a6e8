# The two commands of the README: `make repro` and `make test`. Both create .venv when missing.
VENV ?= .venv
PY := $(VENV)/bin/python
SHELL := /bin/bash
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export PATH := $(abspath $(VENV))/bin:$(PATH)
# The torch wheel variant (docs/install.md). Empty (the default): the pinned torch and
# torchvision exactly as `pip install` resolves them here, with nothing added. cpu, cu126,
# cu128, cu130, ...: the same pinned versions from PyTorch's wheel index of that variant
# (a CPU laptop needs no CUDA libraries; a CUDA 12 driver cannot run the CUDA 13 build).
TORCH ?=
# pytest workers of `make test` (pytest-xdist). Every test pins one torch thread, so two workers
# fill a 2-core machine (three measured slower: 986 s against 937 s on a fresh clone); a module's
# tests stay on one worker (--dist loadfile) to share its fixtures.
JOBS ?= 2
TORCH_INDEX ?= https://download.pytorch.org/whl/$(TORCH)
TORCH_PINS := $(shell grep -oE '"torch(vision)?==[^"]+"' pyproject.toml | tr -d '"')

.PHONY: reliability install browser repro test test-fast mlflow-ui exp-show reference bench bench-arms shell screenshot

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(if $(TORCH),$(PY) -m pip install -q --index-url $(TORCH_INDEX) $(TORCH_PINS))
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

install: $(VENV)/.installed

shell: install  ## a shell with .venv active, so that dvc, harness and mlflow are the project's
	@echo "(.venv active; exit to leave)"; VIRTUAL_ENV=$(abspath $(VENV)) $(SHELL) -i

repro: install  ## run the whole pipeline with params.yaml
	dvc repro
	@echo "report: reports/report.html   MLflow UI: make mlflow-ui"

browser:  ## Debian's Chromium for the report's browser test (installed when missing, needs root)
	@command -v chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium; } \
	  || echo "warning: could not install chromium; the browser test will be skipped"

screenshot:  ## docs/img/report.png, the README's picture: the first screen of reports/report.html
	@command -v chromium >/dev/null || { echo "error: chromium is missing (make browser installs it)"; exit 2; }
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,900 \
	  --screenshot=docs/img/report.png file://$(CURDIR)/reports/report.html

test: install browser  ## the whole test suite, end-to-end pipeline test included
	$(PY) -m pytest -q -n $(JOBS) --dist loadfile --durations=20

test-fast: install  ## unit tests only (skips the end-to-end pipeline runs)
	$(PY) -m pytest -q -m "not slow"

reliability: install  ## kills, bad inputs, tracking faults, security; writes reports/reliability.json (~4 min)
	$(PY) -m pytest -q -p reliability_plugin tests/reliability/test_kill_stages.py tests/reliability/test_bad_inputs.py tests/reliability/test_bad_data.py \
	  tests/unit/test_prepare_real.py::test_killed_prepare_resumes_and_matches_an_uninterrupted_run \
	  tests/reliability/test_tracking_faults.py tests/reliability/test_security.py

mlflow-ui: install  ## MLflow UI on 127.0.0.1:5000 over the repository's store
	harness mlflow-ui

# `dvc exp show` lists every leaf of params.yaml and a hash column per code dep (about 200
# columns, docs/usage.md); this view keeps the headline metrics and the params most runs change.
# What fits 160 columns: the headline errors, the verdict counts, then the params most runs change.
EXP_COLUMNS := --drop '.*/.*|(ablations|pretrain|compare|tracking|launch|evaluate|ensemble|data|model|train|center|ten_patch|claims|architecture)\..*|Created|seeds|tested|top1_sd|arch_not_as_printed|protocol|profile|params.yaml' \
	--keep 'train\.(epochs|lr|batch_size)$$|model\.(lrn|pool)$$'
exp-show:  ## `dvc exp show` narrowed to the headline metrics and the params most runs change (ARGS=--csv ...)
	dvc exp show $(EXP_COLUMNS) $(ARGS)

reference: install  ## re-record the reference distribution with seeds 101-105 (about 5 min)
	dvc repro prepare
	harness make-reference

bench: install  ## throughput against same-run baselines -> reports/benchmarks.json (3-5 min on 2 cores)
	$(PY) -m benchmarks.run

bench-arms: install  ## each successor arm's train step against the paper net's -> reports/benchmarks.json "arms" (1.5 min)
	$(PY) -m benchmarks.arm_speed
