"""Row-sparse and CSR storage on every device, and sparse gradient buffers."""

from __future__ import annotations

import hypothesis
import hypothesis.strategies as st
import numpy
import pytest

import gluonlite as mx
from gluonlite import _backend
from gluonlite.autograd import SparseRows
from tests.helpers import assert_matches


def _dense(shape=(6, 3)):
    out = numpy.zeros(shape, dtype=numpy.float32)
    out[1] = [1, 2, 3]
    out[4] = [4, 5, 6]
    return out


def test_row_sparse_array_sorts_rows_and_keeps_shape(device):
    rsp = mx.sparse.row_sparse_array(
        ([[4.0, 5.0, 6.0], [1.0, 2.0, 3.0]], [4, 1]), shape=(6, 3), device=device
    )
    assert isinstance(rsp, mx.RowSparseNDArray)
    assert (rsp.shape, rsp.stype, rsp.device, rsp.dtype) == (
        (6, 3),
        "row_sparse",
        device,
        numpy.dtype(numpy.float32),
    )
    assert_matches(rsp.indices, numpy.array([1, 4], dtype=numpy.int64), device=device)
    assert_matches(rsp.data, numpy.array([[1, 2, 3], [4, 5, 6]], dtype=numpy.float32))
    numpy.testing.assert_array_equal(rsp.asnumpy(), _dense())


def test_row_sparse_array_rejects_bad_input(device):
    with pytest.raises(ValueError, match="duplicates"):
        mx.sparse.row_sparse_array(([[1.0], [2.0]], [3, 3]), shape=(5, 1), device=device)
    with pytest.raises(ValueError, match=r"expected \(2, 1\)"):
        mx.sparse.row_sparse_array(([[1.0, 2.0], [2.0, 3.0]], [0, 1]), shape=(5, 1), device=device)
    with pytest.raises(IndexError, match="row id 5 is out of range"):
        mx.sparse.row_sparse_array(([[1.0]], [5]), shape=(5, 1), device=device)
    with pytest.raises(ValueError, match="needs the full shape"):
        mx.sparse.row_sparse_array(([[1.0]], [0]), device=device)
    with pytest.raises(TypeError, match=r"\(data, indices\)"):
        mx.sparse.row_sparse_array([[1.0]], shape=(1, 1), device=device)


def test_retain_keeps_exactly_the_listed_rows(device):
    rsp = mx.np.array(_dense(), device=device).tostype("row_sparse")
    # Unsorted, duplicated, float32 ids (the default dtype of mx.np.array); 3 is not stored.
    kept = rsp.retain(mx.np.array([4, 3, 4, 0, 1, 4], device=device))
    assert_matches(kept.indices, numpy.array([1, 4], dtype=numpy.int64), device=device)
    numpy.testing.assert_array_equal(kept.asnumpy(), _dense())
    only_four = rsp.retain([4])
    expected = numpy.zeros((6, 3), dtype=numpy.float32)
    expected[4] = [4, 5, 6]
    numpy.testing.assert_array_equal(only_four.asnumpy(), expected)
    assert rsp.retain(mx.np.array([], dtype="int64", device=device)).indices.shape == (0,)


def test_retain_returns_a_copy(device):
    rsp = mx.np.array(_dense(), device=device).tostype("row_sparse")
    kept = rsp.retain([1])
    kept.data[:] = 0
    assert rsp.asnumpy()[1].tolist() == [1, 2, 3]


def test_retain_matches_numpy_on_random_ids(device):
    rng = numpy.random.default_rng(0)
    dense = rng.normal(size=(50, 4)).astype(numpy.float32)
    dense[rng.random(50) < 0.5] = 0
    rsp = mx.np.array(dense, device=device).tostype("row_sparse")
    ids = rng.integers(0, 50, size=30)
    expected = numpy.zeros_like(dense)
    expected[ids] = dense[ids]
    numpy.testing.assert_array_equal(rsp.retain(ids).asnumpy(), expected)


def test_retain_errors(device):
    rsp = mx.np.array(_dense(), device=device).tostype("row_sparse")
    with pytest.raises(IndexError, match=r"row id 6 is out of range .*shape \(6, 3\)"):
        rsp.retain([0, 6])
    with pytest.raises(IndexError, match="row id -1"):
        rsp.retain([-1, 2])
    with pytest.raises(ValueError, match="whole numbers"):
        rsp.retain(mx.np.array([1.5], device=device))
    with pytest.raises(TypeError, match="integers"):
        rsp.retain(numpy.array([True]))


