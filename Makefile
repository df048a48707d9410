# The two commands: `make run` (embedded stack) and `make test` (whole suite on real servers).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: run test install bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/jitaccess dev up

test: $(STAMP)
	$(BIN)/ruff check jitaccess tests bench
	$(BIN)/ruff format --check jitaccess tests bench
	$(BIN)/mypy jitaccess
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python bench/lifecycle.py 200 5

clean:
	rm -rf $(VENV) .jitaccess .pytest_cache
