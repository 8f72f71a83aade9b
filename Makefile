# Two entry points on a fresh machine: `make demo` (set up, then run the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCES := setup.py setup.cfg pyproject.toml $(shell find arseg_ros -name '*.cpp' -o -name '*.hpp' -o -name '*.h')

.PHONY: demo test lint setup clean

demo: $(STAMP)
	$(BIN)/arseg-demo --out demo_out

test: $(STAMP)
	$(BIN)/ruff check arseg_ros test bench
	$(BIN)/ruff format --check arseg_ros test bench
	$(BIN)/python -m pytest

setup: $(STAMP)

# torch is pinned to the CPU build here; see README "GPU" for a CUDA install.
$(STAMP): $(SOURCES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,dds]'
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info demo_out
