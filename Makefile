# Two commands matter: `make run` (install, run the default pipeline, build the report) and
# `make test` (install, run the whole test suite). Both create .venv on first use. `make lint`
# checks style, layers and types.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: install run test lint dryrun bench clean

$(BIN)/sparselab-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e ".[test]"
	touch $@

install: $(BIN)/sparselab-installed

run: install
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report results/report.html
	@echo "tables (.md; .csv beside them) and figures (.png; .pdf beside them) of every study:"
	@ls -1 results/*/summary/*.md results/*/summary/*.png results/ledger/*.md results/ledger/*.png results/reproduction/*.md
	@echo "report (all of them, with captions): results/report.html"

test: install
	$(BIN)/pytest

# Style and structure: Snakemake's linter, the layers of lib/sparselab ([tool.importlinter] in
# pyproject.toml), ruff's lint and format, mypy on lib/. CI runs it before the tests.
lint: install
	$(BIN)/snakemake --lint
	$(BIN)/lint-imports
	$(BIN)/ruff check lib tests workflow_scripts bench
	$(BIN)/ruff format --check lib tests workflow_scripts bench
	$(BIN)/mypy

dryrun: install
	$(BIN)/snakemake -n --quiet rules | grep -A20 -E "^Job stats|Nothing to be done"
	$(BIN)/python -m sparselab plan configs/*.yaml

bench: install
	$(BIN)/python bench/train_step.py
	$(BIN)/python bench/pathnorm.py
	$(BIN)/python bench/gradflow.py
	$(BIN)/python bench/speedup.py
	$(BIN)/python bench/dst.py
	$(BIN)/python bench/transfer.py
	$(BIN)/python bench/augment.py
	$(BIN)/python bench/dag.py

clean:
	rm -rf results logs benchmarks .resume .snakemake
