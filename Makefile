# Two commands are the whole set-up on a fresh machine with Python 3:
#   make demo   installs (from PyPI), then trains on the embedded digits (no network needed)
#   make test   installs, then runs the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-fast demo lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,export,tensorboard,hf,serve]"
	touch $(STAMP)

# Two test processes (pytest-xdist), each test file whole in one of them: the suite is
# mostly single-threaded Python and graph building, so this machine's two cores halve it.
# --no-loadscope-reorder: files are handed out longest first (tests/conftest.py's order),
# not xdist's most-tests-first, which left a minute-long file for the end.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

# The unit tests only (seconds): tests that need TensorFlow or start imgcls are skipped.
test-fast: $(STAMP)
	IMGCLS_FAST_TESTS=1 $(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/imgcls train --dataset digits --arch simplecnn --epochs 30

lint: $(STAMP)
	$(BIN)/ruff format --check imgcls_cli tests benchmarks
	$(BIN)/ruff check imgcls_cli tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format imgcls_cli tests benchmarks
	$(BIN)/ruff check --fix imgcls_cli tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,export,tensorboard,hf,serve,bench]"
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
