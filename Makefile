# The two commands of the README:
#   make demo   install everything into .venv, then run the embedded demo's DAG (dfdetect repro:
#               dvc repro with independent stages side by side; then dvc repro confirms)
#   make test   install everything into .venv, then run the test suite
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dfdetect-installed
# Debian packages: exactly dfdetect.system.packages() (tests/test_system_deps.py checks both ways)
APT_PACKAGES := asterisk-core-sounds-en asterisk-core-sounds-en-wav chromium espeak-ng ffmpeg fortunes fortunes-min openssh-client openssh-server pocketsphinx-testdata sox
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# the suite on every core (at most 4 workers; a test file stays on one worker, so its module fixtures
# run once); files in tests/conftest.py's order, the longest first (xdist would otherwise reorder
# them by test count and start the 12-minute tests/test_pipeline.py minutes late); PYTEST_ARGS= runs
# it in one process
PYTEST_ARGS ?= -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder

# stage commands in dvc.yaml call `python`: make it the venv's
export PATH := $(abspath $(VENV))/bin:$(PATH)
export VIRTUAL_ENV := $(abspath $(VENV))
export DVC_NO_ANALYTICS := 1
export OMP_WAIT_POLICY := PASSIVE
export HF_HUB_OFFLINE ?= 1
export PYTHONHASHSEED := 0

.PHONY: demo test install apt doctor bench dag clean-venv

# independent stages side by side (dfdetect repro: DVC's own parallel arms; per-stage logs in
# .dvc/tmp/repro-logs), then plain dvc repro, which must find every stage up to date
demo: install
	$(BIN)/dfdetect repro
	$(BIN)/dvc repro
	@echo
	@echo "Leaderboard: metrics/leaderboard.md (also .csv); plots: dvc plots show"
	@cat metrics/leaderboard.md

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

install: doctor $(STAMP)

# names every missing system program or data file and its package, before any long work
doctor: apt
	@$(PYTHON) src/dfdetect/system.py

# System programs the pipeline calls (ffmpeg, espeak-ng, sox) and Debian's real-speech and
# quotation data for the audio/text demo; installed only when missing.
apt:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; } \
	    || echo "apt-get failed: see the doctor's lines below"; \
	fi

$(STAMP): requirements/base.txt requirements/nodeps.txt requirements/constraints.txt pyproject.toml | apt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip wheel
	$(BIN)/python -m pip install -q -c requirements/constraints.txt -r requirements/base.txt
	$(BIN)/python -m pip install -q --no-deps -c requirements/constraints.txt -r requirements/nodeps.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/dvc config --local core.analytics false 2>/dev/null || true
	touch $(STAMP)

bench: install
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

dag: install
	$(BIN)/dvc dag

clean-venv:
	rm -rf $(VENV)
