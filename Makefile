# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv when missing and install the project into it; the install is
# skipped (a no-op) while .venv/.installed is newer than pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/speclens demo

test: $(STAMP)
	$(BIN)/ruff check speclens tests benchmarks
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check speclens tests benchmarks
	$(BIN)/ruff format --check speclens tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/gram.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
