# Two commands for a fresh machine: `make run` and `make test`.
# The package is (re)installed only when pyproject.toml changed, so `make run` starts at once
# the second time; pip's output goes to .venv/install.log and is shown only if it fails.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PIP_LOG := $(VENV)/install.log

.PHONY: run test install dev lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip > $(PIP_LOG) 2>&1 || (cat $(PIP_LOG); exit 1)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo "installing jmbooru into $(VENV) (log: $(PIP_LOG))"
	@$(BIN)/pip install --quiet -e . > $(PIP_LOG) 2>&1 || (cat $(PIP_LOG); exit 1)
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	@echo "installing jmbooru with the redis, notify, s3 and dev extras into $(VENV) (log: $(PIP_LOG))"
	@$(BIN)/pip install --quiet -e ".[redis,notify,s3,dev]" > $(PIP_LOG) 2>&1 || (cat $(PIP_LOG); exit 1)
	@# ComicTagger's comicapi, for the tests that read ComicInfo.xml back (see the dev extra in
	@# pyproject.toml for why it goes in without its declared dependencies).
	@$(BIN)/pip install --quiet --no-deps "comictagger==1.6.0b9" >> $(PIP_LOG) 2>&1 || (cat $(PIP_LOG); exit 1)
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev tests/opds_readium/node_modules/.installed

# Readium's OPDS converter (r2-opds-js, npm) for tests/test_opds_clients.py; its install script only
# cleans up with rimraf, which is not a dependency, hence --ignore-scripts.
tests/opds_readium/node_modules/.installed: tests/opds_readium/package.json
	@if command -v npm >/dev/null 2>&1; then \
		cd tests/opds_readium && npm install --no-audit --no-fund --ignore-scripts --silent && touch node_modules/.installed; \
	else echo "npm not found: tests/test_opds_clients.py will fail until it is installed (Debian: npm)"; fi

run: install
	$(BIN)/jmbooru serve --host $(HOST) --port $(PORT)

test: dev
	$(BIN)/python -m pytest -q -n 2  # both cores (pytest-xdist): about 3–7 minutes on 2 cores (957 tests)

lint: dev
	$(BIN)/ruff check app jmbooru tests bench
	$(BIN)/mypy app jmbooru

bench: dev
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
