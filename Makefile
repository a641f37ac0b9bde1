# Two commands on a fresh machine: `make repro` runs the pipeline, `make test` runs the tests.
# Each creates .venv and installs the project first (only when pyproject.toml changed).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# stages run `python ...`: make it the virtual environment's
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: repro test lint bench install clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

repro: $(STAMP)
	$(BIN)/dvc repro

test: lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src stages tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/blend.py
	$(BIN)/python bench/input_pipeline.py
	$(BIN)/python bench/preprocess.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/predict_backends.py
	$(BIN)/python bench/predict_geotiff.py
	$(BIN)/python bench/seed_setting.py

clean-venv:
	rm -rf $(VENV)
