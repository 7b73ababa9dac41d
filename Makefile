# bias-init lab: every entry point a user needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The machine's package index answers at once; the unreachable public index would make pip retry for minutes.
PIP_ENV := PIP_RETRIES=0 PIP_TIMEOUT=5 PIP_DISABLE_PIP_VERSION_CHECK=1
TSX := node --import tsx
# Entry points a user runs go through one compiled JavaScript file (~85 MB less per process than tsx;
# tools/run-ts.sh compiles on every call). Tests, notebooks and tools keep tsx.
RUN_TS := bash tools/run-ts.sh
PRESET ?=
PLAN ?=
ARGS ?=
# Worker processes on one store (make run WORKERS=4), pinned to these GPUs (default: all nvidia-smi lists).
WORKERS ?=
GPUS ?=
# Tasks of the Slurm job array (make slurm-submit).
TASKS ?= 4

# The GPU build's CUDA library paths (its cuda-env.sh), when that build exists; a no-op otherwise.
ENGINE_ENV := source tools/native/engine-env.sh &&
# JupyterLab refuses to run as root unless told to.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: help setup node-deps python-deps jupyter-kernel test typecheck data weights engine run lab report strip bench bench-compare bench-workers native native-gpu doctor slurm-submit slurm-test clean

help:
	@echo "make setup      install Node and Python dependencies (npm ci, .venv with JupyterLab, nbconvert, scikit-learn, torch)"
	@echo "make test       typecheck and run the test suite (guarded: your reports/, results/, data/, weights/ stay untouched)"
	@echo "make data       download CIFAR-10 (binary version, md5-checked) into data/"
	@echo "make weights    download torchvision's EfficientNet-B1 IMAGENET1K_V2 weights into weights/"
	@echo "make run        the main job: the experiment grid for PRESET (full on CUDA, quick otherwise); PLAN=convergence runs"
	@echo "                what a notebook runs; ARGS='--trials 2' etc. (make run ARGS=--help lists every flag and variable);"
	@echo "                ARGS=--dry-run: units, steps, a short measured run and the projected time, nothing trained;"
	@echo "                WORKERS=4: four worker processes on one store (one GPU each; GPUS=0,1 picks them), one progress view"
	@echo "make lab        JupyterLab with the project's TypeScript kernel, opened on notebooks/00_walkthrough"
	@echo "make report     execute every notebook headless -> reports/*.html (self-contained, offline) + executed .ipynb"
	@echo "make strip      return notebooks/*.ipynb to their committed form (no outputs, no execution counts) before committing"
	@echo "make bench      training/eval images/s and peak memory of B1 at 32x32 on the active backend (ARGS=--profile: kernels and ops per step)"
	@echo "make bench-compare  the same beside PyTorch (CPU), alternating runs, at 32x32 and 240x240: every ratio of issue 14 (ARGS=\"--rounds 1 --quick\" to check it runs)"
	@echo "make bench-workers  N training processes at once on the CPU (ARGS=\"--procs 2 --size 32\"), as --workers splits the cores, beside PyTorch"
	@echo "make native     build the native TF.js CPU engine from the package index (run/lab/report/bench do it on first use)"
	@echo "make native-gpu the same for NVIDIA GPUs (TensorFlow 2.21 + CUDA 12.5 wheels; UNTESTED here, see docs/native.md)"
	@echo "make doctor     what this machine has and lacks for each engine, and the next command (ARGS=--json for machines)"
	@echo "make slurm-submit  the grid as a Slurm job array of TASKS workers (deploy/slurm/grid.sbatch; PRESET, PLAN, ARGS as for run)"
	@echo "make slurm-test the Slurm test alone: a one-node Slurm on this machine runs the smoke grid as an array (root)"
	@echo "make clean      remove results/, reports/ and build output (keeps data/, weights/, node_modules/)"

setup: node-deps python-deps jupyter-kernel

node-deps: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

python-deps: $(VENV)/.installed
$(VENV)/.installed: tools/requirements.txt
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PIP_ENV) $(PY) -m pip install -q -r tools/requirements.txt
	@touch $@

# The tslab kernelspec lives in tools/jupyter/kernels; this links it into .venv too (nothing system-wide).
jupyter-kernel: python-deps
	@bash tools/jupyter/install-kernel.sh

typecheck: node-deps
	npx tsc --noEmit -p .

# The suite runs under test/run_suite.ts: reports/, results/, data/, weights/ must stay byte-identical
# and no temporary folder may stay behind.
test: setup typecheck
	$(ENGINE_ENV) $(TSX) test/run_suite.ts

data: node-deps
	$(RUN_TS) src/data/main.ts $(ARGS)

weights: node-deps
	$(RUN_TS) src/model/weights_main.ts $(ARGS)

# Builds the native engine when none is built (GPU variant when nvidia-smi lists a GPU); BIAS_INIT_BACKEND=js skips it.
engine: node-deps
	@bash tools/native/ensure.sh

run: node-deps engine
	$(ENGINE_ENV) source tools/native/quiet-tf-log.sh && $(RUN_TS) src/cli.ts $(if $(PRESET),--preset $(PRESET)) $(if $(PLAN),--plan $(PLAN)) $(if $(WORKERS),--workers $(WORKERS)) $(if $(GPUS),--gpus $(GPUS)) $(ARGS)

# Every task of the array runs `src/cli.ts --worker` with these flags on one store; ARGS should name
# a --results folder on a file system every node sees.
slurm-submit: node-deps
	sbatch --array=0-$$(( $(TASKS) - 1 )) deploy/slurm/grid.sbatch $(if $(PRESET),--preset $(PRESET)) $(if $(PLAN),--plan $(PLAN)) $(ARGS)

slurm-test: node-deps
	$(ENGINE_ENV) $(TSX) test/run_suite.ts test/slurm.test.ts

lab: setup engine
	$(ENGINE_ENV) bash tools/jupyter/lab.sh $(LAB_ARGS) notebooks/00_walkthrough.ipynb

report: setup engine
	$(ENGINE_ENV) $(if $(PRESET),BIAS_INIT_PRESET=$(PRESET)) bash tools/jupyter/report.sh

# What running and saving adds (outputs, execution counts, run metadata) comes off; the suite checks it.
strip: python-deps node-deps
	$(PY) tools/jupyter/strip_notebooks.py

bench: node-deps engine
	$(ENGINE_ENV) $(RUN_TS) bench/train_speed.ts $(ARGS)
	$(ENGINE_ENV) $(TSX) bench/load_checkpoint.ts

bench-compare: setup engine
	$(ENGINE_ENV) $(TSX) bench/compare.ts $(ARGS)

bench-workers: setup engine
	$(ENGINE_ENV) $(TSX) bench/cpu_workers.ts $(ARGS)

native: node-deps
	bash tools/native/build.sh $(ARGS)

native-gpu: node-deps
	bash tools/native/build.sh --gpu $(ARGS)

doctor: node-deps
	@$(ENGINE_ENV) $(RUN_TS) src/engine/doctor_main.ts $(ARGS)

clean:
	rm -rf results reports dist
