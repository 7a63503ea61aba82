# ecosign-orchestrator: everything a fresh machine needs, from Python 3.11, apt and PyPI only.
#   make demo   create the environment, then run an end-to-end flow on the embedded defaults
#   make test   lint (ruff, mypy --strict, import-linter) and the whole test suite
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
# Some machines set PYTHONDONTWRITEBYTECODE: then every process compiles every module it imports
# again (1.9 s for a CLI command here instead of 0.85 s, and the suite starts hundreds).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: help env demo lint format test test-fast postgres browser clients soak chaos bench clean

help:
	@echo "make demo    run an end-to-end demo (SQLite + local sandbox)"
	@echo "make test    lint + full test suite (what CI runs)"
	@echo "make lint    ruff, mypy --strict, import-linter"
	@echo "make bench   benchmarks (prints ratios)"
	@echo "make chaos   crashes, restarts, partitions, faults, hostile input (~6 min)"
	@echo "make soak    20 minutes of steady flows with faults: memory and database stay flat"

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --all-extras
	@touch $@

env: $(VENV)/.synced

demo: env
	$(BIN)/ecosign-orchestrator demo

LINT = $(BIN)/ruff check src tests bench && $(BIN)/ruff format --check src tests bench && \
	$(BIN)/mypy && $(BIN)/lint-imports

lint: env
	$(LINT)

format: env
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

# PostgreSQL server binaries for the throwaway test clusters (tests start and stop them), and
# PgBouncer, which stands in for Supabase's pooler in front of them.
postgres:
	@if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "postgres: server binaries found"; \
	else \
		echo "postgres: installing the server with apt-get"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; \
	fi
	@if command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; then \
		echo "postgres: pgbouncer found"; \
	else \
		echo "postgres: installing pgbouncer with apt-get"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq pgbouncer >/dev/null; \
	fi

# Debian's Chromium for the console's browser tests: Playwright drives the system browser (no
# browser download; these machines reach only package registries).
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then \
		echo "browser: chromium found"; \
	else \
		echo "browser: installing chromium with apt-get"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

# The TypeScript client's packages, exactly as its committed lock says (Node 20 and npm come with
# the machine; the tests build the client and run it under Node and Deno, the `deno` package).
CLIENT := clients/typescript
$(CLIENT)/node_modules/.package-lock.json: $(CLIENT)/package-lock.json $(CLIENT)/package.json
	cd $(CLIENT) && npm ci --no-audit --no-fund

clients: $(CLIENT)/node_modules/.package-lock.json

# Two test processes (pytest-xdist): this machine has two cores; work stealing keeps one long
# test from finishing alone at the end. Lint runs beside the tests (neither needs the other):
# its ~15 s of one core would otherwise come first. Its output follows the tests'; either
# failing fails the run. (No $(MAKE) in this recipe: `make -n test` must not run it.)
test: env postgres browser clients
	@( $(LINT) ) > .lint.log 2>&1 & linting=$$!; \
	$(BIN)/pytest -m "not slow and not load" -n 2 --dist worksteal; tested=$$?; \
	wait $$linting; linted=$$?; cat .lint.log; rm -f .lint.log; \
	if [ $$linted -ne 0 ]; then echo "make test: lint failed (above)"; fi; \
	[ $$tested -eq 0 ] && [ $$linted -eq 0 ]

test-fast: env
	$(BIN)/pytest -m "not slow and not load and not postgres" -x

# Ours against PgQueuer, Procrastinate and DBOS Transact (the `bench` dependency group) on one
# throwaway PostgreSQL with the server's default durability; then the in-process benchmarks.
bench: env postgres
	$(UV) sync --frozen --all-extras --group bench
	@mkdir -p bench/results
	$(BIN)/python bench/peers.py --json bench/results/peers.json --plot bench/results/peers.png
	$(BIN)/python bench/core_noop.py
	$(BIN)/python bench/ffmpeg_overhead.py
	@rm -f $(VENV)/.synced  # the next `make env` drops the bench group again

# Worker SIGKILLs, PostgreSQL restarts, partitions, Edge faults, hostile input and a flood, on
# real processes; prints one table and fails if a guarantee broke (docs/reliability.md).
chaos: env postgres
	$(BIN)/pytest -m load
	$(BIN)/python -m tests.chaos.run

soak: env postgres
	$(BIN)/pytest -m slow -s tests/acceptance/test_soak.py
	$(BIN)/python -m tests.chaos.soak

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache .ecosign-orchestrator \
		$(CLIENT)/node_modules $(CLIENT)/dist $(CLIENT)/dist-test
