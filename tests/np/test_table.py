"""Every row of ``mx.np``'s and ``mx.np.linalg``'s tables: values against NumPy on each
device, gradients against central finite differences in float64, and the coverage of
MXNet 2's name list."""

from __future__ import annotations

import pathlib

import numpy
import pytest

import gluonlite as mx
from gluonlite.np import _ops, _table
from gluonlite.np import linalg as mx_linalg
from tests.np.cases import (
    BINARY_DOMAIN,
    CASES,
    LINALG_CASES,
    SIGN_FREE,
    SYMMETRIC,
    binary_case,
    unary_case,
)

_NP_FUNCS = {n: fn for n, fn in vars(_ops).items() if hasattr(fn, "row")}
_LINALG_FUNCS = {n: getattr(mx_linalg, n) for n in mx_linalg.__all__}
_SKIP_VALUE = {"fill_diagonal"}  # in place, returns None: tested below


def _cases_of(module, name):
    if module == "linalg":
        return LINALG_CASES[name]
    if name in CASES:
        return CASES[name]
    row_name = _NP_FUNCS[name].row.np_name
    if row_name in _table.UNARY:
        return [unary_case(name)]
    if row_name in _table.BINARY or name in BINARY_DOMAIN:
        return [binary_case(name)]
    raise KeyError(name)


def _all_params(differentiable_only=False):
    params = []
    for module, funcs in (("np", _NP_FUNCS), ("linalg", _LINALG_FUNCS)):
        for name in sorted(funcs):
            if name in _SKIP_VALUE:
                continue
            fn = funcs[name]
            if differentiable_only and not _is_differentiable(module, name, fn):
                continue
            try:
                cases = _cases_of(module, name)
            except KeyError:  # reported by test_every_row_has_a_case
                continue
            for i, _ in enumerate(cases):
                params.append(pytest.param(module, name, i, id=f"{module}.{name}-{i}"))
    return params


def _is_differentiable(module, name, fn):
    row = getattr(fn, "row", None)
    if row is not None:
        return row.grad is not None
    return True  # linalg's Array-API spellings go through differentiable np rows


_REF = {
    ("np", "concat"): numpy.concatenate,
    ("np", "row_stack"): numpy.vstack,
    ("np", "round_"): numpy.round,
    ("linalg", "svd"): lambda a: numpy.linalg.svd(a, full_matrices=False),
}


def _reference(module, name):
    if (module, name) in _REF:
        return _REF[(module, name)]
    if module == "linalg":
        return getattr(numpy.linalg, name)
    return getattr(numpy, _NP_FUNCS[name].row.np_name)


def _to_mx(v, device, dtype=None):
    if isinstance(v, numpy.ndarray):
        if dtype is not None and v.dtype.kind == "f":
            v = v.astype(dtype)
        return mx.np.array(v, dtype=v.dtype, device=device)
    if isinstance(v, list) and v and isinstance(v[0], numpy.ndarray):
        return [_to_mx(e, device, dtype) for e in v]
    return v


def _flat(res):
    if isinstance(res, (tuple, list)):
        return [r for item in res for r in _flat(item)]
    return [res]


def _expected_dtype(expected, args, kwargs):
    inputs = [a for a in _flat(list(args) + list(kwargs.values())) if isinstance(a, numpy.ndarray)]
    if (
        expected.dtype == numpy.float64
        and "dtype" not in kwargs
        and not any(a.dtype == numpy.float64 for a in inputs)
    ):
        return numpy.dtype(numpy.float32)
    return expected.dtype


