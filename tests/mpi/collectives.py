"""Run under mpiexec by tests/test_kvstore.py: one scenario per command-line argument."""

import sys
import time

import numpy

import gluonlite as mx


def main(scenario: str) -> None:
    kv = mx.kv.create("dist_sync")
    kv.timeout = 3.0
    rank, size = kv.rank, kv.num_workers
    if scenario == "sum":
        a = numpy.full((5,), rank + 1.0, dtype=numpy.float32)
        b = numpy.arange(6, dtype=numpy.float64).reshape(2, 3) * (rank + 1)
        kv.allreduce_([a, b], names=["a", "b"])
        c = numpy.full((3,), float(rank), dtype=numpy.float32)
        kv.broadcast_([c], root=1)
        kv.barrier()
        # One write per line: print() may split text and newline, and ranks interleave.
        sys.stdout.write(f"rank {rank}/{size} a={a.tolist()} b={b.sum()} c={c.tolist()}\n")
        sys.stdout.flush()
    elif scenario == "trainer":
        # Ranks start from different values; the Trainer must adopt rank 0's, then keep
        # every rank identical through dense and row-sparse (lazy) updates.
        mx.random.seed(100 + rank)
        net = mx.gluon.nn.Sequential()
        net.add(mx.gluon.nn.Embedding(10, 3, sparse_grad=True), mx.gluon.nn.Dense(2))
        net.initialize(mx.init.Uniform(1.0), device=[mx.cpu(0), mx.cpu(1)])
        net(mx.np.array([[0]], dtype="int64"))  # completes the deferred Dense shapes
        trainer = mx.gluon.Trainer(
            net.collect_params(), "sgd", {"learning_rate": 0.1}, kvstore="dist_sync"
        )
        before = {k: p.data(mx.cpu(0)).asnumpy().copy() for k, p in net.collect_params().items()}
        ids = numpy.array([[1 + rank], [5]], dtype=numpy.int64)
        parts = mx.gluon.utils.split_and_load(ids, [mx.cpu(0), mx.cpu(1)])
        with mx.autograd.record():
            losses = [net(x).sum() for x in parts]
        for loss in losses:
            loss.backward()
        trainer.step(4)
        after = {k: p.data(mx.cpu(1)).asnumpy() for k, p in net.collect_params().items()}
        emb = [k for k in after if k.startswith("0.")][0]
        changed = sorted(numpy.flatnonzero((after[emb] != before[emb]).any(axis=1)).tolist())
        digest = float(sum(numpy.float64(v).sum() * (i + 1) for i, v in enumerate(after.values())))
        sys.stdout.write(
            f"rank {rank} start={float(before[emb].sum()):.6f} "
            f"changed={changed} digest={digest:.9f}\n"
        )
        sys.stdout.flush()
    elif scenario == "silent-peer":
        # Rank 1 never joins the collective: rank 0 must time out with a clear error.
        if rank == 1:
            time.sleep(6)
            return
        kv.allreduce_([numpy.ones(2)], names=["fc_weight"])
    elif scenario == "raising-peer":
        try:
            if rank == 1:
                raise RuntimeError("simulated failure in rank 1")
            kv.allreduce_([numpy.ones(2)], names=["fc_weight"])
        except Exception as e:  # noqa: BLE001 - report and end every rank
            kv.abort(f"training failed: {e!r}")


if __name__ == "__main__":
    main(sys.argv[1])
