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
