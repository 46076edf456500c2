# One command per habit. Each sets itself up on a fresh machine: venv, install, servers.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: install run test lint format bench browser-deps clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

## The service on :8000 with embedded PostgreSQL and Redis (unless DATABASE_URL/REDIS_URL are set).
run: install
	$(BIN)/peerchat dev

## The whole suite: lint, types, then every test against real servers (browser tests included).
test: install browser-deps lint
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m bench

## Debian's Chromium for the Playwright tests (a test tool's own browser download cannot work here).
browser-deps:
	@bash tests/browser/install-chromium.sh

clean:
	rm -rf $(VENV) .devdata .pytest_cache .mypy_cache .ruff_cache test-artifacts
