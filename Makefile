# Two commands on a fresh clone (Python 3.11+ only; no Postgres, Docker or Stripe account needed):
#   make run    — the API on http://127.0.0.1:8000 (docs at /docs), embedded PostgreSQL
#   make test   — the whole test suite (TEST_DATABASE_URL if set, else an embedded PostgreSQL)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-ts lint format openapi worker clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

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

clean:
	rm -rf $(VENV) .marketplace .pytest_cache .mypy_cache .ruff_cache
	rm -rf clients/typescript/node_modules clients/typescript/dist
