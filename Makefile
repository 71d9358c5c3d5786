# One entry point for everything CI and people run. `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install setup demo test lint typecheck unit bench clean

# Bytecode at install, once: where PYTHONDONTWRITEBYTECODE is set (many containers) every Ray
# worker, actor and replica would otherwise compile Ray's modules afresh, seconds each.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv  # installs in seconds where pip takes a minute
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# What the tests run that is not Python, from Debian (CI is a fresh Debian machine):
# tests/test_head_restart.py runs Ray's GCS on a real redis-server, and the console's
# test (tests/test_observability.py) drives a headless chromium.
DEBIAN_PACKAGES := redis-server chromium
setup:
	@missing=""; for p in $(DEBIAN_PACKAGES); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	[ -z "$$missing" ] || { \
	  if [ "$$(id -u)" = 0 ]; then sudo=; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	  else echo "make setup: missing$$missing; run as root, or apt-get install$$missing" >&2; exit 1; fi; \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; }

# Starts a local Ray cluster in the background if none runs (stop: .venv/bin/rayfn cluster stop).
demo: install
	$(BIN)/rayfn cluster start
	$(BIN)/rayfn deploy examples/my_job_queue.py
	$(BIN)/rayfn run examples/my_job_queue.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy reads the package as Python imports it (rayfn = sdk/, rayfn.runtime = runtime/,
# rayfn.serve = serve/): the editable install maps them with an import hook mypy cannot
# follow, and without this tree every import of rayfn would be Any to it.
typecheck: install
	@rm -rf .typecheck && mkdir -p .typecheck/rayfn
	@ln -s $(CURDIR)/sdk/* $(CURDIR)/runtime $(CURDIR)/serve .typecheck/rayfn/
	$(BIN)/mypy

unit: install
	$(BIN)/python -m pytest tests/unit

# Parallel where nothing depends: the apt installs beside pip's, lint beside mypy, and the
# test modules in two pytest processes, each with its own Ray clusters (tests/conftest.py).
test:
	$(MAKE) --no-print-directory -j2 setup install
	$(MAKE) --no-print-directory -j2 lint typecheck
	$(BIN)/python -m pytest -n 2 --dist loadfile

# Speed and memory against raw Ray (minutes); `--quick` runs inside `make test`.
bench: install
	$(BIN)/python -m benchmarks.bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
