# Parallel Python: set-up, lab, tests and the course's own tools.
# Everything lives in a project virtual environment ($(VENV)); nothing is installed globally.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
COURSE_EXTRAS ?= mpi,distributed,gpu,debug
PYTEST_ARGS ?=

.PHONY: help install hub-install lab instructor-lab test test-fast test-all test-py313 lint typecheck release release-check benchmarks gpu-check doctor clean

help:
	@echo "make lab             create .venv, install the course, open JupyterLab on notebooks/"
	@echo "make test            install what the tests need and run the suite"
	@echo "make test-fast       the unit tests only, in a few minutes (no notebooks, servers or browser)"
	@echo "make test-all        the suite plus the nightly variants (every chapter under every start method)"
	@echo "make test-py313      the notebook runs and one chapter's round trip on Python 3.13"
	@echo "make instructor-lab  JupyterLab with nbgrader's instructor tools (formgrader, create assignment)"
	@echo "make release         regenerate notebooks/ from graders/source/"
	@echo "make benchmarks      print the course's performance figures"
	@echo "make doctor          what this machine offers the course"
	@echo "make hub-install     what a JupyterHub for a class needs (deploy/jupyterhub/README.md)"
	@echo "make gpu-check       run chapter 7 and the GPU benchmarks here; writes gpu-check-report.md"

# `python -m course_lib setup` does the work (and runs on Windows without make or bash):
# it creates $(VENV), installs the course with pip --prefer-binary (wheels wherever a
# release has them) and configures JupyterLab (course_lib/setup.py).
$(VENV)/.course-installed: pyproject.toml course_lib/setup.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed: make PYTHON=python3.11 ...")'
	$(PYTHON) -m course_lib setup --venv $(VENV) --extras $(COURSE_EXTRAS) --quiet
	@touch $@

# The tests also install CuPy (the `cuda` extra), to prove the CPU fallback when
# CuPy is present but no GPU is.
# They also start a real JupyterHub (the `hub` extra and configurable-http-proxy from npm).
$(VENV)/.dev-installed: $(VENV)/.course-installed deploy/jupyterhub/install.sh
	$(PYTHON) -m course_lib setup --venv $(VENV) --extras $(COURSE_EXTRAS),cuda,hub,dev --quiet
	bash deploy/jupyterhub/install.sh $(VENV)
	@touch $@

# JupyterHub for a class: see deploy/jupyterhub/README.md.
hub-install: $(VENV)/.course-installed
	$(BIN)/python -m pip install --quiet --prefer-binary -e ".[$(COURSE_EXTRAS),hub]"
	bash deploy/jupyterhub/install.sh $(VENV)

install: $(VENV)/.course-installed

lab: $(VENV)/.course-installed
	$(BIN)/python -m course_lib lab --venv $(VENV)

# The formgrader reads nbgrader_config.py from the folder JupyterLab starts in.
instructor-lab: $(VENV)/.course-installed
	$(BIN)/python -m course_lib lab --venv $(VENV) --instructor

test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# A contributor's quick loop: unit tests only (no notebooks, servers or browser).
test-fast: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -m "not slow and not nightly" $(PYTEST_ARGS)

# The nightly job: also every chapter under spawn and forkserver.
test-all: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -m "" $(PYTEST_ARGS)

# Python 3.13 (pyenv's, or python3.13 on PATH): its own environment, every source notebook
# run and one chapter's nbgrader round trip. PY313_TESTS narrows it (a pytest -k expression).
PYTHON313 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) python3.13)
VENV313 ?= .venv-py313
PY313_ROUND_TRIP ?= ch01_threads
PY313_TESTS ?= runs_cleanly or (round_trip and $(PY313_ROUND_TRIP))
test-py313:
	$(PYTHON313) -m course_lib setup --venv $(VENV313) --extras $(COURSE_EXTRAS),dev --quiet
	$(VENV313)/bin/python -m pytest tests/integration/test_chapters.py -k "$(PY313_TESTS)" $(PYTEST_ARGS)

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
