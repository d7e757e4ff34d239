# The two commands: `make run` and `make test`. Everything else here supports them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: run test lint format clean

$(BIN)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

run: $(BIN)/.installed
	$(BIN)/snakemake --cores $(CORES)

test: $(BIN)/.installed
	$(BIN)/pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check sinet_bm scripts tests
	$(BIN)/ruff format --check sinet_bm scripts tests
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint

format: $(BIN)/.installed
	$(BIN)/ruff check --fix sinet_bm scripts tests
	$(BIN)/ruff format sinet_bm scripts tests
	$(BIN)/snakefmt Snakefile rules

clean:
	rm -rf results resources/synthetic .snakemake
