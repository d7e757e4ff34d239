# The two commands: `make run` and `make test`. Everything else here supports them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
# Test files run on two workers: the SLURM tests spend most of their time waiting for the
# scheduler, and the other files run meanwhile.
TEST_WORKERS ?= 2
# Debian packages: WeasyPrint's libraries and fonts (PDF report); for the tests also a real
# browser and poppler, which check the HTML and PDF as a reader would see them, and R's
# survival package, against which the statistics are compared.
REPORT_DEBS := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core
TEST_DEBS := $(REPORT_DEBS) chromium poppler-utils r-base-core r-cran-survival slurm-wlm munge

.PHONY: run test lint format schemas clean report-deps test-deps

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

lint: $(BIN)/.installed
	$(BIN)/ruff check sinet_bm scripts tests
	$(BIN)/ruff format --check sinet_bm scripts tests
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint

format: $(BIN)/.installed
	$(BIN)/ruff check --fix sinet_bm scripts tests
	$(BIN)/ruff format sinet_bm scripts tests
	$(BIN)/snakefmt Snakefile rules

# Files generated from the code that is their source; tests check that they are current.
schemas: $(BIN)/.installed
	$(BIN)/python -c "from sinet_bm.simulate import design_schema_text as text; \
		open('schemas/synthetic.schema.yaml', 'w').write(text())"

clean:
	rm -rf results resources/synthetic .snakemake
