# The two commands: `make run` and `make test`. Everything else here supports them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Snakemake loads every executor plugin it finds at each start, and the SLURM plugin then
# asks SLURM's controller for its configuration: where none answers that costs seconds per
# start. So the plugin lives in an environment of its own, layered on .venv, used only to
# submit to a cluster (`make slurm`).
SLURM_VENV := .venv-slurm
SLURM_PLUGINS := ^snakemake-executor-plugin-slurm
CORES ?= all
# Test files run on four workers on 2 cores: most tests are Snakemake runs that leave a core
# idle between jobs (and the SLURM tests wait for the scheduler). Measured on 2 cores, from a
# fresh clone on 2026-12-07: 5 min 39 s of tests with three workers, 5 min 12 s with four
# (earlier: 6 min 9 s with two).
TEST_WORKERS ?= 4
# make bench: patients per synthetic export, the simulator's seed, cores for the workflow.
BENCH_SIZES ?= 1000 10000 100000 1000000
BENCH_SEED ?= 1
BENCH_CORES ?= 2
# Debian packages: WeasyPrint's libraries and fonts (PDF report); for the tests also a real
# browser and poppler, which check the HTML and PDF as a reader would see them, and R's
# survival and metafor packages, against which the statistics (metafor: the pooling across
# centres) are compared.
REPORT_DEBS := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core
TEST_DEBS := $(REPORT_DEBS) chromium poppler-utils r-base-core r-cran-survival r-cran-metafor slurm-wlm munge

.PHONY: run run-multicentre test bench lint format schemas docs slurm clean report-deps test-deps

$(BIN)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	grep -v '$(SLURM_PLUGINS)' requirements.lock | $(BIN)/pip install --quiet -r /dev/stdin
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# .venv-slurm sees everything installed in .venv (a .pth file adds its site-packages) and
# adds the two SLURM plugins, pinned in requirements.lock; its own `snakemake` launcher
# makes the jobs that SLURM starts run with the same environment.
$(SLURM_VENV)/.installed: $(BIN)/.installed requirements.lock
	$(BIN)/python -m venv --without-pip $(SLURM_VENV)
	base=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	here=$$($(SLURM_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	echo "import site; site.addsitedir('$$(realpath $$base)')" > $$here/sinet_bm_base.pth
	grep '$(SLURM_PLUGINS)' requirements.lock | $(SLURM_VENV)/bin/python -m pip install \
		--quiet --no-deps --ignore-installed -r /dev/stdin
	printf '#!%s\nimport sys\nfrom snakemake.cli import main\nsys.exit(main())\n' \
		"$$(realpath $(SLURM_VENV))/bin/python" > $(SLURM_VENV)/bin/snakemake
	chmod +x $(SLURM_VENV)/bin/snakemake
	touch $@

slurm: $(SLURM_VENV)/.installed

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

# The example consortium: four synthetic centres, each in its own dialect, as
# resources/multicentre.yaml declares them; simulated again only when the simulator or that
# config changes, then the whole study on them (results/multicentre/).
MULTICENTRE_CONFIG := resources/multicentre.yaml
resources/multicentre/.written: $(BIN)/.installed $(MULTICENTRE_CONFIG) sinet_bm/simulate.py
	$(BIN)/python -m sinet_bm.simulate consortium $(MULTICENTRE_CONFIG)
	touch $@

run-multicentre: resources/multicentre/.written report-deps
	$(BIN)/snakemake --cores $(CORES) --configfile $(MULTICENTRE_CONFIG)

test: $(BIN)/.installed $(SLURM_VENV)/.installed test-deps
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

# Files generated from the code that is their source; tests check that they are current.
schemas: $(BIN)/.installed
	$(BIN)/python -c "from sinet_bm.simulate import design_schema_text as text; \
		open('schemas/synthetic.schema.yaml', 'w').write(text())"

# The generated blocks of docs/*.md, from the schemas they document (synthetic.schema.yaml
# among them, hence after `schemas`); tests/test_docs.py checks that they are current.
docs: schemas
	$(BIN)/python -c "from sinet_bm.docs import write_docs; write_docs()"

clean:
	rm -rf results resources/synthetic resources/multicentre .snakemake
