# Two commands do everything on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3.12
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[all,dev]"
	touch $@

# Standard VAE against the InfoVAE regimes on `strategies` (a few minutes on 2 cores), then the report.
demo: $(VENV)/.installed
	$(BIN)/infovae sweep examples/quickstart.yaml --out runs/quickstart
	$(BIN)/infovae report runs/quickstart

test: $(VENV)/.installed
	$(BIN)/python -m pytest

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/run.py
