# dodoso: `make run` serves a demo on 127.0.0.1:8080; `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8080
STAMP := $(VENV)/.installed

.PHONY: install run test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

# Embedded default: SQLite + blobs under ./instance, a demo project, served on 127.0.0.1.
run: export DODOSO_ENV ?= development
run: install
	$(BIN)/dodoso db upgrade
	$(BIN)/dodoso demo
	$(BIN)/dodoso serve --host 127.0.0.1 --port $(PORT)

# SQLite by default; set DODOSO_TEST_DATABASE_URL=postgresql://… to run on PostgreSQL.
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check server forms sync migrations tests

clean:
	rm -rf $(VENV) build *.egg-info
