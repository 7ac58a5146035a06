# Two commands on a fresh clone (Python 3.11+ only; no Postgres, Docker or Stripe account needed):
#   make run    — the API on http://127.0.0.1:8000 (docs at /docs), embedded PostgreSQL
#   make test   — the whole test suite (TEST_DATABASE_URL if set, else an embedded PostgreSQL)
#   make demo   — with `make run` going: the marketplace story through the API (Stripe simulator)
# Both install exactly the versions in uv.lock into .venv (again whenever pyproject.toml or
# uv.lock changes). `make lock` updates uv.lock after a dependency was added to pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# uv itself comes from PyPI into its own small venv (pip is all it needs); the Dockerfile pins the
# same version.
UV_VERSION := 0.13.9
UV_VENV := .uv
UV := $(UV_VENV)/bin/uv
# A stamp per version: changing UV_VERSION installs that version on the next run.
UV_STAMP := $(UV_VENV)/.uv-$(UV_VERSION)
# uv reads its own settings, never pip's: it resolves and downloads from PyPI (the source recorded
# in uv.lock), uses the Python that runs this Makefile and never downloads an interpreter.
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never

.PHONY: install run test test-ts lint format openapi lock lock-check clean

$(UV_STAMP):
	rm -rf $(UV_VENV)
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	touch $(UV_STAMP)

# --locked: refuse (rather than silently differ) when uv.lock does not match pyproject.toml.
# The project itself is installed editable, so `marketplace-api` and the tests use src/.
$(STAMP): pyproject.toml uv.lock | $(UV_STAMP)
	$(UV) sync --locked --extra dev
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/marketplace-api serve

test: $(STAMP)
	$(BIN)/pytest
	@$(MAKE) --no-print-directory test-ts

# The TypeScript client (clients/typescript): drift + type check, unit and live smoke tests, and the
# headless-Chromium test when /usr/bin/chromium (or CHROMIUM_PATH) exists. Without Node it says so
# and passes (CI, where CI=true, fails instead).
CHROMIUM_PATH ?= /usr/bin/chromium
export CHROMIUM_PATH
test-ts:
	@if ! command -v npm >/dev/null 2>&1; then \
	  if [ "$${CI:-}" = true ]; then echo "TypeScript client tests: Node.js/npm not found" >&2; exit 1; fi; \
	  echo "== TypeScript client tests SKIPPED: Node.js/npm not found (the Python tests ran)"; \
	else \
	  echo "== TypeScript client (clients/typescript): check, tests"; \
	  cd clients/typescript && { test -d node_modules || npm ci --no-audit --no-fund; } \
	    && npm run --silent check && npm test --silent \
	    && if [ -x "$(CHROMIUM_PATH)" ]; then npm run --silent test:browser; \
	       elif [ "$${CI:-}" = true ]; then echo "no Chromium at $(CHROMIUM_PATH)" >&2; exit 1; \
	       else echo "== TypeScript browser test SKIPPED: no Chromium at $(CHROMIUM_PATH) (apt-get install chromium)"; fi; \
	fi

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
	@# The TypeScript client's types follow the document (its drift check fails otherwise).
	@if command -v npm >/dev/null 2>&1 && [ -d clients/typescript/node_modules ]; then \
	  cd clients/typescript && npm run --silent generate; \
	else echo "TypeScript types not regenerated (no Node.js or no clients/typescript/node_modules)"; fi

# Re-resolve after pyproject.toml changed, keeping every other locked version; commit uv.lock.
# Upgrade one package on purpose: make lock LOCK_ARGS="--upgrade-package stripe"
lock: | $(UV_STAMP)
	$(UV) lock $(LOCK_ARGS)

# Fails when pyproject.toml and uv.lock disagree (CI runs it): run `make lock` and commit.
lock-check: | $(UV_STAMP)
	$(UV) lock --check

clean:
	rm -rf $(VENV) $(UV_VENV) .marketplace .pytest_cache .mypy_cache .ruff_cache
	rm -rf clients/typescript/node_modules clients/typescript/dist
