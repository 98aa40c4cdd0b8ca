"""``mx.np`` creation functions and ``mx.np.random``: MXNet's float32 defaults, ``device=``,
the deprecated ``ctx=``, and one seeded stream for every device."""

from __future__ import annotations

import numpy
import pytest

import gluonlite as mx
from tests.helpers import assert_matches

_F32 = numpy.float32


@pytest.mark.parametrize(
    "name, args, kwargs, want",
    [
        ("eye", (3,), {"k": 1}, numpy.eye(3, k=1, dtype=_F32)),
        ("identity", (2,), {}, numpy.identity(2, dtype=_F32)),
        ("tri", (3, 2), {}, numpy.tri(3, 2, dtype=_F32)),
        ("linspace", (0, 1, 5), {}, numpy.linspace(0, 1, 5, dtype=_F32)),
        ("logspace", (0, 2, 3), {}, numpy.logspace(0, 2, 3, dtype=_F32)),
        ("arange", (1, 7, 2), {}, numpy.arange(1, 7, 2, dtype=_F32)),
        ("hanning", (4,), {}, numpy.hanning(4).astype(_F32)),
        ("hamming", (4,), {}, numpy.hamming(4).astype(_F32)),
        ("blackman", (4,), {}, numpy.blackman(4).astype(_F32)),
        ("indices", ((2, 3),), {}, numpy.indices((2, 3))),
        ("zeros", ((2,),), {"dtype": "int32"}, numpy.zeros(2, numpy.int32)),
        ("full", ((2,), 7), {}, numpy.full(2, 7, _F32)),
        ("array", ([1, 2],), {}, numpy.array([1, 2], _F32)),
        ("asarray", ([[1, 2]],), {"dtype": "float64"}, numpy.array([[1, 2]], numpy.float64)),
    ],
)
def test_creation_matches_numpy_with_float32_default(device, name, args, kwargs, want):
    assert_matches(getattr(mx.np, name)(*args, device=device, **kwargs), want, device=device)


def test_creation_like_and_index_helpers(device):
    proto = mx.np.ones((2, 3), dtype="float64", device=device)
    e = mx.np.empty_like(proto)
    assert (e.shape, e.dtype, e.device) == ((2, 3), numpy.float64, device)
    rows, cols = mx.np.tril_indices(3, device=device)
    want_rows, want_cols = numpy.tril_indices(3)
    assert_matches(rows, want_rows, device=device)
    assert_matches(cols, want_cols)
    assert_matches(mx.np.triu_indices(3, 1, device=device)[1], numpy.triu_indices(3, 1)[1])
    start = mx.np.linspace(0, 1, 3, retstep=True, device=device)
    assert start[1] == 0.5
    assert mx.np.asarray(proto) is proto


def test_deprecated_ctx_keyword():
    with pytest.warns(DeprecationWarning):
        assert mx.np.eye(2, ctx=mx.cpu(1)).device == mx.cpu(1)
    with pytest.warns(DeprecationWarning):
        assert mx.np.random.uniform(size=(2,), ctx=mx.cpu(1)).device == mx.cpu(1)
    with pytest.raises(TypeError, match="both"):
        mx.np.linspace(0, 1, 2, device=mx.cpu(0), ctx=mx.cpu(1))


_DRAWS = {
    "uniform": ((), {}),
    "normal": ((1.0, 2.0), {}),
    "logistic": ((), {}),
    "gumbel": ((), {}),
    "laplace": ((), {}),
    "f": ((3.0, 4.0), {}),
    "gamma": ((2.0,), {}),
    "beta": ((2.0, 3.0), {}),
    "chisquare": ((3.0,), {}),
    "exponential": ((), {}),
    "lognormal": ((), {}),
    "weibull": ((1.5,), {}),
    "pareto": ((2.0,), {}),
    "power": ((2.0,), {}),
    "rayleigh": ((), {}),
    "randint": ((0, 5), {}),
}


