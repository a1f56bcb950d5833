# Two entry points for a fresh clone: `make demo` and `make test`.
# Each creates the virtual environment on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.nestgraph-installed
export TF_CPP_MIN_LOG_LEVEL ?= 2
DIST ?= dist

.PHONY: demo test lint bench dist fuzz clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check nestgraph tests examples benchmarks
	$(VENV)/bin/ruff format --check nestgraph tests examples benchmarks
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) benchmarks/spec_bench.py
	$(PY) benchmarks/load_bench.py

# A wheel and an sdist in $(DIST)/ (what CI installs into a clean environment).
dist: $(STAMP)
	$(PY) -m build --outdir $(DIST) .

# Hostile bundle bytes for MINUTES minutes (the suite runs the same for seconds).
MINUTES ?= 10
fuzz: $(STAMP)
	PYTHONPATH=. $(PY) benchmarks/fuzz_bundles.py --minutes $(MINUTES)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache dist build nestgraph.egg-info