@pytest.mark.parametrize("module, name, i", _all_params())
def test_values_match_numpy(device, module, name, i):
    args, kwargs = _cases_of(module, name)[i]
    fn = (_LINALG_FUNCS if module == "linalg" else _NP_FUNCS)[name]
    got = fn(
        *[_to_mx(a, device) for a in args], **{k: _to_mx(v, device) for k, v in kwargs.items()}
    )
    want = _reference(module, name)(*args, **kwargs)
    got_flat, want_flat = _flat(got), _flat(want)
    assert len(got_flat) == len(want_flat), f"{name}: {len(got_flat)} outputs"
    sign_free = SIGN_FREE.get(name, ()) if module == "linalg" else ()
    for k, (g, w) in enumerate(zip(got_flat, want_flat)):
        if not isinstance(w, (numpy.ndarray, numpy.generic)):
            assert g == w
            continue
        w = numpy.asarray(w)
        assert isinstance(g, mx.np.ndarray) and g.device == device, f"{name} output {k}"
        assert g.shape == w.shape, f"{name}: shape {g.shape} != {w.shape}"
        assert g.dtype == _expected_dtype(w, args, kwargs), f"{name}: dtype {g.dtype}"
        gv, wv = g.asnumpy(), w
        if k in sign_free or name in ("qr", "eig"):
            gv, wv = numpy.abs(gv), numpy.abs(wv)
        numpy.testing.assert_allclose(
            gv.astype(w.dtype), wv, rtol=2e-4, atol=2e-5, equal_nan=True, err_msg=name
        )


def _loss(module, name, fn, arrays, args, kwargs, weights):
    """sum_k <w_k, out_k> for the float outputs of ``fn`` on ``arrays`` put into the case."""
    it = iter(arrays)

    def put(v):
        if isinstance(v, numpy.ndarray):
            a = next(it)
            if name in SYMMETRIC and module == "linalg":
                a = (a + a.T) / 2
            return a
        if isinstance(v, list) and v and isinstance(v[0], numpy.ndarray):
            return [put(e) for e in v]
        return v

    out = fn(*[put(a) for a in args], **{k: put(v) for k, v in kwargs.items()})
    sign_free = SIGN_FREE.get(name, ()) if module == "linalg" else ()
    total = None
    for k, o in enumerate(_flat(out)):
        if o.dtype.kind != "f":
            continue
        if k in sign_free:
            o = o * o
        term = (o * weights(k, o.shape)).sum()
        total = term if total is None else total + term
    return total


@pytest.mark.parametrize("module, name, i", _all_params(differentiable_only=True))
def test_gradients_match_finite_differences(module, name, i):
    args, kwargs = _cases_of(module, name)[i]
    fn = (_LINALG_FUNCS if module == "linalg" else _NP_FUNCS)[name]
    host = [
        a.astype(numpy.float64) if a.dtype.kind == "f" else a
        for a in _flat(list(args) + list(kwargs.values()))
        if isinstance(a, numpy.ndarray)
    ]
    rng = numpy.random.default_rng(1)
    cache = {}

    def weights(k, shape):
        if k not in cache:
            cache[k] = mx.np.array(rng.normal(size=shape), dtype="float64")
        return cache[k]

    arrays = [mx.np.array(h, dtype=h.dtype) for h in host]
    for a in arrays:
        if a.dtype.kind == "f":
            a.attach_grad()
    with mx.autograd.record():
        loss = _loss(module, name, fn, arrays, args, kwargs, weights)
    loss.backward()
    eps = 1e-6
    for a, h in zip(arrays, host):
        if h.dtype.kind != "f":
            continue
        numeric = numpy.zeros_like(h)
        for idx in numpy.ndindex(h.shape):
            vals = []
            for step in (eps, -eps):
                moved = h.copy()
                moved[idx] += step
                trial = [mx.np.array(moved, dtype="float64") if b is a else b for b in arrays]
                vals.append(_loss(module, name, fn, trial, args, kwargs, weights).item())
            numeric[idx] = (vals[0] - vals[1]) / (2 * eps)
        numpy.testing.assert_allclose(
            a.grad.asnumpy(), numeric, rtol=1e-4, atol=1e-6, err_msg=f"{module}.{name} case {i}"
        )


