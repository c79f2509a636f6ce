# docroute — the entry point for running, testing and checking the project.
SHELL := /bin/bash
UV_VERSION := 0.13.8
VENV := .venv
BIN := $(VENV)/bin
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)

.PHONY: help venv run up test test-fast lint format typecheck bench chaos audit fuzz screenshots images clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' Makefile | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(UV):
	python3 -m pip install --user --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: uv.lock pyproject.toml $(UV)
	$(UV) sync --frozen --all-packages
	@touch $@

venv: $(VENV)/.synced  ## create .venv from uv.lock

run: venv  ## run intake, routing and archive in one process with embedded defaults (no servers)
	$(BIN)/docroute run $(ARGS)

up: venv  ## run each service as gunicorn + worker processes (and the console) against the servers named by DOCROUTE_*
	$(BIN)/docroute up

test: venv lint  ## the whole suite: lint, types, unit, api, integration and e2e tests
	$(BIN)/pytest

test-fast: venv  ## unit and api tests only (no servers)
	$(BIN)/pytest -m "not integration and not e2e"

lint: venv  ## ruff, mypy (strict on shared and domain code) and import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: venv  ## apply ruff formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: venv  ## benchmarks against raw baselines; writes bench/results/
	$(BIN)/python -m bench $(ARGS)

chaos: venv  ## fault suite on private servers: kills, broker faults, 60 s outages; writes chaos/results/
	$(BIN)/python -m chaos $(ARGS)

# Offline (or behind a PyPI mirror without advisories) it prints NOT CHECKED and why, and passes; a known
# vulnerability always fails. `make audit AUDIT_FLAGS=` also fails when anything could not be checked.
AUDIT_FLAGS ?= --allow-unchecked
audit: venv  ## pip-audit of every package pinned in uv.lock; says NOT CHECKED for what it could not check
	$(BIN)/python tools/dep_audit.py --uv $(UV) $(AUDIT_FLAGS)

FUZZ_ARGS ?= --seconds 15
fuzz: venv  ## schemathesis --checks all against each service's OpenAPI, once per role family (about 5 min)
	$(BIN)/python tools/fuzz.py $(FUZZ_ARGS)

clean:  ## remove the virtual environment and local state
	rm -rf $(VENV) var

screenshots: venv  ## the console's main pages as PNG files in docs/screenshots (headless Chromium)
	DOCROUTE_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q tests/docroute/test_console_browser.py

# One recipe (deploy/Dockerfile) for the four images; SERVICE picks the service, PORT its port.
IMAGE_PREFIX ?= docroute
IMAGE_TAG ?= 0.1.0
IMAGES := intake:8001 routing:8002 archive:8003 console:8000
images:  ## build the four images from deploy/Dockerfile (needs Docker; IMAGE_PREFIX=..., IMAGE_TAG=...)
	@set -e; for pair in $(IMAGES); do svc=$${pair%%:*}; port=$${pair##*:}; \
	  docker build -f deploy/Dockerfile --build-arg SERVICE=$$svc --build-arg PORT=$$port \
	    -t $(IMAGE_PREFIX)/$$svc:$(IMAGE_TAG) . ; done
