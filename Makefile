# Yo-Yo control plane. `make install` once, then `make run` / `make test`.
# Area-specific targets live in mk/*.mk (deploy, infra checks, local stack, bench).

VENV ?= .venv
PYTHON := $(VENV)/bin/python
SYSTEM_PYTHON ?= python3
# mk/*.mk add their own set-up steps (a browser, a separate venv) to this list.
INSTALL_EXTRAS :=

.PHONY: install test lint typecheck run clean help
.DEFAULT_GOAL := help

help:
	@echo "make install   set up .venv with everything (and the project's system packages)"
	@echo "make run       run the whole control plane locally (embedded default)"
	@echo "make test      lint, type-check and run the test suite"

-include mk/*.mk

$(VENV)/.installed: pyproject.toml
	$(SYSTEM_PYTHON) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(VENV)/.installed $(INSTALL_EXTRAS)

lint: install
	$(VENV)/bin/ruff check shared functions tests tools bench
	$(VENV)/bin/ruff format --check shared functions tests tools bench

typecheck: install
	$(VENV)/bin/mypy

test: install lint typecheck
	$(PYTHON) -m pytest $(PYTEST_ARGS)

run: install
	$(VENV)/bin/yoyoctl local up

clean:
	rm -rf build .yoyo .pytest_cache .mypy_cache .ruff_cache
