# home-energy: every entry point a person or CI uses. `make run` and `make test` set
# everything up themselves on a machine that has only python3 and make.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev
SYSTEM_PACKAGES := tests/system-packages.txt

.PHONY: run test bench screenshots lint typecheck system-packages clean

$(VENV)/bin/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  rm -rf $(VENV); \
	  echo "error: '$(PYTHON) -m venv' failed: install the venv module (sudo apt-get install python3-venv) and retry" >&2; \
	  exit 1; }

# `make run` needs only what the dashboard runs on; the test tools come with `make test`.
$(RUNTIME_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	@touch $@

$(DEV_STAMP): $(RUNTIME_STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

system-packages:
	@.ci/install-system-packages $(SYSTEM_PACKAGES)

run: $(RUNTIME_STAMP)
	$(BIN)/home-energy run

lint: $(DEV_STAMP)
	$(BIN)/ruff check --quiet .

# mypy over home_energy/, kiosk/ and bench/ (the [tool.mypy] table in pyproject.toml); after ruff.
typecheck: $(DEV_STAMP) lint
	$(BIN)/mypy

# Serial by default. PYTEST_ARGS="-n 2 --dist loadgroup" runs it on two workers; tests/conftest.py
# keeps the browser, X, systemd and timing tests on one worker (the "exclusive" group).
test: system-packages $(DEV_STAMP) lint typecheck
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(DEV_STAMP)
	$(BIN)/python -m bench

screenshots: $(DEV_STAMP)
	$(BIN)/python tests/browser/screenshots.py

clean:
	rm -rf $(VENV) build *.egg-info
