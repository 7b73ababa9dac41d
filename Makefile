# bias-init lab: every entry point a user needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The machine's package index answers at once; the unreachable public index would make pip retry for minutes.
PIP_ENV := PIP_RETRIES=0 PIP_TIMEOUT=5 PIP_DISABLE_PIP_VERSION_CHECK=1
TSX := node --import tsx
PRESET ?=
PLAN ?=
ARGS ?=

JUPYTER_ENV := JUPYTER_PATH=$(CURDIR)/tools/jupyter
# JupyterLab refuses to run as root unless told to.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: help setup node-deps python-deps jupyter-kernel test typecheck data weights run lab report bench bench-compare native native-gpu clean

help:
	@echo "make setup      install Node and Python dependencies (npm ci, .venv with JupyterLab, nbconvert, scikit-learn, torch)"
	@echo "make test       typecheck and run the test suite"
	@echo "make data       download CIFAR-10 (binary version, md5-checked) into data/"
	@echo "make weights    download torchvision's EfficientNet-B1 IMAGENET1K_V2 weights into weights/"
	@echo "make run        the main job: the experiment grid for PRESET (full on CUDA, quick otherwise); PLAN=convergence runs"
	@echo "                what a notebook runs; ARGS='--trials 2' etc. (make run ARGS=--help lists every flag and variable)"
	@echo "make lab        JupyterLab with the project's TypeScript kernel, opened on notebooks/00_walkthrough"
	@echo "make report     execute every notebook headless -> reports/*.html (self-contained, offline) + executed .ipynb"
	@echo "make bench      training/eval images/s and peak memory of B1 at 32x32 on the active backend (ARGS=--profile: kernels and ops per step)"
	@echo "make bench-compare  the same beside PyTorch (CPU), alternating runs, at 32x32 and 240x240: every ratio of issue 14 (ARGS=\"--rounds 1 --quick\" to check it runs)"
	@echo "make native     build the native TF.js CPU backend from the package index (no blocked download)"
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

test: setup typecheck
	$(TSX) --test test/*.test.ts

data: node-deps
	$(TSX) src/data/main.ts $(ARGS)

weights: node-deps
	$(TSX) src/model/weights_main.ts $(ARGS)

run: node-deps
	$(TSX) src/cli.ts $(if $(PRESET),--preset $(PRESET)) $(if $(PLAN),--plan $(PLAN)) $(ARGS)

lab: setup
	$(JUPYTER_ENV) $(VENV)/bin/jupyter lab --ServerApp.root_dir=$(CURDIR) $(LAB_ARGS) notebooks/00_walkthrough.ipynb

report: setup
	$(if $(PRESET),BIAS_INIT_PRESET=$(PRESET)) bash tools/jupyter/report.sh

bench: node-deps
	$(TSX) bench/train_speed.ts $(ARGS)
	$(TSX) bench/load_checkpoint.ts

bench-compare: setup
	$(TSX) bench/compare.ts $(ARGS)

native: node-deps
	bash tools/native/build.sh $(ARGS)

native-gpu: node-deps
	bash tools/native/build.sh --gpu $(ARGS)

clean:
	rm -rf results reports dist
