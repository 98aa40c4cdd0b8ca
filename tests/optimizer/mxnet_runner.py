"""Run by MXNet 1.9.1's interpreter (.venv-mxnet), not by pytest: reads a JSON request on
stdin (optimizer rows, float32 weights, gradients per step), applies each optimizer with
``rescale_grad=0.5`` through MXNet's ``update_multi_precision``, writes the final weights (or
the error) per row as JSON on stdout."""

import json
import sys

import numpy as np


def main():
    import mxnet as mx  # in .venv-mxnet only: imported when run, not when collected

    req = json.load(sys.stdin)
    out = {}
    for key, (name, kw) in req["rows"].items():
        try:
            opt = mx.optimizer.create(name, rescale_grad=0.5, **kw)
            ws = [mx.nd.array(np.array(w, dtype=np.float32)) for w in req["weights"]]
            states = [opt.create_state_multi_precision(i, w) for i, w in enumerate(ws)]
            for step in req["grads"]:
                for i, (w, g) in enumerate(zip(ws, step)):
                    grad = mx.nd.array(np.array(g, dtype=np.float32))
                    opt.update_multi_precision(i, w, grad, states[i])
            out[key] = [w.asnumpy().tolist() for w in ws]
        except Exception as e:
            out[key] = f"{type(e).__name__}: {e}"
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
