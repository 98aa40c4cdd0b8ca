"""Write the small Apache MXNet 1.9.1 files that tests/test_mxnet_format.py reads.

Run once, in an environment of its own (MXNet 1.9.1 needs NumPy < 1.24), never by the suite:

    python3 -m venv /tmp/mxnet-venv
    /tmp/mxnet-venv/bin/pip install mxnet==1.9.1 numpy==1.23.5
    /tmp/mxnet-venv/bin/python tests/data/make_mxnet_params.py

Every file is written by MXNet itself (``mx.nd.save``, ``net.save_parameters``,
``Module.save_params``, ``mx.npx.save``), so the tests exercise MXNet's real on-disk layout
rather than our reading of its source. Next to them, ``mxnet_expected.npz`` holds the dense
values MXNet reports when it loads each file back, and ``mxnet_expected.json`` the names,
dtypes, storage types and shapes, keyed ``<file>/<name>``.
"""

import json
import os

import mxnet as mx
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PREFIX = "mxnet_"
BFLOAT16 = np.dtype([("bfloat16", np.uint16)])
rng = np.random.RandomState(7)
mx.random.seed(7)  # the initializers below draw from MXNet's generator
expected_values = {}
expected_meta = {}


def record(filename, name, arr):
    """Remember what MXNet itself loads back for ``name`` in ``filename``."""
    key = f"{filename}/{name}"
    dense = arr.tostype("default").asnumpy() if arr.stype != "default" else arr.asnumpy()
    dtype = "bfloat16" if arr.dtype == BFLOAT16 else np.dtype(arr.dtype).name
    if dtype == "bfloat16":
        # NumPy cannot hold bfloat16; the values (exact in float32) are kept as float32.
        dense = arr.astype("float32").asnumpy()
    expected_values[key] = dense
    meta = {"dtype": dtype, "stype": arr.stype, "shape": list(arr.shape)}
    if arr.stype == "row_sparse":
        meta["indices"] = arr.indices.asnumpy().tolist()
    expected_meta[key] = meta


def check_roundtrip(filename):
    """Load the file back with MXNet and record what it holds."""
    path = os.path.join(HERE, filename)
    loaded = mx.nd.load(path)
    if isinstance(loaded, list):
        loaded = {str(i): v for i, v in enumerate(loaded)}
    for name, arr in loaded.items():
        record(filename, name, arr)


def dense_dict():
    """A plain ``mx.nd.save`` of a dict: the dtypes MXNet stores, an empty array, a 3-d one."""
    arrays = {
        "fc_weight": mx.nd.array(rng.randn(3, 4), dtype="float32"),
        "fc_bias": mx.nd.array(rng.randn(3), dtype="float32"),
        "half": mx.nd.array(rng.randn(2, 3), dtype="float16"),
        "double": mx.nd.array(rng.randn(2, 2), dtype="float64"),
        "int32": mx.nd.array(rng.randint(-50, 50, size=(5,)), dtype="int32"),
        "int64": mx.nd.array([2**40, -3, 7], dtype="int64"),
        "int8": mx.nd.array([-128, 0, 127], dtype="int8"),
        "uint8": mx.nd.array([0, 1, 255], dtype="uint8"),
        # Legacy shape semantics read a 0 in zeros() as "unknown"; from NumPy it is kept.
        "empty": mx.nd.array(np.zeros((0, 4)), dtype="float32"),
        "cube": mx.nd.array(rng.randn(2, 3, 2), dtype="float32"),
    }
    mx.nd.save(os.path.join(HERE, PREFIX + "dense.nd"), arrays)
    check_roundtrip(PREFIX + "dense.nd")


def bfloat16():
    """bfloat16 in a file of its own: reading it needs ml_dtypes, the others do not."""
    # MXNet 1.9 spells bfloat16 as this structured NumPy dtype (type flag 12 on disk).
    arrays = {"bf16": mx.nd.array([1.0, -2.5, 0.15625, 3e38]).astype(BFLOAT16)}
    mx.nd.save(os.path.join(HERE, PREFIX + "bfloat16.nd"), arrays)
    check_roundtrip(PREFIX + "bfloat16.nd")


