# Corral: `make run` serves the demo, `make test` runs the whole suite. Both install first.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-slow soak lint typecheck bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/corral demo

test: install
	$(BIN)/pytest

# Conformance against heavy real runtime servers (OpenClaw's gateway), installed into the cache.
test-slow: install
	$(BIN)/pytest -m slow

# 500 randomized SIGKILLs per database (the CI run does 20 on SQLite and 6 on PostgreSQL).
soak: install
	CORRAL_SOAK_KILLS=$${CORRAL_SOAK_KILLS:-500} $(BIN)/pytest tests/crash -m soak -s

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy src

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .corral .pytest_cache .mypy_cache .ruff_cache
