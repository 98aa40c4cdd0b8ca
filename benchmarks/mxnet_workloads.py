"""The Apache MXNet 1.9.1 side of ``gluonlite-bench mxnet``; runs inside ``.venv-mxnet``.

MXNet 1.9.1 needs ``numpy==1.23.5`` (Python <= 3.11), so it cannot share gluonlite's
environment, and this script does not import gluonlite. It builds the workloads of
gluonlite's ``param``, ``fc``, ``replicate``, ``step``, ``conv`` and ``ops`` suites with
MXNet's API, from the very same case dicts, and times them with the same method: it loads
``gluonlite/bench/timing.py``, which needs only the standard library, by path.

It serves one JSON request per line on stdin with one JSON reply per line on stdout, so
that the parent can time MXNet's side of each case right next to gluonlite's::

    {"op": "hello"}    -> {"versions": {"mxnet": "1.9.1", "numpy": "1.23.5", ...}}
    {"op": "measure", "case": {"suite": "fc", ...},
     "settings": {"repeats": 7, "warmup": 2, "min_time": 0.05, "max_number": 100000}}
                       -> {"times_s": [seconds per call, one per repeat], "number": n}

A failing request replies ``{"error": "..."}`` and the runner carries on; it exits at the
end of its input. MXNet's engine is asynchronous, so the clock waits for
``mx.nd.waitall()`` before reading the time.
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
    params = [
        mx.gluon.Parameter(f"p{i}", shape=tuple(case["shape"])) for i in range(case["params"])
    ]
    for p in params:
        p.initialize(ctx=ctxs)
    first, last = ctxs[0], ctxs[-1]
    uniform = mx.init.Uniform()
    calls = {
        "initialize": lambda p: p.initialize(init=uniform, ctx=ctxs, force_reinit=True),
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
        arrays = [
            mx.nd.array(rng.standard_normal(s, dtype=numpy.float32), dtype=case["dtype"])
            for s in shapes
        ]
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
    params = [
        mx.gluon.Parameter(f"p{i}", shape=shape, grad_req="null") for i in range(case["params"])
    ]
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


def conv_workload(mx, case, timing):
    """gluonlite's ``conv`` suite: one convolution forward + backward, or a ResNet-18
    (model zoo ``resnet18_v1``, hybridized) training step; inputs drawn as there."""
    import numpy

    rng = numpy.random.default_rng(0)
    ctx = mx.cpu(0)
    n, size = case["batch"], case["size"]
    if case["kind"] == "layer":
        k, s, p = case["kernel"], case["stride"], case["pad"]
        x = mx.nd.array(rng.standard_normal((n, case["cin"], size, size)), ctx=ctx)
        w = mx.nd.array(rng.standard_normal((case["cout"], case["cin"], k, k)) * 0.05, ctx=ctx)
        x.attach_grad()
        w.attach_grad()

        def layer():
            with mx.autograd.record():
                y = mx.nd.Convolution(
                    x,
                    w,
                    kernel=(k, k),
                    stride=(s, s),
                    pad=(p, p),
                    num_filter=case["cout"],
                    no_bias=True,
                )
            y.backward()

        return layer, ((),), None
    x = mx.nd.array(rng.standard_normal((n, 3, size, size)), ctx=ctx)
    labels = mx.nd.array(rng.integers(0, 1000, n), ctx=ctx)
    net = mx.gluon.model_zoo.vision.resnet18_v1(classes=1000)
    net.initialize(ctx=ctx)
    net.hybridize()
    loss_fn = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = mx.gluon.Trainer(
        net.collect_params(), "sgd", {"learning_rate": 0.01, "momentum": 0.9}
    )

    def step():
        with mx.autograd.record():
            loss = loss_fn(net(x), labels)
        loss.backward()
        trainer.step(n)

    return step, ((),), None


def ops_workload(mx, case, timing):
    """gluonlite's ``ops`` suite: the case's expression over ``mx.np``/``mx.npx`` (MXNet 2's
    API, which 1.9.1 has under ``set_np``; ``serve`` turns it off after the case)."""
    import numpy

    mx.npx.set_np()
    # The same input sets as gluonlite's ops suite (gluonlite/bench/ops.py, inputs_for).
    rng = numpy.random.default_rng(0)
    per_set = sum(4 * int(numpy.prod(shape)) for shape, _ in case["inputs"])
    sets = []
    for _ in range(timing.rotations(per_set)):
        host = [
            rng.integers(0, 64, shape).astype(dtype)
            if dtype.startswith("int")
            else rng.standard_normal(shape).astype(dtype)
            for shape, dtype in case["inputs"]
        ]
        sets.append(tuple(mx.np.array(a, dtype=a.dtype) for a in host))
    fn = eval(
        f"lambda a, b=None, c=None: {case['expr']}",  # noqa: S307 - gluonlite's table
        {"np": mx.np, "npx": mx.npx},
    )
    if case["mode"] == "call":
        return fn, sets, None
    for s in sets:
        for a in s:
            if a.dtype.kind == "f":
                a.attach_grad()

    def train(*args):
        with mx.autograd.record():
            y = fn(*args)
        y.backward()

    return train, sets, None


WORKLOADS = {
    "param": param_workload,
    "fc": fc_workload,
    "replicate": replicate_workload,
    "step": step_workload,
    "ops": ops_workload,
    "conv": conv_workload,
}


def _versions(mx):
    import numpy

    return {
        "mxnet": mx.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def serve(requests, replies) -> None:
    """Answer each request line of ``requests`` with one line on ``replies``."""
    import mxnet as mx

    timing = load_timing()
    clock = timing.HostClock(mx.nd.waitall)
    for line in requests:
        request = json.loads(line)
        try:
            if request["op"] == "hello":
                if mx.__version__ != "1.9.1":
                    raise RuntimeError(f"expected MXNet 1.9.1, found {mx.__version__}")
                reply = {"versions": _versions(mx)}
            elif request["op"] == "optimizers":
                reply = {"optimizers": sorted(mx.optimizer.Optimizer.opt_registry)}
            elif request["op"] == "measure":
                case = request["case"]
                fn, inputs, prepare = WORKLOADS[case["suite"]](mx, case, timing)
                measured = timing.measure(
                    fn, inputs, clock=clock, prepare=prepare, **request["settings"]
                )
                reply = {"times_s": measured.times, "number": measured.number}
            else:
                raise ValueError(f"unknown op {request['op']!r}")
        except Exception as e:  # noqa: BLE001 - reported to the parent, which shows it
            reply = {"error": f"{type(e).__name__}: {e}"}
        finally:
            fn = inputs = prepare = None  # free this case before the next one
            mx.nd.waitall()
            mx.npx.reset_np()  # the ops workload turns NumPy semantics on
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    serve(sys.stdin, sys.stdout)
