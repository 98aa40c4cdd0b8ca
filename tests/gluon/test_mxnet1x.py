"""The MXNet 1.x spellings: prefix/params, name, name_scope, params.get, ParameterDict."""

from __future__ import annotations

import warnings

import pytest

import gluonlite as mx
from gluonlite.gluon import nn


class Model(mx.gluon.Block):
    """A 1.x-style block: name_scope, params.get, a custom Parameter."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.dense = nn.Dense(3, in_units=2)
            self.scale = self.params.get("scale", shape=(3,), init=mx.init.One())

    def forward(self, x):
        return self.dense(x) * self.scale.data(x.device)


@pytest.fixture
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def test_spellings_warn_and_work():
    with pytest.warns(DeprecationWarning) as record:
        net = Model(prefix="model_")
        assert net.prefix == "model_" and net.name == "model"
        assert net.dense.name == "model_dense0"
    said = " ".join(str(w.message) for w in record)
    for spelling in (
        "Block(prefix=...)",
        "name_scope()",
        "params.get",
        "Block.prefix",
        "Block.name",
    ):
        assert spelling in said
    assert net.scale.name == "model_scale"
    assert list(net.collect_params()) == ["scale", "dense.weight", "dense.bias"]
    net.initialize()
    assert net(mx.np.ones((1, 2))).shape == (1, 3)
    # 1.x full names still index collect_params() where they are unambiguous.
    assert net.collect_params()["model_scale"] is net.scale


def test_automatic_prefixes_count_per_scope(quiet):
    outer = nn.Sequential()
    with outer.name_scope():
        first, second = nn.Dense(1), nn.Dense(1)
    assert first.prefix.startswith(outer.prefix) and first.prefix.endswith("dense0_")
    assert second.prefix.endswith("dense1_")


def test_full_parameter_names_the_1x_way(quiet):
    net = nn.HybridSequential(prefix="model_")
    with net.name_scope():
        net.add(nn.Dense(3, in_units=2), nn.Dense(1, in_units=3))
    assert [p.name for p in net.collect_params().values()] == [
        "model_dense0_weight",
        "model_dense0_bias",
        "model_dense1_weight",
        "model_dense1_bias",
    ]
    assert list(net.collect_params()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert net.collect_params()["model_dense1_weight"] is net[1].weight
    assert nn.Dense(2).weight.name == "weight"  # MXNet 2 style: plain names


def test_params_get_returns_existing_and_checks(quiet):
    net = Model()
    assert net.params.get("scale") is net.scale
    assert net.params.get("scale", shape=(3,)) is net.scale
    with pytest.raises(ValueError, match="shape"):
        net.params.get("scale", shape=(4,))
    with pytest.raises(ValueError, match="dtype"):
        net.params.get("scale", dtype="float16")
    assert net.params.get("missing") is None  # MXNet 2: a plain dict lookup
    with pytest.raises(TypeError):
        net.params.get("w2", shape=(2,), nonsense=1)
    assert "w2" not in net.params


def test_params_shared_between_blocks(quiet):
    a = Model()
    b = Model(params=a.params)
    assert b.scale is a.scale


def test_get_constant(quiet):
    pd = mx.gluon.ParameterDict("c_")
    const = pd.get_constant("table", [[1, 2], [3, 4]])
    assert const.name == "c_table" and pd.get_constant("table") is const
    with pytest.raises(ValueError, match="give its value"):
        pd.get_constant("other")
    pd.get("plain", shape=(1,))
    with pytest.raises(TypeError, match="not a Constant"):
        pd.get_constant("plain")


def test_parameter_dict_methods(tmp_path, devices):
    with pytest.warns(DeprecationWarning, match="ParameterDict"):
        pd = mx.gluon.ParameterDict("net_")
    w = pd.get("weight", shape=(2, 3), init="ones")
    b = pd.get("bias", shape=(2,))
    assert list(pd) == ["net_weight", "net_bias"] and pd.prefix == "net_"
    pd.initialize(mx.init.Zero(), device=devices)
    assert (w.data(devices[1]).asnumpy() == 1).all() and not b.data(devices[0]).asnumpy().any()
    pd.setattr("grad_req", "add")
    assert w.grad_req == "add"
    pd.zero_grad()
    with pytest.warns(DeprecationWarning, match="reset_ctx"):
        pd.reset_ctx(devices[0])
    assert pd.list_device() == [devices[0]]
    path = str(tmp_path / "pd.params")
    pd.save(path, strip_prefix="net_")
    with pytest.raises(ValueError, match="strip"):
        pd.save(path, strip_prefix="other_")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        again = mx.gluon.ParameterDict("net_")
    again.get("weight", shape=(2, 3))
    again.get("bias", shape=(2,))
    again.load(path, device=devices[0], restore_prefix="net_")
    assert (again["net_weight"].data().asnumpy() == 1).all()
    with pytest.raises(ValueError, match="different Parameter"):
        again.update(pd)
    merged = mx.gluon.Block().collect_params()
    merged.update(pd)
    assert merged["net_weight"] is w


def test_collect_params_setattr_and_initialize_on_the_dict():
    net = nn.Dense(2, in_units=2)
    net.collect_params().setattr("lr_mult", 0.5)
    assert net.weight.lr_mult == 0.5 and net.bias.lr_mult == 0.5
    net.collect_params().initialize(mx.init.One())
    assert (net.weight.data().asnumpy() == 1).all()
    assert net.collect_params().get("nope") is None


def test_mxnet1x_example_runs():
    """examples/mxnet1x_style.py --quick trains, reloads and meets its accuracy target."""
    import os
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(
        [sys.executable, str(root / "examples" / "mxnet1x_style.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reloaded model agrees: True" in result.stdout
    assert "body.0.weight" in result.stdout
