# HeartEye developer targets. Every target uses the virtual environment in .venv (`make install`).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed

# The MIT-BIH records: ../shared/datasets/mitdb on the development machines, else set it yourself.
SHARED_MITDB := $(abspath ../shared/datasets/mitdb)
ifeq ($(origin HEARTEYE_MITDB_DIR), undefined)
  ifneq ($(wildcard $(SHARED_MITDB)/100.hea),)
    export HEARTEYE_MITDB_DIR := $(SHARED_MITDB)
  endif
endif

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# torch first, with pip: its pinned CPU wheel lies on the development machines' disk, where pip
# finds it. Then uv installs everything else at the versions uv.lock pins (--frozen: as locked,
# never re-resolved; run `.venv/bin/uv lock` after editing pyproject.toml's dependencies, a test
# checks the two agree) and keeps that torch; --inexact keeps pip and uv themselves.
TORCH_PIN := $(shell grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')

$(STAMP): pyproject.toml uv.lock
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==0.13.9 "$(TORCH_PIN)"
	UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv sync --quiet --frozen --inexact --extra dev \
		--no-install-package torch
	$(PY) -m hearteye.preprocess.warmup  # compile the preprocessing kernels into numba's cache
	$(PY) -m serving.signal_json  # and the serving's JSON signal parser
	touch $(STAMP)

.PHONY: install
install: $(STAMP) ## Create .venv with HeartEye and its development tools

.PHONY: lint
lint: install ## ruff (lint + format check), import contracts, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

.PHONY: format
format: install ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: system
system: ## Install nginx, chromium and prometheus (apt) and start PostgreSQL if needed
	bash scripts/ensure-system.sh nginx chromium prometheus postgresql

.PHONY: test
test: lint system ## Set up and run every test tier (lint, unit, data, integration, e2e, notebooks)
	$(BIN)/pytest

.PHONY: demo
demo: install ## Set up and run the main job: quick-train, promote, serve, predict a real strip
	$(PY) scripts/demo.py

.PHONY: demo-stop
demo-stop: install ## Stop the API that `make demo` left running
	$(PY) scripts/demo.py stop

.PHONY: bench
bench: install ## Benchmarks: the API vs `mlflow models serve` and MLServer, wrk check (docs/benchmarks.md, ~30 min)
	bash scripts/ensure-system.sh wrk
	$(PY) benchmarks/bench_serving.py

.PHONY: bench-recordings
bench-recordings: install ## Benchmark: analysing a 30-min and a 24-h recording (docs/recordings.md)
	$(PY) benchmarks/bench_recordings.py

.PHONY: bench-promotion
bench-promotion: install ## Benchmark: promote -> every worker (webhooks), registry load at rest (~3 min)
	$(PY) benchmarks/bench_promotion.py

.PHONY: chaos
chaos: install ## Faults under load on a fresh native stack, through nginx (docs/reliability.md, ~10 min)
	bash scripts/ensure-system.sh nginx postgresql
	$(PY) benchmarks/chaos.py

SOAK_MINUTES ?= 30
.PHONY: soak
soak: install ## Soak: SOAK_MINUTES (30) at 80 % of the maximum through nginx (docs/reliability.md)
	bash scripts/ensure-system.sh nginx postgresql
	$(PY) benchmarks/soak.py --minutes $(SOAK_MINUTES)

# The native stack (infra/native/hearteye_stack.py): the compose topology on 127.0.0.1, no engine.
# HEARTEYE_HTTP_PORT picks nginx's port (8080); state, logs and stack.env go to HEARTEYE_STACK_DIR.
.PHONY: stack-up
stack-up: install ## Start the native stack in the background and print its URL (installs nginx)
	bash scripts/ensure-system.sh nginx prometheus postgresql
	$(PY) infra/native/hearteye_stack.py up

.PHONY: stack-down
stack-down: install ## Stop what stack-up started and drop its databases
	$(PY) infra/native/hearteye_stack.py down

.PHONY: stack-status
stack-status: install ## Show the native stack's processes and health
	$(PY) infra/native/hearteye_stack.py status

.PHONY: clean
clean: ## Remove caches (keeps .venv and .hearteye)
	rm -rf .pytest_cache .ruff_cache .mypy_cache
