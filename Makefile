# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and
# install what they need; nothing is installed by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CuPy is installed in the test environment even without a GPU, so the suite also covers
# "CuPy present, no GPU visible" (num_gpus() == 0, GPU tests skip with a reason).
TEST_EXTRAS ?= test,cuda13

.PHONY: test demo docs gpu-check gpu-check-dry bench bench-mxnet clean

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

# Two pytest workers: the machine has two cores and the suite is mostly single-threaded.
# The second run: the tests marked `gpu` (every test on gpu(i)) once more, on two GPUs
# emulated by tests/cuda_host/fake_cupy.py, through gluonlite's real GPU code paths; an op
# that silently works on another GPU's memory through peer access fails it.
PYTEST_WORKERS ?= 2
# Tests handed to the workers one at a time as they finish (not in chunks of the collection
# order), so the long tests, which tests/conftest.py puts first (marker `slow`), spread over
# both workers and overlap the short ones.
PYTEST_SCHEDULE ?= --dist load --maxschedchunk 1

# ci/build_cext.py: the optional C extension (gluonlite/_cndarray.c) built in place, or
# rebuilt when its source changed (the editable install builds it only when installed).
test: $(VENV)/.installed-test
	$(PY) ci/build_cext.py
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_SCHEDULE)
	GLUONLITE_EMULATE_GPUS=2 $(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_SCHEDULE) -m gpu tests -q -p no:cacheprovider \
	    -W error::tests.cuda_host.fake_cupy.PerformanceWarning

# The documentation site (Sphinx: docs/conf.py says why) into docs/_build/html; make test
# builds it too, with warnings as errors, and runs the examples of its pages.
docs: $(VENV)/.installed-test
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

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
# already there (CuPy, NumPy, pytest, torch), installs nothing; at most 5 minutes, results
# in $(OUT) or build/gpu-check (ci/gpu_check.py). gpu-check-dry runs the same plan on the
# emulated GPUs, here.
gpu-check:
	PYTHONPATH=$(CURDIR) $(PYTHON) ci/gpu_check.py

gpu-check-dry: $(VENV)/.installed-test
	GLUONLITE_EMULATE_GPUS=2 GPU_CHECK_OUT=build/gpu-check-dry OUT= $(PY) ci/gpu_check.py

clean:
	rm -rf $(VENV) .venv-mxnet build *.egg-info .pytest_cache
