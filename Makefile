# make demo : set up .venv and run the main job on the embedded default (CPU, offline)
# make test : set up .venv and run the test suite
# make lint : ruff, snakefmt --check and snakemake --lint (the gate .ci/run runs before the tests)
# make config CONFIG=<files> : the resolved config, each value with its origin; make miniature EXP=<experiment>
# make docs : regenerate what is derived from the config dataclasses (JSON Schema, config/README.md's settings reference)
# GPU users: make setup TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cu128"

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
TORCH_PIP_ARGS ?=
CORES  ?= 2
TARGET ?= results/ppo/seed1/gold_eval.csv
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-fast lint dry-run bench clean-results config miniature docs

setup: $(STAMP)

# torch first, pinned: `pip install torch==2.13.0` takes the CPU wheel; a looser pin pulls CUDA.
# The .pth hook: Snakemake's own errors for a bad --configfile become one line naming the file
# (src/rlhf_pipeline/snakemake_hooks.py).
$(STAMP): pyproject.toml requirements.lock src/rlhf_pipeline/snakemake_hooks.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q $(TORCH) $(TORCH_PIP_ARGS)
	$(BIN)/pip install --disable-pip-version-check -q -c requirements.lock -e '.[dev]'
	$(BIN)/python -m rlhf_pipeline.snakemake_hooks --install
	touch $@

demo: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores $(CORES) $(TARGET)

test: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest -q

test-fast: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest -q -m "not integration and not slurm"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check .
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --lint

dry-run: setup
	$(BIN)/snakemake -n $(TARGET)

# make config CONFIG="config/experiments/coste2023.yaml": every resolved setting and where it came from
config: setup
	$(BIN)/python -m rlhf_pipeline config $(if $(CONFIG),--configfile $(CONFIG))

# make miniature EXP=coste2023: the experiment's miniature end to end (its test: tiny models and data made in a
# temporary directory, then the real rules to its final targets)
EXP ?= coste_cpu
miniature: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest -q tests/test_$(EXP)_miniature.py

# After adding or changing a setting: the schema and the settings reference are generated, and tests keep them equal.
docs: setup
	$(BIN)/python -m rlhf_pipeline schema --out workflow/schemas/config.schema.yaml
	$(BIN)/python -m rlhf_pipeline settings-reference --write config/README.md

bench: setup
	$(BIN)/python bench/ppo_throughput.py

clean-results:
	rm -rf results .snakemake
