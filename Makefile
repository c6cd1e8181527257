# `make test` and `make demo` are all a fresh machine with Python needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test lint typecheck pytest demo bench loadtest clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Tests, lint, bench and loadtest: the test tools, hiredis, and what the
# benchmarks compare against (gunicorn, Flask-Session).
$(BIN)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,hiredis,bench]'
	touch $@

# The demo: the package and a redis-server for its throwaway Redis, no more.
$(BIN)/.installed-demo: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	touch $@

test: lint typecheck pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy --strict flask_scs_redis

pytest: $(BIN)/.installed
	$(BIN)/pytest

demo: $(BIN)/.installed-demo
	$(BIN)/python examples/flask_app.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench.py

loadtest: $(BIN)/.installed
	$(BIN)/python benchmarks/load_test.py