def test_retain_ids_on_another_device_are_refused():
    rsp = mx.np.array(_dense(), device=mx.cpu(0)).tostype("row_sparse")
    with pytest.raises(ValueError, match=r"row_ids is on cpu\(1\), expected cpu\(0\)"):
        rsp.retain(mx.np.array([1], device=mx.cpu(1)))


def test_tostype_round_trips(device):
    x = mx.np.array(_dense(), device=device)
    assert x.tostype("default") is x
    rsp = x.tostype("row_sparse")
    csr = x.tostype("csr")
    assert isinstance(csr, mx.CSRNDArray) and csr.stype == "csr"
    for sparse in (rsp, csr):
        assert sparse.tostype(sparse.stype) is sparse
        assert_matches(sparse.tostype("default"), _dense(), device=device)
        numpy.testing.assert_array_equal(sparse.asnumpy(), _dense())
    numpy.testing.assert_array_equal(rsp.tostype("csr").asnumpy(), _dense())
    numpy.testing.assert_array_equal(csr.tostype("row_sparse").asnumpy(), _dense())
    assert_matches(csr.indptr, numpy.array([0, 0, 3, 3, 3, 6, 6]))
    with pytest.raises(ValueError, match="stype must be one of"):
        x.tostype("dense")


def test_csr_needs_two_dimensions(device):
    with pytest.raises(ValueError, match="2-D shape"):
        mx.np.zeros((2, 2, 2), device=device).tostype("csr")
    with pytest.raises(ValueError, match="at least 1 dimension"):
        mx.np.array(1.0, device=device).tostype("row_sparse")


def test_csr_matrix_builds_and_validates(device):
    m = mx.sparse.csr_matrix(
        ([1.0, 2.0, 3.0], [2, 0, 1], [0, 2, 2, 3]), shape=(3, 3), device=device
    )
    assert m.device == device and m.dtype == numpy.float32
    numpy.testing.assert_array_equal(m.asnumpy(), [[2, 0, 1], [0, 0, 0], [0, 3, 0]])
    with pytest.raises(ValueError, match="indptr must rise"):
        mx.sparse.csr_matrix(([1.0], [0], [0, 1]), shape=(3, 3), device=device)
    with pytest.raises(ValueError, match="indptr must rise"):
        mx.sparse.csr_matrix(([1.0], [0], [0, 2, 1, 1]), shape=(3, 3), device=device)
    with pytest.raises(IndexError, match="column indices"):
        mx.sparse.csr_matrix(([1.0], [3], [0, 1, 1, 1]), shape=(3, 3), device=device)
    with pytest.raises(ValueError, match="2 indices for 1 values"):
        mx.sparse.csr_matrix(([1.0], [0, 1], [0, 1, 1, 1]), shape=(3, 3), device=device)


def test_sparse_arrays_move_between_devices(devices):
    src, dst = devices
    rsp = mx.np.array(_dense(), device=src).tostype("row_sparse")
    csr = mx.np.array(_dense(), device=src).tostype("csr")
    for sparse in (rsp, csr):
        assert sparse.to_device(src) is sparse
        moved = sparse.to_device(dst)
        assert moved.device == dst and moved.indices.device == dst
        numpy.testing.assert_array_equal(moved.asnumpy(), _dense())
    target = mx.sparse.RowSparseNDArray.empty((6, 3), "float64", dst)
    assert rsp.copyto(target) is target
    assert target.dtype == numpy.float64
    numpy.testing.assert_array_equal(target.asnumpy(), _dense())
    with pytest.raises(ValueError, match="shape mismatch"):
        rsp.copyto(mx.sparse.RowSparseNDArray.empty((5, 3), "float32", dst))


def test_empty_buffers_are_zero(device):
    rsp = mx.sparse.RowSparseNDArray.empty((4, 2), "float16", device)
    csr = mx.sparse.CSRNDArray.empty((4, 2), "float16", device)
    for sparse in (rsp, csr):
        assert sparse.dtype == numpy.float16 and sparse.shape == (4, 2)
        numpy.testing.assert_array_equal(sparse.asnumpy(), numpy.zeros((4, 2)))