def unnamed_list():
    """``mx.nd.save`` of a list: the file carries no names at all."""
    mx.nd.save(
        os.path.join(HERE, PREFIX + "list.nd"), [mx.nd.array([1, 2, 3]), mx.nd.array([[4.5]])]
    )
    check_roundtrip(PREFIX + "list.nd")


def sparse():
    """A row-sparse and a CSR array (MXNet writes their storage shape and aux arrays)."""
    rsp = mx.nd.sparse.row_sparse_array(
        (rng.randn(2, 3).astype("float32"), np.array([1, 4], dtype="int64")), shape=(6, 3)
    )
    empty_rsp = mx.nd.sparse.zeros("row_sparse", (4, 2))
    csr = mx.nd.sparse.csr_matrix(
        (np.array([1.0, 2.0, 3.0], dtype="float32"), np.array([0, 2, 1]), np.array([0, 2, 2, 3])),
        shape=(3, 3),
    )
    mx.nd.save(
        os.path.join(HERE, PREFIX + "sparse.nd"),
        {"embed_weight": rsp, "empty_rows": empty_rsp, "csr": csr},
    )
    check_roundtrip(PREFIX + "sparse.nd")


def gluon_net():
    """``net.save_parameters`` of a small Gluon model (structural names such as ``0.weight``)."""
    net = mx.gluon.nn.HybridSequential()
    net.add(
        mx.gluon.nn.Embedding(10, 4),
        mx.gluon.nn.Dense(5, in_units=4),
        mx.gluon.nn.BatchNorm(in_channels=5),
        mx.gluon.nn.Dense(2, in_units=5),
    )
    net.initialize(mx.init.Xavier())
    net(mx.nd.array([1, 2, 3]))
    net.save_parameters(os.path.join(HERE, PREFIX + "gluon_net.params"))
    check_roundtrip(PREFIX + "gluon_net.params")


def module_params():
    """``Module.save_params``: the Module-era ``arg:`` / ``aux:`` prefixed names."""
    data = mx.sym.var("data")
    net = mx.sym.FullyConnected(data, num_hidden=3, name="fc1")
    net = mx.sym.BatchNorm(net, name="bn1")
    mod = mx.mod.Module(net, data_names=["data"], label_names=None)
    mod.bind(data_shapes=[("data", (2, 4))], for_training=False)
    mod.init_params(mx.init.Uniform(0.5))
    mod.save_params(os.path.join(HERE, PREFIX + "module.params"))
    check_roundtrip(PREFIX + "module.params")


def numpy_semantics():
    """``mx.npx.save`` under NumPy semantics writes the V3 header: 0-d arrays exist there."""
    mx.npx.set_np()
    try:
        arrays = {
            "scalar": mx.np.array(3.25, dtype="float32"),
            "vector": mx.np.array([1, 2, 3], dtype="int32"),
            "zero_size": mx.np.zeros((2, 0), dtype="float64"),
        }
        path = os.path.join(HERE, PREFIX + "np_semantics.nd")
        mx.npx.save(path, arrays)
        for name, arr in mx.npx.load(path).items():
            key = f"{PREFIX}np_semantics.nd/{name}"
            expected_values[key] = arr.asnumpy()
            expected_meta[key] = {
                "dtype": np.dtype(arr.dtype).name,
                "stype": "default",
                "shape": list(arr.shape),
            }
    finally:
        mx.npx.reset_np()


def main():
    dense_dict()
    bfloat16()
    unnamed_list()
    sparse()
    gluon_net()
    module_params()
    numpy_semantics()
    np.savez_compressed(os.path.join(HERE, PREFIX + "expected.npz"), **expected_values)
    with open(os.path.join(HERE, PREFIX + "expected.json"), "w") as f:
        json.dump(
            {"mxnet_version": mx.__version__, "arrays": expected_meta}, f, indent=1, sort_keys=True
        )
        f.write("\n")


if __name__ == "__main__":
    main()
