"""The cases of tests/test_cext.py: what the operators, indexing, ``.T`` and ``reshape`` of
``mx.np.ndarray`` give, printed as JSON, for one run of gluonlite with or without its C
extension (GLUONLITE_NO_CEXT=1). The test runs this twice and compares the outputs.

Usage: python tests/cext_cases.py DEVICE   (cpu0, gpu0: the device of the arrays)
"""

from __future__ import annotations

import json
import pickle
import sys
import warnings

import numpy


def _describe(v):
    """A JSON-able account of a result: its class, device, dtype, shape and values."""
    import gluonlite as mx

    if isinstance(v, mx.np.ndarray):
        host = v.asnumpy()
        return [
            type(v).__name__,
            type(v._data).__name__,
            str(v.device),
            str(host.dtype),
            list(host.shape),
            numpy.nan_to_num(host.astype(numpy.float64), nan=1e300).round(5).tolist(),
        ]
    if isinstance(v, (tuple, list)):
        return [_describe(x) for x in v]
    return repr(v)


def _run(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = _describe(fn())
        except Exception as e:  # the error's type and words are part of the behaviour
            out = ["error", type(e).__name__, str(e)]
    return [out, sorted({f"{w.category.__name__}: {w.message}" for w in caught})]


def cases(device):
    import gluonlite as mx
    from gluonlite._replica import Replica

    dev = device
    other = mx.cpu(1) if dev.device_type == "cpu" else mx.cpu(0)
    same = mx.Device(dev.device_type, dev.device_id)  # equal to dev, another object
    f = mx.np.array([[1.5, -2.0, 3.0], [4.0, 0.0, -6.5]], device=dev)
    g = mx.np.array([[2.0, 1.0, -1.0], [0.5, 3.0, 2.0]], device=dev)
    i = mx.np.array([[1, 2, 3], [4, 5, 6]], dtype="int32", device=dev)
    j = mx.np.array([[3, 1, 2], [1, 0, 2]], dtype="int64", device=dev)
    b = mx.np.array([[True, False, True], [False, True, True]], device=dev)
    d = mx.np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype="float64", device=dev)
    h = mx.np.array([1.0, 2.0, 3.0], dtype="float16", device=dev)
    row = mx.np.array([1.0, 2.0, 3.0], device=dev)
    z = mx.np.array(2.0, device=dev)  # 0-d
    x3 = mx.np.arange(24, device=dev).reshape(2, 3, 4)
    f_same = mx.np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], device=same)
    f_other = mx.np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], device=other)
    rep = Replica(f._data.copy(), dev)
    host = numpy.ones((2, 3), dtype=numpy.float32)
    idx = mx.np.array([1, 0, 1], dtype="int64", device=dev)
    fidx = mx.np.array([1.0, 0.0], device=dev)
    idx_other = mx.np.array([1, 0], dtype="int64", device=other)
    idx_same = mx.np.array([1, 0], dtype="int64", device=same)

    table = {}
    ops = {
        "+": lambda p, q: p + q,
        "-": lambda p, q: p - q,
        "*": lambda p, q: p * q,
        "/": lambda p, q: p / q,
        "**": lambda p, q: p**q,
        "%": lambda p, q: p % q,
        "//": lambda p, q: p // q,
        "&": lambda p, q: p & q,
        "|": lambda p, q: p | q,
        "^": lambda p, q: p ^ q,
        "<<": lambda p, q: p << q,
        ">>": lambda p, q: p >> q,
        "@": lambda p, q: p @ q,
    }
    operands = {
        "f,g": (f, g),
        "f,2": (f, 2),
        "3,f": (3, f),
        "f,2.5": (f, 2.5),
        "1.5,f": (1.5, f),
        "f,True": (f, True),
        "i,j": (i, j),
        "i,2": (i, 2),
        "2,i": (2, i),
        "i,0": (i, 0),
        "i,1.5": (i, 1.5),
        "b,b": (b, b),
        "b,True": (b, True),
        "f,d": (f, d),
        "d,2.0": (d, 2.0),
        "h,2": (h[None], 2),
        "f,row": (f, row),
        "z,z": (z, z),
        "z,2": (z, 2),
        "f,z": (f, z),
        "f,f_same": (f, f_same),
        "f,f_other": (f, f_other),
        "f,host": (f, host),
        "host,f": (host, f),
        "f,np.float64": (f, numpy.float64(2.0)),
        "np.float32,f": (numpy.float32(2.0), f),
        "f,list": (f, [1.0, 2.0, 3.0]),
        "f,None": (f, None),
        "f,str": (f, "x"),
        "rep,1": (rep, 1),
        "1,rep": (1, rep),
        "f,rep": (f, rep),
        "f,row3": (f, mx.np.ones((3,), device=dev)),
        "f,gT": (f, g.T),
        "f,bad shape": (f, mx.np.ones((4,), device=dev)),
    }
    for oname, op in ops.items():
        for pname, (p, q) in operands.items():
            table[f"{pname} {oname}"] = _run(lambda op=op, p=p, q=q: op(p, q))
    table["pow mod"] = _run(lambda: pow(f, 2, 3))
    table["radd method"] = _run(lambda: f.__radd__(2))
    table["rmatmul host"] = _run(lambda: host.T @ f)

    keys = {
        "1": 1,
        "-1": -1,
        "5": 5,
        "True": True,
        "slice": slice(0, 1),
        "slice step": slice(None, None, -1),
        "idx": idx,
        "fidx": fidx,
        "idx_same": idx_same,
        "idx_other": idx_other,
        "mask": b,
        "tuple": (1, slice(0, 2)),
        "tuple idx": (idx, 0),
        "ellipsis": Ellipsis,
        "None": None,
        "list": [1, 0],
        "np int": numpy.int64(1),
        "host idx": numpy.array([1, 0]),
        "str": "a",
        "float": 1.0,
    }
    for kname, key in keys.items():
        table[f"f[{kname}]"] = _run(lambda key=key: f[key])
        table[f"x3[{kname}]"] = _run(lambda key=key: x3[key])
    table["row[1]"] = _run(lambda: row[1])
    table["z[()]"] = _run(lambda: z[()])
    table["z[0]"] = _run(lambda: z[0])
    table["rep[0]"] = _run(lambda: rep[0])

    for name, arr in {"f": f, "row": row, "x3": x3, "z": z, "rep": rep}.items():
        table[f"{name}.T"] = _run(lambda arr=arr: arr.T)
    shapes = {
        "-1": ((-1,), {}),
        "(3, 2)": (((3, 2),), {}),
        "3, 2": ((3, 2), {}),
        "[3, -1]": (([3, -1],), {}),
        "order F": (((3, 2),), {"order": "F"}),
        "shape=": ((), {"shape": (6,)}),
        "newshape=": ((), {"newshape": (6, 1)}),
        "bad": ((4,), {}),
        "bad type": (("a",), {}),
        "none": ((), {}),
        "unknown kw": ((6,), {"foo": 1}),
        "many": ((1, 1, 1, 1, 1, 1, 1, 1, 6), {}),
    }
    for sname, (args, kw) in shapes.items():
        table[f"f.reshape({sname})"] = _run(lambda args=args, kw=kw: f.reshape(*args, **kw))
    table["gT.reshape(-1)"] = _run(lambda: g.T.reshape(-1))
    table["rep.reshape(-1)"] = _run(lambda: rep.reshape(-1))

    # The table's functions (C FastOp forms of np/_dispatch.py's fast paths).
    np_ = mx.np
    calls = {
        "maximum(f, g)": lambda: np_.maximum(f, g),
        "maximum(f, 2)": lambda: np_.maximum(f, 2),
        "maximum(2.5, i)": lambda: np_.maximum(2.5, i),
        "maximum(f, f_other)": lambda: np_.maximum(f, f_other),
        "maximum(f, f_same)": lambda: np_.maximum(f, f_same),
        "maximum(f, host)": lambda: np_.maximum(f, host),
        "maximum(f, bad)": lambda: np_.maximum(f, mx.np.ones((4,), device=dev)),
        "maximum(f, g, out=)": lambda: np_.maximum(f, g, out=mx.np.zeros((2, 3), device=dev)),
        "add(i, 1.5)": lambda: np_.add(i, 1.5),
        "divide(i, 0)": lambda: np_.divide(i, 0),
        "exp(f)": lambda: np_.exp(f),
        "exp(i)": lambda: np_.exp(i),
        "exp(d)": lambda: np_.exp(d),
        "exp(z)": lambda: np_.exp(z),
        "exp(h)": lambda: np_.exp(h),
        "exp(rep)": lambda: np_.exp(rep),
        "exp(host)": lambda: np_.exp(host),
        "exp(list)": lambda: np_.exp([1.0, 2.0]),
        "log(f)": lambda: np_.log(f),
        "tanh(f, out=)": lambda: np_.tanh(f, out=mx.np.zeros((2, 3), device=dev)),
        "sum(f)": lambda: np_.sum(f),
        "f.sum()": lambda: f.sum(),
        "f.sum(1)": lambda: f.sum(1),
        "f.sum(axis=0)": lambda: f.sum(axis=0),
        "f.sum(axis=5)": lambda: f.sum(axis=5),
        "f.sum(keepdims)": lambda: f.sum(axis=1, keepdims=True),
        "f.sum(dtype)": lambda: f.sum(dtype="float64"),
        "i.sum()": lambda: i.sum(),
        "b.sum()": lambda: b.sum(),
        "d.mean()": lambda: d.mean(),
        "f.mean()": lambda: f.mean(),
        "i.mean(0)": lambda: i.mean(0),
        "f.max(axis=0)": lambda: f.max(axis=0),
        "f.min()": lambda: f.min(),
        "f.prod(1)": lambda: f.prod(1),
        "f.argmax()": lambda: f.argmax(),
        "ndarray.sum(f)": lambda: mx.np.ndarray.sum(f),
        "rep.sum()": lambda: rep.sum(),
        "z.sum()": lambda: z.sum(),
        "concatenate([f, g])": lambda: np_.concatenate([f, g]),
        "concatenate((f, g), axis=1)": lambda: np_.concatenate((f, g), axis=1),
        "concatenate([f, d])": lambda: np_.concatenate([f, d]),
        "concatenate([i, j])": lambda: np_.concatenate([i, j]),
        "concatenate([f, f_other])": lambda: np_.concatenate([f, f_other]),
        "concatenate([f, f_same])": lambda: np_.concatenate([f, f_same]),
        "concatenate([f, row])": lambda: np_.concatenate([f, row]),
        "concatenate([])": lambda: np_.concatenate([]),
        "concatenate([f, host])": lambda: np_.concatenate([f, host]),
        "stack([f, g])": lambda: np_.stack([f, g]),
        "matmul(f, gT)": lambda: np_.matmul(f, g.T),
        "matmul(f, g)": lambda: np_.matmul(f, g),
        "matmul(f, 2)": lambda: np_.matmul(f, 2),
        "dot(f, gT)": lambda: np_.dot(f, g.T),
        "matmul(f, f_other)": lambda: np_.matmul(f, f_other.T),
        "matmul(i, jT)": lambda: np_.matmul(i, j.T),
    }
    for cname, call in calls.items():
        table[cname] = _run(call)
    table["names"] = [np_.exp.__name__, np_.sum.__name__, repr(np_.maximum).split(" at ")[0]]

    # Construction, pickling, attributes.
    table["ndarray(kw)"] = _run(lambda: mx.np.ndarray(data=f._data, device=dev))
    table["ndarray(pos)"] = _run(lambda: mx.np.ndarray(f._data, dev))
    table["ndarray()"] = _run(lambda: mx.np.ndarray())
    table["pickle"] = _run(lambda: pickle.loads(pickle.dumps(f + 1)))

    # In-place operators and assignment (Python's, unchanged; their results re-read here).
    def inplace():
        a = f.copy()
        a += g
        a *= 2
        a -= 1
        a /= 3
        a[0, 1] = 7.0
        a[1] = row
        return a

    table["inplace"] = _run(inplace)

    # While recording: the same expressions differentiate (the Python paths, taken by the
    # C base whenever recording is on).
    def grads(fn, *xs):
        def run():
            leaves = [x.copy() for x in xs]
            for leaf in leaves:
                leaf.attach_grad()
            with mx.autograd.record():
                y = fn(*leaves)
            y.backward()
            return [y] + [leaf.grad for leaf in leaves]

        return _run(run)

    table["grad +*"] = grads(lambda p, q: (p * q + 2.0 * p - q / 3.0) ** 2, f, g)
    table["grad @"] = grads(lambda p, q: p @ q.T, f, g)
    table["grad index"] = grads(lambda p: p[1] * 2 + p[0, 2] + p[idx].sum(), f)
    table["grad scalars"] = grads(lambda p: p[1, 0] + p[0, 0] * p[0, 1], f)
    table["grad T reshape"] = grads(lambda p: p.T.reshape(-1) * row.reshape(3, 1).T[0, 0], f)
    table["grad fidx"] = grads(lambda p: p[fidx] * 3, f)
    table["grad one leaf"] = grads(lambda p: (p + g) * f_same[0], f)
    table["grad functions"] = grads(
        lambda p, q: (
            mx.np.maximum(p, q).sum(axis=0) * mx.np.exp(p).sum(1).sum()
            + mx.np.concatenate([p, q]).mean()
            + mx.np.matmul(p, q.T).sum()
        ),
        f,
        g,
    )

    def graph_plain():
        leaf = f.copy()
        leaf.attach_grad()
        with mx.autograd.record():
            y = g * 2 + g[0] + g.T.T + g.reshape(-1).reshape(2, 3)  # nothing to record
        return [y, y._node is None, leaf.grad]

    table["record, no grads"] = _run(graph_plain)
    return table


if __name__ == "__main__":
    import gluonlite as mx

    arg = sys.argv[1]
    device = mx.cpu(int(arg[3:])) if arg.startswith("cpu") else mx.gpu(int(arg[3:]))
    from gluonlite import ndarray as _nd

    print(json.dumps({"cext": _nd._C is not None, "cases": cases(device)}))
