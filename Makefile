# Two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install dev lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

# The second line brings ComicTagger's comicapi, for the tests that read ComicInfo.xml back (see the
# dev extra in pyproject.toml for why it goes in without its declared dependencies).
dev: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[redis,dev]"
	$(BIN)/pip install --quiet --no-deps "comictagger==1.6.0b9"

run: install
	$(BIN)/jmbooru serve --host $(HOST) --port $(PORT)

test: dev
	$(BIN)/python -m pytest -q

lint: dev
	$(BIN)/ruff check app tests bench
	$(BIN)/mypy app

bench: dev
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
