# One entry point for everything CI and people run. `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Starts a local Ray cluster in the background if none runs (stop: .venv/bin/rayfn cluster stop).
demo: install
	$(BIN)/rayfn cluster start
	$(BIN)/rayfn deploy examples/my_job_queue.py
	$(BIN)/rayfn run examples/my_job_queue.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/python -m pytest tests/unit

test: lint typecheck
	$(BIN)/python -m pytest

# Speed and memory against raw Ray (minutes); `--quick` runs inside `make test`.
bench: install
	$(BIN)/python -m benchmarks.bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
