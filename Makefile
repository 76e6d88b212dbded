# Parallel Python: set-up, lab, tests and the course's own tools.
# Everything lives in a project virtual environment ($(VENV)); nothing is installed globally.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# JupyterLab refuses to run as root (containers, CI) without --allow-root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
COURSE_EXTRAS ?= mpi,distributed,gpu,debug
PYTEST_ARGS ?=

.PHONY: help install hub-install lab instructor-lab test test-fast test-all lint typecheck release release-check benchmarks gpu-check doctor clean

help:
	@echo "make lab             create .venv, install the course, open JupyterLab on notebooks/"
	@echo "make test            install what the tests need and run the suite"
	@echo "make test-fast       the unit tests only, in a few minutes (no notebooks, servers or browser)"
	@echo "make test-all        the suite plus the nightly variants (every chapter under every start method)"
	@echo "make instructor-lab  JupyterLab with nbgrader's instructor tools (formgrader, create assignment)"
	@echo "make release         regenerate notebooks/ from graders/source/"
	@echo "make benchmarks      print the course's performance figures"
	@echo "make doctor          what this machine offers the course"
	@echo "make hub-install     what a JupyterHub for a class needs (deploy/jupyterhub/README.md)"
	@echo "make gpu-check       run chapter 7 and the GPU benchmarks here; writes gpu-check-report.md"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.course-installed: pyproject.toml binder/configure-jupyter.sh | $(BIN)/python
	$(BIN)/python -m pip install --quiet --prefer-binary -e ".[$(COURSE_EXTRAS)]"
	bash binder/configure-jupyter.sh $(BIN)
	@touch $@

# The tests also install CuPy (the `cuda` extra), to prove the CPU fallback when
# CuPy is present but no GPU is.
# They also start a real JupyterHub (the `hub` extra and configurable-http-proxy from npm).
$(VENV)/.dev-installed: $(VENV)/.course-installed deploy/jupyterhub/install.sh
	$(BIN)/python -m pip install --quiet --prefer-binary -e ".[$(COURSE_EXTRAS),cuda,hub,dev]"
	bash deploy/jupyterhub/install.sh $(VENV)
	@touch $@

# JupyterHub for a class: see deploy/jupyterhub/README.md.
hub-install: $(VENV)/.course-installed
	$(BIN)/python -m pip install --quiet --prefer-binary -e ".[$(COURSE_EXTRAS),hub]"
	bash deploy/jupyterhub/install.sh $(VENV)

install: $(VENV)/.course-installed

lab: $(VENV)/.course-installed
	@bash binder/configure-jupyter.sh $(BIN) >/dev/null
	$(BIN)/jupyter lab --notebook-dir=notebooks $(ROOT_FLAG)

# The formgrader reads nbgrader_config.py from the folder JupyterLab starts in.
instructor-lab: $(VENV)/.course-installed
	COURSE_INSTRUCTOR=1 bash binder/configure-jupyter.sh $(BIN)
	cd graders && $(abspath $(BIN))/jupyter lab $(ROOT_FLAG)

test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# A contributor's quick loop: unit tests only (no notebooks, servers or browser).
test-fast: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -m "not slow and not nightly" $(PYTEST_ARGS)

# The nightly job: also every chapter under spawn and forkserver.
test-all: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -m "" $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check course_lib graders benchmarks tests
	$(BIN)/python -m mypy

release: $(VENV)/.course-installed
	$(BIN)/python -m graders release

release-check: $(VENV)/.course-installed
	$(BIN)/python -m graders release --check

benchmarks: $(VENV)/.course-installed
	$(BIN)/python -m benchmarks

# On a machine with an NVIDIA GPU: chapter 7 and the GPU figures on the real device
# (CuPy included). Without a GPU it still runs, on the simulator and PoCL, and says so.
gpu-check: $(VENV)/.course-installed
	$(BIN)/python -m pip install --quiet --prefer-binary -e ".[$(COURSE_EXTRAS),cuda]"
	$(BIN)/python -m course_lib.gpu_check --out gpu-check-report.md

doctor: $(VENV)/.course-installed
	$(BIN)/python -m course_lib doctor

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
