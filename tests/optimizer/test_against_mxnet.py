"""Opt-in: gluonlite's optimizers against Apache MXNet 1.9.1 itself, where the environment
of ``make bench-mxnet`` (``.venv-mxnet``) is present; skipped elsewhere.

Only rows where MXNet 1.9.1 computes what MXNet 2's Python optimizers describe: 1.9.1's
AdaGrad, AdaDelta and NAG use other formulas (NAG leaves weight decay out of the Nesterov
correction), its FTML kernel adds weight decay before clipping (no clipping here), its
DCASGD fails with momentum, and it has no AdamW, AdaBelief or LANS; SGLD draws noise.
"""

import json
import pathlib
import subprocess

import numpy as np
import pytest

import gluonlite as mx
from gluonlite import optimizer

ROOT = pathlib.Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv-mxnet" / "bin" / "python"
pytestmark = pytest.mark.skipif(
    not (ROOT / ".venv-mxnet" / ".installed").is_file(),
    reason="no MXNet 1.9.1 environment (make bench-mxnet)",
)

ROWS = {
    "sgd": ("sgd", dict(learning_rate=0.1, momentum=0.9, wd=0.01, clip_gradient=0.5)),
    "signum": ("signum", dict(learning_rate=0.01, momentum=0.9, wd=0.01, wd_lh=0.1)),
    "adam": ("adam", dict(learning_rate=0.01, wd=0.01, clip_gradient=0.5)),
    "adamax": ("adamax", dict(learning_rate=0.01, wd=0.01)),
    "nadam": ("nadam", dict(learning_rate=0.01, wd=0.01)),
    "ftrl": ("ftrl", dict(learning_rate=0.1, lamda1=0.05, wd=0.01)),
    "ftml": ("ftml", dict(learning_rate=0.01, wd=0.01)),
    "dcasgd": ("dcasgd", dict(learning_rate=0.1, lamda=0.1)),
    "lamb": ("lamb", dict(learning_rate=0.01, wd=0.01)),
    "lars": ("lars", dict(learning_rate=0.1, momentum=0.9, wd=0.01)),
    "rmsprop": ("rmsprop", dict(learning_rate=0.01, wd=0.01)),
    "rmsprop_centered": ("rmsprop", dict(learning_rate=0.01, centered=True)),
}


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (5,)]
    weights = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[(2 * rng.standard_normal(s)).astype(np.float32) for s in shapes] for _ in range(3)]
    request = dict(
        rows=ROWS,
        weights=[w.tolist() for w in weights],
        grads=[[g.tolist() for g in step] for step in grads],
    )
    proc = subprocess.run(
        [str(PYTHON), str(pathlib.Path(__file__).with_name("mxnet_runner.py"))],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return weights, grads, json.loads(proc.stdout)


@pytest.mark.parametrize("key", ROWS)
def test_matches_mxnet_1_9_1(case, key):
    weights, grads, results = case
    assert not isinstance(results[key], str), results[key]
    name, options = ROWS[key]
    opt = optimizer.create(name, rescale_grad=0.5, **options)
    ws = [mx.np.array(w) for w in weights]
    states = [opt.create_state(k, w) for k, w in enumerate(ws)]
    for step in grads:
        for k, (w, g) in enumerate(zip(ws, step)):
            opt.update([k], [w], [mx.np.array(g)], [states[k]])  # one at a time, as MXNet
    for w, expected in zip(ws, results[key]):
        np.testing.assert_allclose(
            w.asnumpy(), np.array(expected, np.float32), rtol=1e-5, atol=1e-6
        )
