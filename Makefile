# Two commands on a fresh machine: `make run` (set up and serve), `make test` (set up and test).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Install steps, each with its stamp: `make run` needs only what serving needs; test, lint and
# documentation tools (a few times as long to install) come with the first target that uses them.
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
DOCS_STAMP := $(VENV)/.installed-docs
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install run test soak lint fmt typecheck check-fixtures check docs docs-build bench screenshot clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 18

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $(RUN_STAMP)

$(TEST_STAMP): pyproject.toml tests/node/package-lock.json $(RUN_STAMP)
	$(BIN)/python -m pip install -q -e '.[test,docs]'
	cd tests/node && npm ci --no-audit --no-fund --loglevel=error
	touch $(TEST_STAMP)

# The documentation tools alone, for `make docs` (the tests build the site too, so the test
# install includes them).
$(DOCS_STAMP): pyproject.toml $(RUN_STAMP)
	$(BIN)/python -m pip install -q -e '.[docs]'
	touch $(DOCS_STAMP)

install: $(TEST_STAMP)  ## create .venv and install mockserver with its test and docs tools

run: $(RUN_STAMP)  ## serve the shipped scenarios on http://127.0.0.1:8000/v1 (ARGS="--port 0 ...")
	$(BIN)/mockserver serve $(ARGS)

test: $(TEST_STAMP)  ## run the test suite
	$(BIN)/python -m pytest -q $(ARGS)

soak: $(TEST_STAMP)  ## minutes of mixed traffic, memory must stay flat (SOAK_SECONDS=180)
	$(BIN)/python -m pytest -q -s -m soak tests/test_soak.py

lint: $(TEST_STAMP)  ## ruff and mypy, checking only
	$(BIN)/ruff check mockserver tests bench
	$(BIN)/ruff format --check mockserver tests bench
	$(BIN)/mypy

fmt: $(TEST_STAMP)  ## format and fix what ruff can
	$(BIN)/ruff format mockserver tests bench
	$(BIN)/ruff check --fix mockserver tests bench

screenshot: $(TEST_STAMP)  ## retake docs/inspector.png (and -dark) in headless Chromium (/usr/bin/chromium)
	MOCKSERVER_SCREENSHOT=docs/inspector.png $(BIN)/python -m pytest -q \
		tests/test_inspector_browser.py -k test_screenshot

check-fixtures: $(RUN_STAMP)  ## validate the example scenarios (each file is used on its own)
	@for file in fixtures/*.yaml; do $(BIN)/mockserver validate $$file || exit 1; done

# Material for MkDocs prints a notice about MkDocs 2 on every run; it is not about this site.
MKDOCS := NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs

docs: $(DOCS_STAMP)  ## serve the documentation on http://127.0.0.1:8001, rebuilt on each edit
	$(MKDOCS) serve --dev-addr 127.0.0.1:8001

docs-build: $(DOCS_STAMP)  ## build the documentation into site/, failing on any warning (as CI)
	$(MKDOCS) build --strict

check: lint check-fixtures test docs-build  ## everything CI runs

bench: $(TEST_STAMP)  ## the figures of docs/performance.md (needs wrk and valgrind; npm for aimock; ~20 minutes)
	$(BIN)/python bench/run.py $(ARGS)
	$(BIN)/python bench/instructions.py
	$(BIN)/python bench/streams.py --streams 1000 --delay 0.1 --chunks 40
	$(BIN)/python bench/streams.py --streams 10000 --delay 1 --chunks 30 --ramp 10
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/plugin_overhead.py

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info site
