# docrestore: every target that needs the environment depends on `setup`, so `make test`
# alone works on a fresh clone. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV      ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN     := $(UV) run --frozen --no-sync
PROFILE ?= quick
PLAN    ?= configs/experiments/paper_$(PROFILE).yaml
ARGS    ?=
DETACH  ?=
BG      := $(if $(DETACH),--background,)
DIBCO   ?=
FONTS   := fonts-joscelyn fonts-dkg-handwriting fonts-bwht fonts-breip fonts-kristi \
           fonts-ecolier-court fonts-femkeklaver fonts-gotico-antiqua fonts-junicode

.PHONY: help setup fonts test test-fast test-all lab data pretrain train train-status evaluate experiments status \
        paper-figures paper-figures-status page-model paper bench gpu-check mlflow-ui restore clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2}'
	@echo "  variables: PROFILE=$(PROFILE) (smoke|quick|full), PLAN=..., ARGS='key=value ...', DETACH=1 (train, paper-figures), DIBCO=PATH (page pairs)"

# --compile-bytecode: .pyc files written once here; where PYTHONDONTWRITEBYTECODE is set (as in many
# container images) every process otherwise compiled torch, pandas, scipy, ... from source again:
# 15 s more CPU per process start (pytest workers, notebook kernels, subprocesses).
.venv/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || \
	  { echo "uv not found: installing it with pip"; python3 -m pip install --quiet uv; }
	$(UV) sync --frozen --compile-bytecode
	@$(RUN) python -c "import torch, torchvision; print('torch', torch.__version__, '| torchvision', torchvision.__version__, '| CUDA', torch.cuda.is_available())"
	@touch $@

.venv/.fonts:
	@bash scripts/install_fonts.sh $(FONTS)
	@touch $@

.venv/.kernel: .venv/.synced
	$(RUN) python -m docrestore.notebook kernel
	@touch $@

setup: .venv/.synced .venv/.kernel .venv/.fonts ## install uv if missing, the locked environment (.venv), its Jupyter kernel and the period-hand fonts

# -p no:nbval: the nbval plugin loads nbformat and jsonschema's format checkers (~2 s of CPU) into
# every pytest process at its start, the controller's included, which runs no test; the one nbval
# check (tests/test_notebook_rules.py) starts a pytest of its own, which loads the plugin.
PYTEST  := $(RUN) pytest -p no:nbval

test: setup ## run the fast test suite (notebooks in the smoke profile included)
	$(PYTEST) -m "not slow and not gpu" -n 2 --dist loadgroup -q

test-fast: setup ## the inner loop (< 1 min on 2 cores): every test but notebooks, whole experiments and training subprocesses
	$(PYTEST) -m "not slow and not gpu and not e2e" -n 2 --dist loadgroup -q

test-all: setup ## run every test, slow ones included
	$(PYTEST) -n 2 --dist loadgroup -q

LAB_IP   ?= 127.0.0.1
LAB_PORT ?= 8888
lab: setup ## JupyterLab on notebooks/ with the project's kernel, no browser: open the printed URL (LAB_IP=0.0.0.0 for a remote server)
	$(RUN) python -m docrestore.notebook lab --ip $(LAB_IP) --port $(LAB_PORT) $(ARGS)

data: setup ## synthesise the dataset of PROFILE (docrestore synth)
	$(RUN) docrestore synth profile=$(PROFILE) $(ARGS)

pretrain: setup ## pretrain the recognizer on PROFILE's clean lines
	$(RUN) docrestore pretrain profile=$(PROFILE) $(ARGS)

train: setup ## train the ERB baseline GAN at PROFILE (ARGS='...'; DETACH=1: in the background; rerun continues an interrupted run)
	$(RUN) docrestore train --config configs/baseline_s1.yaml profile=$(PROFILE) $(ARGS) $(BG)

train-status: setup ## the background `make train DETACH=1` job and its run's progress
	$(RUN) docrestore train --status --config configs/baseline_s1.yaml profile=$(PROFILE) $(ARGS)

experiments: setup ## run PLAN's notebooks headlessly in the background (see --status)
	$(RUN) docrestore experiments $(PLAN) $(ARGS)

status: setup ## show the job table of PLAN
	$(RUN) docrestore experiments $(PLAN) --status

paper-figures: setup ## every figure and table of the paper (runs missing PROFILE experiments first; DIBCO=PATH for the pages; DETACH=1: in the background)
	$(RUN) python -m docrestore.study paper-figures --profile $(PROFILE) $(if $(DIBCO),--dibco $(DIBCO)) $(BG)

paper-figures-status: setup ## the background `make paper-figures DETACH=1` job
	$(RUN) python -m docrestore.study paper-figures --profile $(PROFILE) --status

page-model: setup ## the deployable page model (~30 min on 2 CPU cores): trained on every DIBCO pair (DIBCO=PATH), installed at models/page_model.pt, which `docrestore restore` uses without --checkpoint
	$(RUN) docrestore page-model --config configs/page_model.yaml $(if $(DIBCO),pages.root=$(DIBCO)) $(ARGS)

TEX_PKGS := latexmk texlive-latex-base texlive-latex-recommended texlive-fonts-recommended
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
paper: ## compile paper/main.pdf from PROFILE's tables and figures (installs Debian TeX when missing)
	$(RUN) python -m docrestore.figures.typed_numbers paper/main.tex
	@command -v latexmk >/dev/null || { echo "installing TeX: $(TEX_PKGS)"; \
	  $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends $(TEX_PKGS); }
	cd paper && latexmk -pdf -bibtex -interaction=nonstopmode -halt-on-error -outdir=build \
	  -usepretex='\def\paperprofile{$(PROFILE)}' main.tex
	cp paper/build/main.pdf paper/main.pdf
	@echo "paper/main.pdf ($(PROFILE) profile)"

bench: setup ## benchmarks: synthesis lines/s, restoration s/page teacher vs light student x PyTorch vs ONNX (TEACHER=CKPT STUDENT=CKPT for PSNR), training lines/s per arm (BASELINE=FILE: beside a recorded run, e.g. benchmarks/baselines/train-cpu-quick-78f7b7d.json)
	$(RUN) python benchmarks/bench_synth.py
	$(RUN) python benchmarks/bench_restore.py $(if $(TEACHER),--teacher $(TEACHER)) $(if $(STUDENT),--student $(STUDENT))
	$(RUN) python benchmarks/bench_train.py $(if $(BASELINE),--baseline $(BASELINE))

gpu-check: setup ## <= 5 min on one GPU: every arm in bf16 at full size, page time, bf16 vs fp32, CTC, paper_full time (ARGS='--device cpu' for the CPU)
	$(RUN) python benchmarks/gpu_check.py $(ARGS)

mlflow-ui: setup ## serve the MLflow UI for runs/mlflow.db on http://127.0.0.1:5000
	$(RUN) mlflow ui --backend-store-uri sqlite:///$(CURDIR)/runs/mlflow.db --host 127.0.0.1 --port 5000

clean: ## remove generated runs, data and caches (keeps paper/results, the committed ledger)
	rm -rf runs/* data/ .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	@touch runs/.gitkeep
