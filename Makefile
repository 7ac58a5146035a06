# Two commands on a fresh clone (Python 3.11+ only; no Postgres, Docker or Stripe account needed):
#   make run    — the API on http://127.0.0.1:8000 (docs at /docs), embedded PostgreSQL
#   make test   — the whole test suite (TEST_DATABASE_URL if set, else an embedded PostgreSQL)
#   make demo   — with `make run` going: the marketplace story through the API (Stripe simulator)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format openapi worker clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/marketplace-api serve

test: $(STAMP)
	$(BIN)/pytest

.PHONY: demo
demo: $(STAMP)
	$(BIN)/marketplace-api demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

openapi: $(STAMP)
	$(BIN)/marketplace-api export-openapi

clean:
	rm -rf $(VENV) .marketplace .pytest_cache .mypy_cache .ruff_cache
