"""Property-based (Hypothesis) runs of the CPU kernel tests: random shapes, ids and thread
orders. Skipped where Hypothesis is not installed (e.g. a bare GPU machine)."""

import numpy as np
import pytest

from tests.cuda_host import harness
from tests.cuda_host.reference import RETAIN_DTYPES, assert_close, check_retain, make, retain_case
from gluonlite import _kernels

pytest.importorskip("hypothesis", reason="Hypothesis is not installed")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

harness.require_toolchain()


@settings(max_examples=20, deadline=None, database=None)
@given(
    n=st.integers(0, 80),
    m=st.integers(1, 80),
    k=st.integers(0, 40),
    order=st.sampled_from(tuple(harness.ORDERS)),
    bias=st.booleans(),
)
def test_fc_forward_and_backward_random_shapes(n, m, k, order, bias):
    rt = harness.HostRuntime(order=order, seed=n * 7 + m, sanitize=harness.sanitizer())
    rng = np.random.default_rng(n * 10007 + m * 101 + k)
    (x, xr), (w, wr), (dy, dyr) = (make(rng, s, "float32") for s in ((n, k), (m, k), (n, m)))
    b, br = make(rng, (m,), "float32") if bias else (None, 0.0)
    assert_close(_kernels._fc_forward(rt, x, w, b, "kernel"), xr @ wr.T + br, "float32", "y")
    dx, dw, db = _kernels._fc_backward(rt, dy, x, w, True, True, True, "kernel", "kernel")
    assert_close(dx, dyr @ wr, "float32", "dx")
    assert_close(dw, dyr.T @ xr, "float32", "dw")
    assert_close(db, dyr.sum(axis=0), "float32", "db")
    rt.check_guards()


@settings(max_examples=25, deadline=None, database=None)
@given(
    k=st.integers(0, 60),
    width=st.integers(0, 9),
    dtype=st.sampled_from(RETAIN_DTYPES),
    order=st.sampled_from(tuple(harness.ORDERS)),
    row_ids=st.lists(st.integers(-5, 80), max_size=40),
)
def test_retain_random(k, width, dtype, order, row_ids):
    rt = harness.HostRuntime(order=order, seed=k, sanitize=harness.sanitizer())
    data, indices = retain_case(
        np.random.default_rng(k * 31 + width), k, (width,), dtype, universe=80
    )
    check_retain(rt, data, indices, np.array(row_ids, np.int64))
    rt.check_guards()