@pytest.mark.parametrize("name", sorted(_DRAWS))
def test_samplers_shape_dtype_and_one_stream_for_all_devices(device, name):
    args, kwargs = _DRAWS[name]
    fn = getattr(mx.np.random, name)
    mx.random.seed(11)
    a = fn(*args, size=(2, 3), device=device, **kwargs)
    mx.np.random.seed(11)
    b = fn(*args, size=(2, 3), device=mx.cpu(1), **kwargs)
    assert a.shape == (2, 3) and a.device == device
    assert a.dtype == (numpy.int64 if name == "randint" else numpy.float32)
    assert (a.asnumpy() == b.asnumpy()).all()
    assert fn(*args, size=(2,), dtype="float64", **kwargs).dtype == numpy.float64


def test_sampler_parameters_as_arrays(device):
    low = mx.np.zeros((3,), device=device)
    high = mx.np.array([1.0, 10.0, 100.0], device=device)
    x = mx.np.random.uniform(low, high, device=device)
    assert x.shape == (3,) and (x.asnumpy() < high.asnumpy()).all()
    assert mx.np.random.normal(low, 1.0).device == device  # follows the parameters
    with pytest.raises(ValueError, match="uniform.*cpu"):
        mx.np.random.uniform(low, high, device=mx.cpu(5))


def test_other_samplers(device):
    mx.random.seed(3)
    assert mx.np.random.rand(2, 3, device=device).shape == (2, 3)
    r = mx.np.random.randn(4, device=device)
    assert r.shape == (4,) and r.dtype == numpy.float32
    c = mx.np.random.choice(5, size=(3,), replace=False, device=device)
    assert c.dtype == numpy.int64 and len(set(c.tolist())) == 3
    pool = mx.np.array([1.0, 2.0, 3.0], device=device)
    assert set(mx.np.random.choice(pool, size=10).tolist()) <= {1.0, 2.0, 3.0}
    m = mx.np.random.multinomial(10, [0.2, 0.8], size=4, device=device)
    assert m.shape == (4, 2) and (m.asnumpy().sum(axis=1) == 10).all()
    mv = mx.np.random.multivariate_normal(numpy.zeros(2), numpy.eye(2), size=3, device=device)
    assert mv.shape == (3, 2) and mv.dtype == numpy.float32
    x = mx.np.arange(6, device=device)
    mx.np.random.shuffle(x)
    assert sorted(x.tolist()) == list(range(6))
    out = mx.np.zeros((2,), device=device)
    assert mx.np.random.normal(size=(2,), device=device, out=out) is out


def test_seed_is_reproducible():
    mx.random.seed(5)
    a = mx.np.random.normal(size=(4,)).asnumpy()
    mx.random.seed(5)
    assert (mx.np.random.normal(size=(4,)).asnumpy() == a).all()
    with pytest.raises(TypeError, match="missing"):
        mx.np.random.gamma(size=2)
    with pytest.raises(ValueError, match="normal"):
        mx.np.random.normal(0, -1.0, size=2)


@pytest.mark.parametrize(
    "name, params",
    [
        ("normal", (0.3, 1.5)),
        ("uniform", (-1.0, 2.0)),
        ("logistic", (0.2, 0.7)),
        ("gumbel", (0.1, 1.2)),
        ("laplace", (-0.4, 0.9)),
        ("lognormal", (0.1, 0.5)),
        ("exponential", (1.3,)),
        ("rayleigh", (0.8,)),
    ],
)
def test_reparameterised_gradients_match_finite_differences(name, params):
    """With the seed fixed the noise is fixed, so samples are smooth in the parameters."""
    fn = getattr(mx.np.random, name)
    weights = numpy.linspace(0.5, 1.5, 3)

    def loss(values):
        arrays = [mx.np.array([v] * 3, dtype="float64") for v in values]
        for a in arrays:
            a.attach_grad()
        mx.random.seed(21)
        out = (fn(*arrays, dtype="float64") * mx.np.array(weights, dtype="float64")).sum()
        return out, arrays

    with mx.autograd.record():
        out, arrays = loss(params)
    out.backward()
    for k in range(len(params)):
        eps = 1e-6
        up = list(params)
        up[k] += eps
        down = list(params)
        down[k] -= eps
        numeric = (loss(up)[0].item() - loss(down)[0].item()) / (2 * eps)
        assert arrays[k].grad.asnumpy().sum() == pytest.approx(numeric, rel=1e-5)
