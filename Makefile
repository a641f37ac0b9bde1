# Two commands on a fresh machine: `make repro` runs the pipeline, `make test` runs the tests.
# Each creates .venv and installs the project first (only when pyproject.toml changed).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# stages run `python ...`: make it the virtual environment's
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: repro test test-fast lint bench install clean-venv gis-tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

repro: $(STAMP)
	$(BIN)/dvc repro

# the tests read outputs with GDAL's own command-line tools (Debian's gdal-bin), as GIS users do
gis-tools:
	@command -v gdalinfo >/dev/null || { command -v apt-get >/dev/null \
	  && { apt-get install -y -qq gdal-bin >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq gdal-bin; }; }; } \
	  || { echo "make test: needs gdalinfo and ogrinfo (Debian/Ubuntu: apt-get install gdal-bin)"; exit 1; }
	@/usr/bin/python3 -c "import qgis.core" 2>/dev/null || { command -v apt-get >/dev/null \
	  && { apt-get install -y -qq python3-qgis >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3-qgis; }; }; } \
	  || { echo "make test: needs headless QGIS for /usr/bin/python3 (Debian/Ubuntu: apt-get install python3-qgis)"; exit 1; }

# both cores (pytest-xdist; measured: README, "Tests"); the pipeline tests share one project, so one worker runs them
PYTEST_PARALLEL ?= -n 2 --dist loadgroup

# every test, the slow ones too (CI runs this)
test: lint gis-tools
	$(BIN)/python -m pytest $(PYTEST_PARALLEL)

# every test but the slow ones (dvc repro, whole pretrained backbones, training in processes of
# its own), then the rule that every module under src/ and stages/ has a fast test
test-fast: lint gis-tools
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_PARALLEL) --cov --cov-report=
	$(BIN)/python tests/fast_coverage.py

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
