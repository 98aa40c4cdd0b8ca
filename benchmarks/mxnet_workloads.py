"""The Apache MXNet 1.9.1 side of ``gluonlite-bench mxnet``; runs inside ``.venv-mxnet``.

MXNet 1.9.1 needs ``numpy==1.23.5`` (Python <= 3.11), so it cannot share gluonlite's
environment, and this script does not import gluonlite. It reads a request on stdin::

    {"settings": {"repeats": 7, "warmup": 2, "min_time": 0.05, "max_number": 100000},
     "cases": [{"suite": "param", "op": "data()", "params": 1000, ...}, ...]}

where each case is a case dict of gluonlite's ``param``, ``fc``, ``replicate`` or ``step``
suite, builds the same workload with MXNet's API, times it with the same method (it loads
``gluonlite/bench/timing.py``, which needs only the standard library, by path) and prints on
stdout::

    {"versions": {"mxnet": "1.9.1", "numpy": "1.23.5", "python": "3.11.7"},
     "results": [{"median_s": ..., "times_s": [...], "number": ...} or {"error": "..."}]}

one result per case, in order, each per call of the workload. MXNet's engine is
asynchronous, so the clock waits for ``mx.nd.waitall()`` before reading the time.
"""
from __future__ import annotations

import importlib.util
import json
import pathlib
import platform
import re
import sys

_TIMING = pathlib.Path(__file__).resolve().parents[1] / "gluonlite" / "bench" / "timing.py"


def load_timing():
    spec = importlib.util.spec_from_file_location("gluonlite_bench_timing", _TIMING)
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve the module of the classes they build through sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _context(mx, name: str):
    match = re.fullmatch(r"(cpu|gpu)\((\d+)\)", name)
    if match is None:
        raise ValueError(f"not a device: {name!r}")
    return getattr(mx, match.group(1))(int(match.group(2)))


def param_workload(mx, case, timing):
    ctxs = [_context(mx, d) for d in case["devices"]]
    params = [mx.gluon.Parameter(f"p{i}", shape=tuple(case["shape"]))
              for i in range(case["params"])]
    for p in params:
        p.initialize(ctx=ctxs)
    first, last = ctxs[0], ctxs[-1]
    calls = {
        "data()": lambda p: p.data(),
        "data(device)": lambda p: p.data(last),
        "list_data()": lambda p: p.list_data(),
        "grad()": lambda p: p.grad(),
        "zero_grad()": lambda p: p.zero_grad(),
    }
    call = calls[case["op"]]

    def fn():
        with first:  # data() and grad() pick the current context's replica
            for p in params:
                call(p)
    return fn, ((),), None


def fc_workload(mx, case, timing):
    import numpy
    n, k, m = case["batch"], case["in"], case["out"]
    train = case["op"] != "fwd"
    # The same input sets as gluonlite's fc suite: seed, draw order and rotation rule.
    rng = numpy.random.default_rng(0)
    per_set = 4 * (n * k + m * k + m + (n * m if train else 0))
    sets = []
    for _ in range(timing.rotations(per_set)):
        shapes = ((n, k), (m, k), (m,)) + (((n, m),) if train else ())
        arrays = [mx.nd.array(rng.standard_normal(s, dtype=numpy.float32), dtype=case["dtype"])
                  for s in shapes]
        if train:
            for a in arrays[:3]:
                a.attach_grad()
        sets.append(tuple(arrays))
    fully_connected = mx.nd.FullyConnected
    if not train:
        def fn(x, w, b):
            fully_connected(x, w, b, num_hidden=m)
    else:
        def fn(x, w, b, dy):
            with mx.autograd.record():
                y = fully_connected(x, w, b, num_hidden=m)
            y.backward(dy)
    return fn, sets, None


def replicate_workload(mx, case, timing):
    shape = tuple(case["shape"])
    params = [mx.gluon.Parameter(f"p{i}", shape=shape, grad_req="null")
              for i in range(case["params"])]
    if case["op"] == "initialize":
        ctxs = [_context(mx, d) for d in case["devices"]]
        init = mx.init.Uniform()

        def fn():
            for p in params:
                p.initialize(init=init, ctx=ctxs, force_reinit=True)
        return fn, ((),), None
    src = [_context(mx, d) for d in case["src"]]
    dst = [_context(mx, d) for d in case["dst"]]
    for p in params:
        p.initialize(ctx=src)

    def move(ctxs):
        for p in params:
            p.reset_ctx(ctxs)
    return move, ((dst,), (src,)), None


def step_workload(mx, case, timing):
    h = case["hidden"]
    shapes = [s for _ in range(case["layers"]) for s in ((h, h), (h,))]
    params = {f"p{i}": mx.gluon.Parameter(f"p{i}", shape=s) for i, s in enumerate(shapes)}
    for p in params.values():
        p.initialize(ctx=mx.cpu(0))
    trainer = mx.gluon.Trainer(params, case["optimizer"], dict(case["hyper"]))

    def fresh_gradients():
        # Trainer.step refuses gradients no backward pass refreshed since the last step.
        with mx.autograd.record():
            loss = sum(p.data().sum() for p in params.values())
        loss.backward()
    return (lambda: trainer.step(1)), ((),), fresh_gradients


WORKLOADS = {"param": param_workload, "fc": fc_workload, "replicate": replicate_workload,
             "step": step_workload}


def main() -> int:
    import mxnet as mx
    import numpy
    if mx.__version__ != "1.9.1":
        print(f"expected MXNet 1.9.1, found {mx.__version__}", file=sys.stderr)
        return 2
    request = json.load(sys.stdin)
    timing = load_timing()
    clock = timing.HostClock(mx.nd.waitall)
    results = []
    for case in request["cases"]:
        try:
            fn, inputs, prepare = WORKLOADS[case["suite"]](mx, case, timing)
            measured = timing.measure(fn, inputs, clock=clock, prepare=prepare,
                                      **request["settings"])
            results.append(measured.to_json())
        except Exception as e:  # noqa: BLE001 - report per case, keep measuring the rest
            results.append({"error": f"{type(e).__name__}: {e}"})
        finally:
            fn = inputs = prepare = None
            mx.nd.waitall()
    json.dump({"versions": {"mxnet": mx.__version__, "numpy": numpy.__version__,
                            "python": platform.python_version()},
               "results": results}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
