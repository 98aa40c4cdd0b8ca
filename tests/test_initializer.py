"""mx.init: the MXNet formulas, the registry, and seeded host-side draws."""

from __future__ import annotations

import numpy
import pytest

import gluonlite as mx


@pytest.mark.parametrize(
    "name, klass",
    [
        ("zeros", mx.init.Zero),
        ("zero", mx.init.Zero),
        ("ones", mx.init.One),
        ("one", mx.init.One),
        ("uniform", mx.init.Uniform),
        ("normal", mx.init.Normal),
        ("xavier", mx.init.Xavier),
        ("msraprelu", mx.init.MSRAPrelu),
        ("orthogonal", mx.init.Orthogonal),
        ("Xavier", mx.init.Xavier),
    ],
)
def test_create_finds_registered_names(name, klass):
    assert type(mx.init.create(name)) is klass


def test_create_passes_instances_and_round_trips_dumps():
    xavier = mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2.5)
    assert mx.init.create(xavier) is xavier
    again = mx.init.create(xavier.dumps())
    assert (again.rnd_type, again.factor_type, again.magnitude) == ("gaussian", "in", 2.5)
    msra = mx.init.create(mx.init.MSRAPrelu(slope=0.5).dumps())
    assert msra.magnitude == pytest.approx(2 / 1.25)


def test_create_rejects_unknown_names_and_types():
    with pytest.raises(ValueError, match=r"Unknown initializer 'glorot'.*xavier"):
        mx.init.create("glorot")
    with pytest.raises(TypeError, match="Initializer or its name, got int"):
        mx.init.create(3)


def test_constructor_arguments_are_checked():
    with pytest.raises(ValueError, match="rnd_type"):
        mx.init.Xavier(rnd_type="normal")
    with pytest.raises(ValueError, match="factor_type"):
        mx.init.MSRAPrelu(factor_type="sum")
    with pytest.raises(ValueError, match="rand_type"):
        mx.init.Orthogonal(rand_type="gaussian")


def test_constant_zero_one():
    numpy.testing.assert_array_equal(mx.init.Zero()("w", (2, 3)), numpy.zeros((2, 3)))
    numpy.testing.assert_array_equal(mx.init.One()("w", (2, 3)), numpy.ones((2, 3)))
    numpy.testing.assert_array_equal(mx.init.Constant(2.5)("w", (2,)), [2.5, 2.5])
    row = mx.init.Constant(mx.np.array([1, 2, 3]))("w", (2, 3))
    numpy.testing.assert_array_equal(row, [[1, 2, 3], [1, 2, 3]])
    with pytest.raises(ValueError, match=r"Constant initializer for 'w'.*\(3,\).*\(2, 2\)"):
        mx.init.Constant([1, 2, 3])("w", (2, 2))


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_result_has_the_requested_dtype_and_shape(dtype):
    out = mx.init.Uniform()("w", (3, 4), dtype)
    assert out.shape == (3, 4) and out.dtype == numpy.dtype(dtype)


def test_uniform_and_normal_statistics():
    u = mx.init.Uniform(0.5)("w", (200, 200), "float64")
    assert -0.5 <= u.min() < -0.49 and 0.49 < u.max() <= 0.5
    n = mx.init.Normal(0.2)("w", (200, 200), "float64")
    assert n.std() == pytest.approx(0.2, rel=0.02) and abs(n.mean()) < 0.005
    default = mx.init.Uniform()("w", (100, 100))
    assert 0.069 < abs(default).max() <= 0.07


@pytest.mark.parametrize(
    "factor_type, factor", [("avg", (30 * 9 + 20 * 9) / 2), ("in", 30 * 9), ("out", 20 * 9)]
)
def test_xavier_uniform_bound(factor_type, factor):
    out = mx.init.Xavier(factor_type=factor_type, magnitude=2)("w", (20, 30, 3, 3), "float64")
    bound = numpy.sqrt(2 / factor)
    assert abs(out).max() <= bound and abs(out).max() > 0.98 * bound


def test_xavier_gaussian_and_msraprelu_std():
    out = mx.init.Xavier(rnd_type="gaussian")("w", (400, 600), "float64")
    assert out.std() == pytest.approx(numpy.sqrt(3 / 500), rel=0.02)
    out = mx.init.MSRAPrelu(factor_type="in", slope=0.0)("w", (400, 600), "float64")
    assert out.std() == pytest.approx(numpy.sqrt(2 / 600), rel=0.02)


@pytest.mark.parametrize("init", [mx.init.Xavier(), mx.init.MSRAPrelu()])
def test_xavier_refuses_vectors_naming_the_parameter(init):
    with pytest.raises(ValueError, match=r"parameter 'fc_bias' of shape \(64,\).*2 dim"):
        init("fc_bias", (64,))


@pytest.mark.parametrize("shape", [(4, 6), (6, 4), (3, 2, 2)])
@pytest.mark.parametrize("rand_type", ["uniform", "normal"])
def test_orthogonal_rows_or_columns_are_orthonormal(shape, rand_type):
    out = mx.init.Orthogonal(scale=2.0, rand_type=rand_type)("w", shape, "float64")
    assert out.shape == shape
    flat = out.reshape(shape[0], -1) / 2.0
    gram = flat @ flat.T if flat.shape[0] <= flat.shape[1] else flat.T @ flat
    numpy.testing.assert_allclose(gram, numpy.eye(gram.shape[0]), atol=1e-12)


def test_same_seed_same_values_and_draws_advance():
    mx.random.seed(42)
    first = mx.init.Xavier()("w", (5, 5))
    second = mx.init.Xavier()("w", (5, 5))
    mx.random.seed(42)
    numpy.testing.assert_array_equal(mx.init.Xavier()("w", (5, 5)), first)
    assert not numpy.array_equal(first, second)


def test_initializer_is_abstract():
    with pytest.raises(TypeError):
        mx.init.Initializer()
