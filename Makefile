# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and
# install what they need; nothing is installed by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CuPy is installed in the test environment even without a GPU, so the suite also covers
# "CuPy present, no GPU visible" (num_gpus() == 0, GPU tests skip with a reason).
TEST_EXTRAS ?= test,cuda13

.PHONY: test demo gpu-check bench bench-mxnet clean

$(VENV)/.installed-test: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(TEST_EXTRAS)]'
	touch $@

$(VENV)/.installed-demo: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[demo]'
	touch $@

test: $(VENV)/.installed-test
	$(PY) -m pytest

demo: $(VENV)/.installed-demo
	$(PY) examples/train_digits.py
	$(PY) examples/train_cnn.py

# Benchmarks (docs/benchmarks.md). One thread per library by default so that ratios compare
# implementations, not thread pools; `make bench BENCH_ENV=` keeps the libraries' defaults.
BENCH_ENV ?= OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
BENCH_ARGS ?=

bench: $(VENV)/.installed-test
	bash ci/mxnet_env.sh
	$(BENCH_ENV) $(VENV)/bin/gluonlite-bench $(BENCH_ARGS)

bench-mxnet: $(VENV)/.installed-test
	bash ci/mxnet_env.sh
	$(BENCH_ENV) $(VENV)/bin/gluonlite-bench mxnet $(BENCH_ARGS)

# On a GPU machine without network: runs from the source tree with the Python that is
# already there (CuPy, NumPy, pytest, pytest-benchmark, torch), installs nothing.
gpu-check:
	PYTHONPATH=$(CURDIR) $(PYTHON) ci/gpu_check.py

clean:
	rm -rf $(VENV) .venv-mxnet build *.egg-info .pytest_cache
