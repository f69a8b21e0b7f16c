# justask: one entry point for people and CI.
#
#   make venv   create .venv (python3.11) from requirements.lock + the package (editable)
#   make data   restore data/ (frozen inputs tracked by data.dvc) from the committed remote
#   make run    run the pipeline of the active profile (params.yaml), print stage times and results
#               `make run PROFILE=test` switches params.yaml to profiles/test.yaml first;
#               `make run FAMILIES="return reward"` runs only those families' stages
#   make test   pytest, 2 workers  make lint   ruff + actionlint          make clean   caches
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
FAMILIES ?=
PYTEST_ARGS ?=
TEST_WORKERS ?= 2
# Wall seconds of each stage the last time `make run` ran it on this machine (DVC's tmp, not tracked).
RUN_TIMES := .dvc/tmp/run-times.tsv

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export GX_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90

.PHONY: help venv run run-locked test lint clean pr-metrics

help:
	@sed -n '3,9p' $(firstword $(MAKEFILE_LIST)) | sed 's/^# \{0,1\}//'

venv: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Reinstalls whenever the lock file or pyproject.toml changes.
# Quiet (-q): a new user's screen starts with what the pipeline will do, not pip's download lines;
# pip's warnings and errors still show.
$(STAMP): requirements.lock pyproject.toml | $(VENV)/bin/python
	@echo "installing the pinned dependencies (requirements.lock) into $(VENV): a few minutes the first time"
	$(VENV)/bin/python -m pip install -q -r requirements.lock
	$(VENV)/bin/python -m pip install -q --no-deps -e .
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
	@configured=" $$(justask families --names | tr '\n' ' ')"; families="$(or $(FAMILIES),$$configured)"; \
	for fam in $$families; do \
	  case "$$configured " in *" $$fam "*) ;; \
	    *) echo "make run: FAMILIES names '$$fam', which params.yaml does not configure (it configures:$$configured)" >&2; exit 2;; \
	  esac; \
	done; \
	mkdir -p $(dir $(RUN_TIMES)); touch $(RUN_TIMES); \
	stale=" $$(dvc status --json | python -c 'import json, sys; print(" ".join(json.load(sys.stdin)))') "; \
	echo "stages of $$(echo $$families) (wall seconds the last time each ran here, from $(RUN_TIMES)):"; \
	for fam in $$families; do todo="up to date"; for stage in $(STAGES); do \
	  last=$$(awk -F'\t' -v k="$$stage@$$fam" '$$1 == k { t = $$2 } END { print (t == "" ? "never run here" : t " s last time") }' $(RUN_TIMES)); \
	  case "$$stale" in *" $$stage@$$fam "*) todo="runs";; *) [ "$$todo" = "up to date" ] || todo="runs if its inputs change";; esac; \
	  printf '  %-22s %-26s %s\n' "$$stage@$$fam" "$$todo" "$$last"; \
	done; done; \
	summary=""; \
	for fam in $$families; do \
	  for stage in $(STAGES); do \
	    echo "==> dvc repro --single-item $$stage@$$fam"; \
	    runs=$$(dvc status --json "$$stage@$$fam" | python -c 'import json, sys; print(int(bool(json.load(sys.stdin))))'); \
	    t0=$$EPOCHREALTIME; \
	    dvc repro --single-item "$$stage@$$fam"; \
	    secs=$$(LC_ALL=C awk -v a="$$t0" -v b="$$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'); \
	    echo "<== $$stage@$$fam: $${secs} s"; \
	    if [ "$$runs" = 1 ]; then printf '%s\t%s\n' "$$stage@$$fam" "$$secs" >> $(RUN_TIMES); fi; \
	    summary+=$$(printf '\n  %-22s %9s s' "$$stage@$$fam" "$$secs"); \
	  done; \
	done; \
	if [ -z "$(FAMILIES)" ]; then \
	  echo "==> dvc repro (whole DAG: a no-op unless dvc.yaml has stages not listed in STAGES)"; \
	  dvc repro; \
	fi; \
	echo "wall time per stage (skipped stages take about a second):$$summary"
	@for fam in $(or $(FAMILIES),$$(justask families --names)); do justask results "$$fam"; done

# The pr profile's metrics pull requests are gated against (.github/workflows/pr-eval.yml): the
# pr profile run on HEAD in a scratch clone (this checkout's outputs stay as they are), its metrics
# copied to metrics/pr/. Commit them with the change that moved them.
pr-metrics: venv
	@d="$$(mktemp -d)"; trap 'rm -rf "$$d"' EXIT; \
	git clone -q . "$$d/repo"; \
	cd "$$d/repo"; export PYTHONPATH="$$d/repo/src"; \
	dvc pull -q data.dvc; justask profile pr; dvc repro; \
	cd "$(CURDIR)"; mkdir -p metrics/pr; \
	for fam in $$(cd "$$d/repo" && justask families --names); do cp "$$d/repo/metrics/$$fam.json" metrics/pr/; done; \
	echo "metrics/pr/ <- the pr profile's metrics of $$(git rev-parse --short HEAD)"

# Two workers (pytest-xdist), a test file at a time each, in collection order (tests/conftest.py
# puts the longest file first): the suite's wall time on CI's 2 cores is about its longest file's.
test: venv data
	pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

lint: venv
	ruff check .
	actionlint

clean:
	rm -rf .pytest_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
