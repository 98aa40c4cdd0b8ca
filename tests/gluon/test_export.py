"""HybridBlock.export and SymbolBlock: MXNet's symbol JSON and .params, written and read back
by gluonlite and, where ``.venv-mxnet`` exists, by MXNet 1.9.1 (and the other way round)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

import gluonlite as mx
from gluonlite import npx
from gluonlite.gluon import nn
from tests.gluon.export_models import models

MODELS = models()


def _exported(name, device, tmp_path):
    build, inputs, _ = MODELS[name]
    net = build()
    net.initialize(mx.init.Xavier(magnitude=2), device=device)
    xs = [mx.np.array(a, device=device) for a in inputs]
    net(*xs)
    # Non-trivial statistics, so that exporting them (as aux:) matters.
    with mx.autograd.record():
        net(*xs)
    net.hybridize()
    y = net(*xs)
    files = net.export(str(tmp_path / name), epoch=7)
    return net, xs, y, files


@pytest.mark.parametrize("name", sorted(MODELS))
def test_export_writes_mxnet_files_that_load_back(device, name, tmp_path):
    net, xs, y, (sym_file, params_file) = _exported(name, device, tmp_path)
    assert sym_file == str(tmp_path / f"{name}-symbol.json")
    assert params_file == str(tmp_path / f"{name}-0007.params")
    graph = json.load(open(sym_file))
    assert graph["attrs"]["mxnet_version"] == ["int", 10901]
    variables = [n["name"] for n in graph["nodes"] if n["op"] == "null"]
    inputs = ["data"] if len(xs) == 1 else [f"data{i}" for i in range(len(xs))]
    assert [v for v in variables if v.startswith("data")] == inputs
    # Parameters keep their structural names; MXNet's arg:/aux: prefixes in the file.
    saved = npx.load(params_file)
    params = {k: p for k, p in net.collect_params().items()}
    assert sorted(k[4:] for k in saved if not k[4:].endswith(("_gamma", "_beta"))) == sorted(
        v for v in variables if v in params
    )
    for key, value in saved.items():
        if key[4:] in params:
            p = params[key[4:]]
            assert key[:4] == ("aux:" if "running" in key else "arg:")
            np.testing.assert_array_equal(value.asnumpy(), p.data(device).asnumpy())
    back = mx.gluon.SymbolBlock.imports(sym_file, inputs, params_file, device=device)
    out = back(*xs)
    assert out.device == device and out.shape == y.shape
    np.testing.assert_allclose(out.asnumpy(), y.asnumpy(), rtol=1e-6, atol=1e-7)
    # The loaded block is a block: its parameters train (BatchNorm statistics do not).
    for key, p in back.collect_params().items():
        assert p.grad_req == ("null" if "running" in key else "write")


def test_export_saves_a_shared_parameter_once(tmp_path):
    net, _, _, (sym_file, params_file) = _exported("tied", mx.cpu(0), tmp_path)
    nodes = json.load(open(sym_file))["nodes"]
    assert [n["name"] for n in nodes if n["op"] == "null"] == ["data", "a.weight", "b.bias"]
    fcs = [n for n in nodes if n["op"] == "FullyConnected"]
    assert [nodes[n["inputs"][1][0]]["name"] for n in fcs] == ["a.weight", "a.weight"]
    assert sorted(npx.load(params_file)) == ["arg:a.weight", "arg:b.bias"]


def test_an_imported_model_exports_again_to_the_same_graph(tmp_path):
    _, xs, y, (sym_file, params_file) = _exported("two-inputs", mx.cpu(0), tmp_path)
    back = mx.gluon.SymbolBlock.imports(sym_file, ["data0", "data1"], params_file)
    back.hybridize()
    back(*xs)
    again, again_params = back.export(str(tmp_path / "again"))
    ops = [[n["op"] for n in json.load(open(f))["nodes"]] for f in (sym_file, again)]
    assert ops[0] == ops[1]
    twice = mx.gluon.SymbolBlock.imports(again, ["data0", "data1"], again_params)
    np.testing.assert_allclose(twice(*xs).asnumpy(), y.asnumpy(), rtol=1e-6)


def test_export_graph_names_mxnet_operators(tmp_path):
    _, _, _, (sym_file, _) = _exported("convnet", mx.cpu(0), tmp_path)
    nodes = json.load(open(sym_file))["nodes"]
    ops = [n["op"] for n in nodes if n["op"] != "null"]
    assert ops[:4] == ["Convolution", "BatchNorm", "Activation", "Pooling"]
    assert ops[-4:] == ["FullyConnected", "Activation", "LayerNorm", "FullyConnected"]
    conv = next(n for n in nodes if n["op"] == "Convolution")
    assert conv["name"] == "0.convolution0"
    assert conv["attrs"] == {
        "kernel": "(3, 3)",
        "stride": "(1, 1)",
        "dilate": "(1, 1)",
        "pad": "(1, 1)",
        "num_filter": "4",
        "num_group": "1",
        "no_bias": "False",
        "layout": "NCHW",
    }
    assert [nodes[ref[0]]["name"] for ref in conv["inputs"]] == ["data", "0.weight", "0.bias"]
    swish = [n["op"] for n in nodes if n["name"].startswith("11.")]
    assert swish == ["_mul_scalar", "Activation", "broadcast_mul"]


class _Where(nn.HybridBlock):
    def __init__(self):
        super().__init__()
        self.fc = nn.Dense(2)

    def forward(self, x):
        return self.fc(mx.np.where(x > 0, x, 0.0))


class _Untraced(nn.HybridBlock):
    def forward(self, x):
        return x[:, :1]


class _InPlace(nn.HybridBlock):
    def __init__(self):
        super().__init__()
        self.fc = nn.Dense(2)

    def forward(self, x):
        y = self.fc(x)
        y += 1
        return y


@pytest.mark.parametrize(
    "make, match",
    [
        (
            _Where,
            r"input 0 of npx.fully_connected in the forward of Dense \(fc\) is an array "
            r"computed by an operation export cannot trace.*look in the forward of _Where "
            r"\(the top block\)",
        ),
        (
            lambda: _seq(nn.Dense(2), _Untraced()),
            r"_Untraced \(1\) computes its output with an operation export cannot trace",
        ),
        (
            lambda: _seq(nn.Dense(2), nn.GELU(approximation="tanh")),
            r"leaky_relu\(act_type='gelu_tanh'\) has no MXNet 1.x LeakyReLU act_type in the "
            r"forward of GELU \(1\)",
        ),
        (_InPlace, r"in-place update \(__iadd__\).* _InPlace \(the top block\)"),
    ],
)
def test_export_names_the_block_that_cannot_be_traced_and_writes_nothing(make, match, tmp_path):
    net = make()
    net.initialize()
    net.hybridize()
    net(mx.np.ones((2, 3)))
    with pytest.raises(TypeError, match=match):
        net.export(str(tmp_path / "m"))
    assert list(tmp_path.iterdir()) == []
    # The tracing is gone: the same operations run as before.
    assert net(mx.np.ones((2, 3))).shape[0] == 2
    y = mx.np.ones(2)
    y += 1
    assert y.asnumpy().tolist() == [2.0, 2.0]


def _seq(*layers):
    net = nn.HybridSequential()
    net.add(*layers)
    return net


def test_export_needs_a_hybridized_forward_and_checks_its_arguments(tmp_path):
    net = _seq(nn.Dense(2))
    net.initialize()
    net(mx.np.ones((1, 3)))
    with pytest.raises(RuntimeError, match="first call block.hybridize"):
        net.export(str(tmp_path / "m"))
    net.hybridize()
    net(mx.np.ones((1, 3)))
    with pytest.raises(ValueError, match="epoch must be an int >= 0"):
        net.export(str(tmp_path / "m"), epoch=-1)
    with pytest.raises(TypeError, match="path must be a str"):
        net.export(3)
    sym, params = net.export(str(tmp_path / "m"), remove_amp_cast=False)
    assert params.endswith("m-0000.params")


@pytest.mark.parametrize(
    "graph, exc, match",
    [
        ("{", ValueError, "not MXNet symbol JSON"),
        (
            {
                "nodes": [
                    {"op": "null", "name": "data", "inputs": []},
                    {"op": "Custom", "name": "c", "inputs": [[0, 0, 0]]},
                ],
                "heads": [[1, 0, 0]],
            },
            TypeError,
            "operator 'Custom' \\(node 'c'\\) is not supported",
        ),
        (
            {
                "nodes": [
                    {"op": "null", "name": "data", "inputs": []},
                    {
                        "op": "Pooling",
                        "name": "p",
                        "attrs": {"p_value": "2"},
                        "inputs": [[0, 0, 0]],
                    },
                ],
                "heads": [[1, 0, 0]],
            },
            TypeError,
            "attribute 'p_value' of operator 'Pooling'",
        ),
        (
            {
                "nodes": [
                    {"op": "null", "name": "data", "inputs": []},
                    {"op": "relu", "name": "r", "inputs": [[1, 0, 0]]},
                ],
                "heads": [[1, 0, 0]],
            },
            ValueError,
            "not an earlier node",
        ),
        (
            {"nodes": [{"op": "null", "name": "x", "inputs": []}], "heads": [[0, 0, 0]]},
            ValueError,
            r"inputs \['data'\] are not variables of the graph",
        ),
    ],
)
def test_symbol_block_refuses_graphs_it_cannot_run(graph, exc, match):
    with pytest.raises(exc, match=match):
        mx.gluon.SymbolBlock(graph if isinstance(graph, str) else json.dumps(graph), "data")


def test_symbol_block_from_a_graph_dict_shares_given_parameters():
    w = mx.gluon.Parameter("w", shape=(2, 3), init="ones")
    graph = {
        "nodes": [
            {"op": "null", "name": "data", "inputs": []},
            {"op": "null", "name": "w", "inputs": []},
            {
                "op": "FullyConnected",
                "name": "fc",
                "attrs": {"num_hidden": "2", "no_bias": "True"},
                "inputs": [[0, 0, 0], [1, 0, 0]],
            },
            {"op": "_mul_scalar", "name": "m", "attrs": {"scalar": "2.0"}, "inputs": [[2, 0, 0]]},
        ],
        "heads": [[3, 0, 0]],
    }
    block = mx.gluon.SymbolBlock(graph, ["data"], params={"w": w})
    block.initialize()
    assert block.collect_params()["w"] is w
    assert block(mx.np.ones((1, 3))).asnumpy().tolist() == [[6.0, 6.0]]
    with pytest.raises(TypeError, match=r"takes 1 inputs \(\['data'\]\), got 2"):
        block(mx.np.ones((1, 3)), mx.np.ones((1, 3)))


# --------------------------------------------------------------------- against MXNet 1.9.1
_MXNET_SIDE = r"""
import json, sys
import numpy as np
import mxnet as mx
from mxnet.gluon import nn
jobs = json.loads(sys.argv[1])
for prefix, n_inputs in jobs["load"]:
    names = ["data"] if n_inputs == 1 else ["data%d" % i for i in range(n_inputs)]
    net = mx.gluon.SymbolBlock.imports(prefix + "-symbol.json", names,
                                       prefix + "-0007.params")
    arrays = [np.load("%s-in%d.npy" % (prefix, i)) for i in range(n_inputs)]
    out = net(*[mx.nd.array(a, dtype=a.dtype) for a in arrays])
    np.save(prefix + "-mxnet.npy", out.asnumpy())
