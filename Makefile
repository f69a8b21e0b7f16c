# justask: one entry point for people and CI.
#
#   make venv   create .venv (python3.11) from requirements.lock + the package (editable)
#   make data   restore data/ (frozen inputs tracked by data.dvc) from the committed remote
#   make run    run the pipeline of the active profile (params.yaml), print stage times and results
#               `make run PROFILE=test` switches params.yaml to profiles/test.yaml first
#   make test   pytest          make lint   ruff + actionlint          make clean   caches
#
# Where data/ comes from on a fresh clone (no network, empty DVC cache):
#   data/ is git-ignored and tracked by data.dvc, whose output names `remote: inputs`.
#   The `inputs` remote is the folder dvc-inputs/, committed to git on purpose: it holds only the
#   DVC objects of data/ (a few KB: frozen evaluation seeds, small user datasets). So
#   `dvc pull data.dvc` (the `data` target) works offline in any clone. Pipeline outputs never go
#   there: they stay in the local cache and the default remote `local` (.dvcstore/, git-ignored).
#   After changing data/:  dvc add data && dvc push data.dvc  then commit data.dvc + dvc-inputs/.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed
# DAG order of dvc.yaml; every stage is `foreach` over the families params.yaml configures
# (`justask families --names` lists them).
STAGES := collect validate relabel train evaluate
PROFILE ?=
PYTEST_ARGS ?=

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export GX_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90

.PHONY: help venv run run-locked test lint clean

help:
	@sed -n '3,8p' $(firstword $(MAKEFILE_LIST)) | sed 's/^# \{0,1\}//'

venv: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Reinstalls whenever the lock file or pyproject.toml changes.
$(STAMP): requirements.lock pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -r requirements.lock
	$(VENV)/bin/python -m pip install --no-deps -e .
	touch $@

# A directory target: pulled when missing or older than data.dvc (e.g. after a checkout that
# changed data.dvc). dvc refuses to overwrite local edits to data/ that were not `dvc add`ed.
data: data.dvc | $(STAMP)
	dvc pull data.dvc
	touch $@

# One pipeline run per checkout at a time: `run` holds .dvc/tmp/pipeline.lock (as the Prefect flow
# does; src/justask/lock.py) and a second run stops at once instead of racing the first for outputs.
run: venv data
	@justask locked -- $(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) run-locked

run-locked:
	@if [ -n "$(PROFILE)" ]; then justask profile "$(PROFILE)"; fi
	@echo "profile: $$(sed -n 's/^profile:[[:space:]]*//p' params.yaml)"
	@summary=""; families=$$(justask families --names); \
	for fam in $$families; do \
	  for stage in $(STAGES); do \
	    echo "==> dvc repro --single-item $$stage@$$fam"; \
	    t0=$$EPOCHREALTIME; \
	    dvc repro --single-item "$$stage@$$fam"; \
	    secs=$$(LC_ALL=C awk -v a="$$t0" -v b="$$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'); \
	    echo "<== $$stage@$$fam: $${secs} s"; \
	    summary+=$$(printf '\n  %-22s %9s s' "$$stage@$$fam" "$$secs"); \
	  done; \
	done; \
	echo "==> dvc repro (whole DAG: a no-op unless dvc.yaml has stages not listed in STAGES)"; \
	dvc repro; \
	echo "wall time per stage (skipped stages take about a second):$$summary"
	@for fam in $$(justask families --names); do justask results "$$fam"; done

test: venv data
	pytest $(PYTEST_ARGS)

lint: venv
	ruff check .
	actionlint

clean:
	rm -rf .pytest_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
