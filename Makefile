# Two commands do everything on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3.12
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo lint test bench docs study-full

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[all,dev]"
	touch $@

# Standard VAE against the InfoVAE regimes on `strategies` (a few minutes on 2 cores: one compiled
# NumPyro program per group of trials), then the report.
demo: $(VENV)/.installed
	$(BIN)/infovae sweep examples/quickstart.yaml --executor vectorized --out runs/quickstart
	$(BIN)/infovae report runs/quickstart

# Formatting, lint and the type check of the public modules (the files in pyproject's [tool.mypy]).
lint: $(VENV)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

# Two worker processes (pytest-xdist), each test file on one worker so that a file's shared fixtures are made once.
test: lint
	$(BIN)/python -m pytest -n 2 --dist loadfile

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/run.py

# Every figure and table in README.md and docs/ that two CPU cores make (about three hours, one job at a
# time so that the timings are not shared): the demo and one of its runs' report, the backends side by
# side, the regime study (docs/regime_study.md), the sweep benchmark. `make study-full` on a GPU machine
# makes the whole grid's study (docs/regime_study_full.md); `make bench` the step benchmark
# (docs/performance.md).
docs: demo
	run=$$(ls -d runs/quickstart/trials/beta=1_*-seed0/run) && $(BIN)/infovae report $$run && \
	rm -rf docs/quickstart/run && mkdir -p docs/quickstart/run && cp $$run/report/*.png docs/quickstart/run/
	rm -f docs/quickstart/*.png && cp runs/quickstart/report/*.png runs/quickstart/results.md docs/quickstart/
	$(BIN)/infovae sweep examples/backends.yaml --workers 1 --out runs/backends --no-progress
	cp runs/backends/results.md docs/backends.md
	$(BIN)/python examples/regime_study/run.py --results docs/regime_study/results --doc docs/regime_study.md --figures docs/regime_study --readme README.md
	$(BIN)/python benchmarks/sweeps.py --trials 16 56 --steps 300

study-full: $(VENV)/.installed
	$(BIN)/python examples/regime_study/run.py --full --out runs/regime_study_full --results docs/regime_study_full/results --doc docs/regime_study_full.md --figures docs/regime_study_full
