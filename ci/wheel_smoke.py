"""Smoke test of an INSTALLED gluonlite (a wheel in a fresh virtual environment).

Run by tests/test_wheel.py with the fresh environment's Python, from a folder outside the
source tree, so that every import resolves to the installed files: a module or kernel source
missing from the wheel fails here although every editable test passes.

Usage: python wheel_smoke.py KERNEL_FILE [KERNEL_FILE ...]   (the .cu/.cuh names the source
tree has, which must all be in the wheel)
"""

from __future__ import annotations

import importlib
import importlib.resources
import os
import pkgutil
import subprocess
import sys
import tempfile

import gluonlite as mx

site = os.path.dirname(os.path.dirname(mx.__file__))
assert "site-packages" in site, f"gluonlite imported from {mx.__file__}, not from the install"

# Every module of the package imports.
# (__main__ modules run a program when imported; they are run below instead.)
modules = [
    m.name
    for m in pkgutil.walk_packages(mx.__path__, "gluonlite.")
    if not m.name.endswith(".__main__")
]
for name in modules:
    importlib.import_module(name)

# Every kernel source of the tree ships and is found through importlib.resources.
kernels = importlib.resources.files("gluonlite.kernels")
missing = [name for name in sys.argv[1:] if not kernels.joinpath(name).is_file()]
assert not missing, f"kernel sources missing from the wheel: {missing}"
from gluonlite import _kernels  # noqa: E402

for name in _kernels.KERNEL_SOURCES:
    assert _kernels.kernel_source(name), name
assert importlib.resources.files("gluonlite").joinpath("py.typed").is_file(), "py.typed"

# Two training steps on two devices, then a checkpoint round trip.
devices = [mx.cpu(0), mx.cpu(1)]
net = mx.gluon.nn.Dense(3, in_units=4)
net.initialize(mx.init.Xavier(), device=devices)
trainer = mx.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
loss_fn = mx.gluon.loss.L2Loss()
for _ in range(2):
    with mx.autograd.record():
        losses = [
            loss_fn(net(mx.np.ones((2, 4), device=d)), mx.np.zeros((2, 3), device=d))
            for d in devices
        ]
    for loss in losses:
        loss.backward()
    trainer.step(4)
w0, w1 = (net.weight.data(d).asnumpy() for d in devices)
assert (w0 == w1).all(), "replicas differ after two steps"
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "net.params")
    net.save_parameters(path)
    other = mx.gluon.nn.Dense(3, in_units=4)
    other.load_parameters(path, device=devices)
    assert (other.weight.data(mx.cpu(1)).asnumpy() == w0).all(), "checkpoint round trip"

# The benchmark CLI is installed as a console script.
bench = os.path.join(os.path.dirname(sys.executable), "gluonlite-bench")
done = subprocess.run([bench, "--help"], capture_output=True, text=True, timeout=120)
assert done.returncode == 0 and "usage" in done.stdout.lower(), done.stdout + done.stderr
done = subprocess.run(
    [sys.executable, "-m", "gluonlite"], capture_output=True, text=True, timeout=300
)
assert done.returncode == 0 and done.stdout.startswith("gluonlite "), done.stdout + done.stderr
from gluonlite import ndarray as _nd  # noqa: E402

cext = "C extension in" if _nd._C is not None else "pure-Python ndarray"
print(
    f"wheel smoke: {cext}, {len(modules)} modules, {len(sys.argv) - 1} kernel sources, "
    f"2 steps on {devices}, checkpoint, gluonlite-bench --help, python -m gluonlite: ok"
)
