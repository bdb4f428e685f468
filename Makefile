# Every target sets up what it needs on a fresh clone. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_SAM := .venv-sam
BIN := $(VENV)/bin
IMAGE ?=
# sam build needs the Lambda runtime's interpreter (python3.13) on PATH: pyenv's real
# binary first (its shim only works where 3.13 is the selected version), then any on PATH.
PYENV_ROOT ?= $(HOME)/.pyenv
PY313 := $(or $(lastword $(sort $(wildcard $(PYENV_ROOT)/versions/3.13*/bin/python3.13))),$(shell command -v python3.13 2>/dev/null))

.PHONY: help setup system-deps demo test lint typecheck pytest unit integration cdk-test sam-validate sam-build bench clean

help:
	@echo "make demo [IMAGE=path]  run the main job locally on a real disk image (systemd-repart), verified byte for byte"
	@echo "make test               lint, type-check, unit, integration and CDK tests, sam validate --lint, sam build"
	@echo "make bench              the benchmark (benchmarks/run.py): achieved rate, throttling, baseline, plan"

# The CDK construct library (cdk/, package ebs_assets) is installed too: its tests and the example
# app run from this environment. aws-cdk-lib runs in Node.js (jsii), so `node` must be on PATH.
$(BIN)/activate: requirements-dev.txt src/requirements.txt pyproject.toml cdk/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e . -e cdk
	touch $(BIN)/activate

$(VENV_SAM)/bin/activate: requirements-sam.txt
	$(PYTHON) -m venv $(VENV_SAM)
	$(VENV_SAM)/bin/pip install --quiet --upgrade pip
	$(VENV_SAM)/bin/pip install --quiet -r requirements-sam.txt
	touch $(VENV_SAM)/bin/activate

setup: $(BIN)/activate

# The demo image is built with systemd-repart, which formats with mkfs.ext4 and mkfs.vfat (+ mtools).
system-deps:
	@missing=""; for t in systemd-repart mkfs.ext4 mkfs.vfat mcopy; do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing what the demo image needs (missing:$$missing)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq systemd e2fsprogs dosfstools mtools >/dev/null; \
	  else echo "Run as root or install: systemd-repart e2fsprogs dosfstools mtools" >&2; exit 1; fi; \
	fi

demo: setup $(if $(IMAGE),,system-deps)
	$(BIN)/ebs-snapshot-local demo $(if $(IMAGE),--image $(IMAGE))

lint: setup
	$(BIN)/ruff check src local tests benchmarks cdk examples
	$(BIN)/ruff format --check src local tests benchmarks cdk examples

typecheck: setup
	$(BIN)/mypy
	$(BIN)/mypy --strict examples/nixos-ami/app.py

unit: setup
	$(BIN)/pytest tests/unit -q

integration: setup system-deps
	$(BIN)/pytest tests/integration -q

cdk-test: setup
	$(BIN)/pytest tests/cdk -q

sam-validate: setup $(VENV_SAM)/bin/activate
	SAM_CLI_TELEMETRY=0 $(VENV_SAM)/bin/sam validate --lint --region eu-west-1
	$(BIN)/cfn-lint template.yaml

sam-build: $(VENV_SAM)/bin/activate
	@test -n "$(PY313)" && "$(PY313)" --version >/dev/null 2>&1 || { echo "python3.13 not found or not runnable ($(PY313)): sam build needs the Lambda runtime's Python" >&2; exit 1; }
	PATH="$(dir $(PY313)):$$PATH" SAM_CLI_TELEMETRY=0 $(VENV_SAM)/bin/sam build --build-dir .aws-sam/build
	@! find .aws-sam/build -maxdepth 2 -type d \( -name moto -o -name ebs_snapshot_local -o -name aws_cdk -o -name jsii -o -name ebs_assets \) | grep . || { echo "emulation or CDK code leaked into a Lambda package" >&2; exit 1; }

pytest: setup system-deps
	$(BIN)/pytest tests

test: lint typecheck pytest sam-validate sam-build

bench: setup system-deps
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) $(VENV_SAM) .aws-sam out .pytest_cache .mypy_cache .ruff_cache