def _sparse_rows(device, ids, values, shape):
    xp = mx.np.zeros((1,), device=device)._xp
    with _backend.on(device):  # raw arrays of ``device``, not of the current GPU
        return SparseRows(
            xp.asarray(numpy.array(ids, dtype=numpy.int64)),
            xp.asarray(numpy.array(values, dtype=numpy.float32)),
            shape,
        )


@pytest.mark.parametrize("stype", ["row_sparse", "csr"])
def test_store_gradient_sums_duplicates_and_adds(device, stype):
    cls = mx.RowSparseNDArray if stype == "row_sparse" else mx.CSRNDArray
    buf = cls.empty((5, 2), "float32", device)
    buf._store_gradient(
        _sparse_rows(device, [3, 1, 3], [[1, 1], [2, 2], [3, 3]], (5, 2)), add=False
    )
    expected = numpy.zeros((5, 2), dtype=numpy.float32)
    expected[1], expected[3] = 2, 4
    numpy.testing.assert_array_equal(buf.asnumpy(), expected)
    if stype == "row_sparse":
        assert buf.indices.asnumpy().tolist() == [1, 3]
    buf._store_gradient(_sparse_rows(device, [0, 3], [[1, 1], [1, 1]], (5, 2)), add=True)
    expected[0] += 1
    expected[3] += 1
    numpy.testing.assert_array_equal(buf.asnumpy(), expected)
    dense = numpy.zeros((5, 2), dtype=numpy.float32)
    dense[2] = 7
    buf._store_gradient(mx.np.array(dense, device=device)._data, add=True)
    numpy.testing.assert_array_equal(buf.asnumpy(), expected + dense)
    buf._store_gradient(mx.np.array(dense, device=device)._data, add=False)
    numpy.testing.assert_array_equal(buf.asnumpy(), dense)
    if stype == "row_sparse":
        assert buf.indices.asnumpy().tolist() == [2]
    buf._zero()
    numpy.testing.assert_array_equal(buf.asnumpy(), numpy.zeros((5, 2)))


def test_attach_grad_row_sparse_receives_embedding_rows(device):
    weight = mx.np.array(numpy.arange(12).reshape(6, 2), device=device)
    weight.attach_grad(stype="row_sparse")
    ids = mx.np.array([4, 1, 4], device=device)
    with mx.autograd.record():
        out = mx.npx.embedding(ids, weight, sparse_grad=True).sum()
    out.backward()
    grad = weight.grad
    assert isinstance(grad, mx.RowSparseNDArray)
    assert grad.indices.asnumpy().tolist() == [1, 4]
    assert grad.data.asnumpy().tolist() == [[1, 1], [2, 2]]


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(
    stored=st.sets(st.integers(0, 19)),
    wanted=st.lists(st.integers(0, 19), max_size=30),
    rows=st.sampled_from([20, 100_000]),
)
def test_retain_property(stored, wanted, rows):
    # 20 rows: the CPU path flags wanted rows in a table of all rows; 100,000 rows (at most
    # 50 stored + wanted): it binary-searches the stored ids instead. Both must agree.
    dense = numpy.zeros((rows, 2), dtype=numpy.float32)
    for row in stored:
        dense[row] = [row + 1, -row - 1]
    rsp = mx.np.array(dense).tostype("row_sparse")
    kept = rsp.retain(numpy.array(wanted, dtype=numpy.int64))
    expected = sorted(stored & set(wanted))
    assert kept.indices.asnumpy().tolist() == expected
    numpy.testing.assert_array_equal(kept.data.asnumpy(), dense[expected])


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(batches=st.lists(st.lists(st.integers(0, 9), max_size=8), min_size=1, max_size=4))
def test_store_gradient_add_matches_dense_sum(batches):
    buf = mx.RowSparseNDArray.empty((10, 3), "float64", mx.cpu(0))
    expected = numpy.zeros((10, 3))
    for step, ids in enumerate(batches):
        values = numpy.arange(len(ids) * 3, dtype=numpy.float64).reshape(-1, 3) + step
        buf._store_gradient(
            SparseRows(numpy.array(ids, dtype=numpy.int64), values, (10, 3)), add=True
        )
        numpy.add.at(expected, ids, values)
    numpy.testing.assert_array_equal(buf.asnumpy(), expected)
    indices = buf.indices.asnumpy()
    assert indices.tolist() == sorted(set(indices.tolist()))