# A model MXNet 1.9.1 writes, for gluonlite to read.
prefix = jobs["write"]
net = nn.HybridSequential()
with net.name_scope():
    net.add(nn.Conv2D(4, 3, padding=1), nn.BatchNorm(), nn.Activation("relu"),
            nn.MaxPool2D(2), nn.Conv2DTranspose(2, 2, strides=2), nn.Flatten(),
            nn.Dense(5, activation="tanh"), nn.Dropout(0.3), nn.LeakyReLU(0.2), nn.Dense(2))
net.initialize(mx.init.Xavier())
x = mx.nd.array(np.load(prefix + "-in0.npy"))
with mx.autograd.record():
    net(x)
net.hybridize()
np.save(prefix + "-mxnet.npy", net(x).asnumpy())
net.export(prefix, epoch=7)
"""


def test_mxnet_1_9_1_loads_exports_and_gluonlite_loads_mxnet_exports(tmp_path):
    from gluonlite.bench import mxnet

    try:
        python = mxnet.locate()[0]
    except mxnet.Skip as e:
        pytest.skip(str(e))
    expected, jobs = {}, []
    for name, (_, inputs, loads_in_mxnet) in MODELS.items():
        if not loads_in_mxnet:
            continue  # GroupNorm: MXNet 1.x has per-group gamma/beta (see the docs)
        _, _, y, _ = _exported(name, mx.cpu(0), tmp_path)
        for i, a in enumerate(inputs):
            np.save(tmp_path / f"{name}-in{i}.npy", a)
        expected[name] = y.asnumpy()
        jobs.append([str(tmp_path / name), len(inputs)])
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 6, 6)).astype("float32")
    np.save(tmp_path / "from_mxnet-in0.npy", x)
    proc = subprocess.run(
        [
            python,
            "-c",
            _MXNET_SIDE,
            json.dumps({"load": jobs, "write": str(tmp_path / "from_mxnet")}),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name, y in expected.items():
        np.testing.assert_allclose(
            np.load(tmp_path / f"{name}-mxnet.npy"), y, rtol=1e-5, atol=1e-5, err_msg=name
        )
    back = mx.gluon.SymbolBlock.imports(
        str(tmp_path / "from_mxnet-symbol.json"), ["data"], str(tmp_path / "from_mxnet-0007.params")
    )
    np.testing.assert_allclose(
        back(mx.np.array(x)).asnumpy(),
        np.load(tmp_path / "from_mxnet-mxnet.npy"),
        rtol=1e-5,
        atol=1e-6,
    )
