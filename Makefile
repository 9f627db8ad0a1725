# Two commands for a fresh machine: `make run` and `make test` (README).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# pytest-xdist workers for `make test` (tests are isolated: own temp dirs, PostgreSQL schemas, ports)
PYTEST_WORKERS ?= 2

.PHONY: run test lint typecheck pytest bench setup services clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## the platform on the embedded default: API + dashboards at http://127.0.0.1:8000 with a demo
run: setup
	$(BIN)/crowdlev serve --demo

## external services the tests use (PostgreSQL, anvil, Chromium); idempotent
services:
	bash scripts/services.sh

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: setup
	$(BIN)/mypy src

pytest: setup services
	. scripts/test-env.sh && $(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile --durations=15

test: lint typecheck pytest

bench: setup services
	. scripts/test-env.sh && for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
