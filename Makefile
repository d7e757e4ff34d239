# The two commands: `make run` and `make test`. Everything else here supports them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
# Test files run on two workers: the SLURM tests spend most of their time waiting for the
# scheduler, and the other files run meanwhile.
TEST_WORKERS ?= 2
# make bench: patients per synthetic export, the simulator's seed, cores for the workflow.
BENCH_SIZES ?= 1000 10000 100000 1000000
BENCH_SEED ?= 1
BENCH_CORES ?= 2
# Debian packages: WeasyPrint's libraries and fonts (PDF report); for the tests also a real
# browser and poppler, which check the HTML and PDF as a reader would see them, and R's
# survival package, against which the statistics are compared.
REPORT_DEBS := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core
TEST_DEBS := $(REPORT_DEBS) chromium poppler-utils r-base-core r-cran-survival slurm-wlm munge

.PHONY: run test bench lint format clean report-deps test-deps

$(BIN)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

define install_debs
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
			echo "missing system packages: $$missing"; \
			echo "install them (Debian/Ubuntu: sudo apt-get install $$missing) and run make again"; \
			exit 1; \
		fi; \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

report-deps:
	$(call install_debs,$(REPORT_DEBS))

test-deps:
	$(call install_debs,$(TEST_DEBS))

run: $(BIN)/.installed report-deps
	$(BIN)/snakemake --cores $(CORES)

test: $(BIN)/.installed test-deps
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

# Whole study, cold, on synthetic exports of BENCH_SIZES patients (cached in
# benchmarks/exports/), against the one-process floor; see benchmarks/run.py.
bench: $(BIN)/.installed report-deps
	PYTHONPATH=$(CURDIR) $(BIN)/python benchmarks/run.py \
		--sizes $(BENCH_SIZES) --seed $(BENCH_SEED) --cores $(BENCH_CORES)

lint: $(BIN)/.installed
	$(BIN)/ruff check sinet_bm scripts tests benchmarks
	$(BIN)/ruff format --check sinet_bm scripts tests benchmarks
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint

format: $(BIN)/.installed
	$(BIN)/ruff check --fix sinet_bm scripts tests benchmarks
	$(BIN)/ruff format sinet_bm scripts tests benchmarks
	$(BIN)/snakefmt Snakefile rules

clean:
	rm -rf results resources/synthetic .snakemake
