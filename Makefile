# home-energy: every entry point a person or CI uses. `make run` and `make test` set
# everything up themselves on a machine that has only python3.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: run test bench screenshots serve sync lint clean

$(VENV)/bin/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  rm -rf $(VENV); \
	  echo "error: '$(PYTHON) -m venv' failed: install the venv module (sudo apt-get install python3-venv) and retry" >&2; \
	  exit 1; }
	@$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

run: $(STAMP)
	$(BIN)/home-energy run

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench

screenshots: $(STAMP)
	$(BIN)/python tests/browser/screenshots.py

clean:
	rm -rf $(VENV) build *.egg-info