def test_every_row_has_a_case():
    missing = []
    for module, funcs in (("np", _NP_FUNCS), ("linalg", _LINALG_FUNCS)):
        for name in funcs:
            if name in _SKIP_VALUE:
                continue
            try:
                _cases_of(module, name)
            except KeyError:
                missing.append(f"{module}.{name}")
    assert not missing


def _surface():
    """MXNet 2's names per section, from the list copied into tests/data."""
    path = pathlib.Path(__file__).parent.parent / "data" / "mxnet2_np_surface.txt"
    sections, current = {}, None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line[1:-1], [])
        else:
            current.append(line)
    return sections


def test_surface_list_matches_the_shared_reference():
    """When the shared reference is there (a sibling of the repository or /work/shared),
    the copy in tests/data must list the same names."""
    import re

    root = pathlib.Path(__file__).resolve().parents[2]
    for candidate in (root.parent / "shared", pathlib.Path("/work/shared")):
        ref = candidate / "reference" / "mxnet2-api-surface.md"
        if ref.exists():
            break
    else:
        pytest.skip("shared/reference/mxnet2-api-surface.md is not next to this checkout")
    text = ref.read_text()
    sections = _surface()
    for title, key in (
        ("## mx.np (", "np"),
        ("## mx.np.random", "np.random"),
        ("## mx.np.linalg", "np.linalg"),
    ):
        line = text[text.index(title) :].splitlines()[1]
        assert sorted(set(re.findall(r"`([^`]+)`", line))) == sorted(sections[key])


def test_every_mxnet2_name_exists():
    sections = _surface()
    assert (len(sections["np"]), len(sections["np.random"]), len(sections["np.linalg"])) == (
        210,
        23,
        27,
    )  # 211 in the reference, where arctan2 is listed twice
    modules = {"np": mx.np, "np.random": mx.np.random, "np.linalg": mx.np.linalg}
    missing = [
        f"{sec}.{n}"
        for sec, names in sections.items()
        for n in names
        if not hasattr(modules[sec], n)
    ]
    assert not missing
    assert isinstance(mx.np.ndarray, type)
    not_callable = [
        f"{sec}.{n}"
        for sec, names in sections.items()
        for n in names
        if n != "ndarray" and not callable(getattr(modules[sec], n))
    ]
    assert not not_callable
    for sec, names in sections.items():
        assert set(names) - {"ndarray"} <= set(modules[sec].__all__), sec


_FAST = sorted(
    n
    for n, fn in _NP_FUNCS.items()
    if fn.row.np_name in _table.UNARY or fn.row.np_name in _table.BINARY
)


@pytest.mark.parametrize("name", _FAST)
def test_generic_path_matches_the_cpu_fast_path(name):
    """Elementwise rows take a NumPy shortcut on cpu; GPUs take ``_dispatch.call``. Both
    must give the same values and gradients (checked here on cpu, where both run)."""
    from gluonlite.np import _dispatch

    args, _ = _cases_of("np", name)[0]
    fn = _NP_FUNCS[name]
    results = []
    for via_call in (False, True):
        arrays = [mx.np.array(a.astype(numpy.float64) if a.dtype.kind == "f" else a) for a in args]
        for a in arrays:
            if a.dtype.kind == "f":
                a.attach_grad()
        with mx.autograd.record():
            out = _dispatch.call(fn.row, tuple(arrays), {}) if via_call else fn(*arrays)
        grads = []
        if fn.row.grad is not None:
            out.backward()
            grads = [a.grad.asnumpy() for a in arrays if a.dtype.kind == "f"]
        results.append((out.asnumpy(), out.dtype, grads))
    (v1, d1, g1), (v2, d2, g2) = results
    assert d1 == d2
    numpy.testing.assert_array_equal(v1, v2)
    for a, b in zip(g1, g2):
        numpy.testing.assert_allclose(a, b, rtol=1e-12, equal_nan=True)
