# Every target creates .venv itself; nothing needs to be installed by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint typecheck clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: run the quickstart notebook on SQLite and the bundled offline models
demo: $(STAMP)
	$(PY) -m maquina_nb.demo

## test: the whole suite (PostgreSQL and browser tests run when available; always under CI=true)
test: $(STAMP)
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

## bench: the speed targets of every issue, as ratios against the raw libraries
bench: $(STAMP)
	$(PY) -m benchmarks

lint: $(STAMP)
	$(VENV)/bin/ruff check maquina_nb tests benchmarks
	$(VENV)/bin/ruff format --check maquina_nb tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) demo_output bench_results maquina.db maquina.db-wal maquina.db-shm
