# One command per habit. Each sets itself up on a fresh machine: venv, install, servers.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# The pages' lint and type-check tools (ESLint, TypeScript) from the npm registry, pinned by
# package-lock.json; reinstalled only when the lockfile changes.
NODE_STAMP := node_modules/.installed-$(shell cat package-lock.json | sha1sum | cut -c1-12)

.PHONY: install js-deps run test lint format bench browser-deps pgbouncer-deps redis-deps cluster clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@rm -f node_modules/.installed-*
	@touch $@

js-deps: $(NODE_STAMP)

## The service on :8000 with embedded PostgreSQL and Redis (unless DATABASE_URL/REDIS_URL are set).
run: install
	$(BIN)/peerchat dev

## The whole suite: lint, types, then every test against real servers (browser tests included),
## in TEST_WORKERS processes (each with its own PostgreSQL and Redis; TEST_WORKERS=0: one process).
## worksteal: a worker that runs out takes queued tests from the other, so the slow ones at
## the end do not leave a core idle.
TEST_WORKERS ?= 2
test: install browser-deps pgbouncer-deps redis-deps lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

lint: install js-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	node_modules/.bin/eslint --max-warnings 0 chat/static tests/js eslint.config.js
	@mkdir -p build/pages
	$(BIN)/python -m protocol.jstypes > build/pages/protocol.d.ts
	node_modules/.bin/tsc -p jsconfig.json

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m bench

## Debian's Chromium for the Playwright tests (a test tool's own browser download cannot work here).
browser-deps:
	@bash tests/browser/install-chromium.sh

## A PostgreSQL primary with a synchronous streaming standby, PgBouncer, Redis and 3 web
## processes on this machine, fresh each time, to try failovers (docs/scaling.md).
cluster: install pgbouncer-deps redis-deps
	$(BIN)/python -m chat.devcluster

## Debian's PgBouncer for the pooling fault test and `make cluster`.
pgbouncer-deps:
	@bash tests/faults/install-pgbouncer.sh

## Debian's Redis 7 (server, sentinel, cli) for the Sentinel/Cluster topologies
## (tests/support/redis_topology.py, chat/devredis/) and `make cluster`.
redis-deps:
	@bash tests/faults/install-redis.sh

clean:
	rm -rf $(VENV) node_modules .devdata .pytest_cache .mypy_cache .ruff_cache test-artifacts
