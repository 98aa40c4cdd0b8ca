"""``python -m gluonlite.distributed.run -n N script.py [args]``: mpiexec that fails loudly.

Under a bare ``mpiexec``, a rank that ends early without an error (``os._exit(0)``, a
``kill``, the OOM killer) can end the whole job with exit status 0 and no output while the
other ranks are stopped midway: a half-finished run looks successful. This launcher runs
the script under ``mpiexec`` with each rank watched through a local socket: a rank that
ends before returning from the script, or with an exception, is named on stderr, the other
ranks are stopped, and the launcher exits with a nonzero status (1, or the rank's own
nonzero exit status). When every rank returns from the script, the status is mpiexec's.

Ranks must run on this host (the watch connects to ``127.0.0.1``). A rank is identified by
the variables MPI launchers set (``PMI_RANK``, ``OMPI_COMM_WORLD_RANK``, ``PMIX_RANK``).

Example::

    python -m gluonlite.distributed.run -n 2 examples/train_digits.py --kvstore dist_sync
"""

from __future__ import annotations

import argparse
import os
import pathlib
import selectors
import shutil
import socket
import subprocess
import sys

__all__ = ["main", "launch"]

# Set for each rank: where the rank reports to (host:port).
MONITOR_ENV = "GLUONLITE_RUN_MONITOR"
_GRACE_S = 5.0


def _find_mpiexec(given: str | None) -> str:
    if given:
        return given
    local = pathlib.Path(sys.executable).parent / "mpiexec"
    found = str(local) if local.exists() else shutil.which("mpiexec")
    if found is None:
        raise SystemExit(
            "gluonlite.distributed.run: no mpiexec found; install one "
            "(pip install mpi4py mpich) or pass --mpiexec PATH"
        )
    return found


class _Rank:
    """What the launcher knows of one rank's connection."""

    def __init__(self, conn: socket.socket):
        self.conn, self.buf, self.rank, self.state, self.detail = conn, b"", "?", "running", ""

    def feed(self, data: bytes) -> None:
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            kind, _, rest = line.decode("utf-8", "replace").partition(" ")
            if kind == "rank":
                self.rank = rest
            elif kind in ("finished", "failed"):
                self.state, self.detail = kind, rest


def launch(nproc: int, command: list[str], mpiexec: str | None = None) -> int:
    """Run ``command`` (a script and its arguments) on ``nproc`` ranks; the exit status."""
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    env = dict(os.environ, **{MONITOR_ENV: "127.0.0.1:%d" % server.getsockname()[1]})
    argv = [
        _find_mpiexec(mpiexec),
        "-n",
        str(nproc),
        sys.executable,
        "-m",
        "gluonlite.distributed._rank",
        *command,
    ]
    job = subprocess.Popen(argv, env=env)
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    ranks, failure = [], None
    try:
        while True:
            ended = []
            for key, _ in selector.select(timeout=0.1):
                if key.fileobj is server:
                    conn, _ = server.accept()
                    conn.setblocking(False)
                    ranks.append(_Rank(conn))
                    selector.register(conn, selectors.EVENT_READ, ranks[-1])
                    continue
                rank = key.data
                try:
                    data = rank.conn.recv(4096)
                except OSError:
                    data = b""
                if data:
                    rank.feed(data)
                    continue
                selector.unregister(rank.conn)
                rank.conn.close()
                ended.append(rank)
            early = [r for r in ended if r.state != "finished"]
            if failure is None and early:
                # Several in one batch: which ended first is unknown (mpiexec may have
                # stopped the others already), so all are named.
                failure = early[0]
                _stop(job, nproc, early, command[0])
            if job.poll() is not None:
                break
        # Reports that arrived just before mpiexec ended.
        for key, _ in selector.select(timeout=0.2):
            if key.fileobj is not server:
                try:
                    key.data.feed(key.data.conn.recv(4096))
                except OSError:
                    pass
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
        selector.close()
        server.close()
    status = job.returncode
    missing = nproc - sum(r.state == "finished" for r in ranks)
    if failure is None and missing:
        # A rank that never reported (it ended before connecting, or was never started).
        failure = next((r for r in ranks if r.state != "finished"), None)
        print(
            f"gluonlite.distributed.run: {missing} of {nproc} ranks did not finish "
            f"{command[0]}"
            + (f" (rank {failure.rank} among them)" if failure else "")
            + f"; mpiexec exited with status {status}. The job FAILED.",
            file=sys.stderr,
            flush=True,
        )
    if failure is not None or missing:
        return status if status not in (0, None) else 1
    return status


def _stop(job: subprocess.Popen[bytes], nproc: int, ranks: list[_Rank], script: str) -> None:
    """Say which ranks ended early and how, then end the job (mpiexec and its ranks)."""
    for rank in ranks:
        if rank.state == "failed":
            how = f"failed: {rank.detail}"
        else:
            how = (
                "ended before finishing the script (its process exited without "
                "returning from it: os._exit(), a signal, or a crash)"
            )
        print(
            f"gluonlite.distributed.run: rank {rank.rank} of {nproc} {how}.",
            file=sys.stderr,
            flush=True,
        )
    print(
        f"gluonlite.distributed.run: stopping the other ranks; the job FAILED ({script}).",
        file=sys.stderr,
        flush=True,
    )
    job.terminate()
    try:
        job.wait(timeout=_GRACE_S)
    except subprocess.TimeoutExpired:
        job.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gluonlite.distributed.run",
        description="Run a script on N ranks under mpiexec; any rank that ends early or "
        "fails makes the job fail, naming the rank.",
    )
    parser.add_argument("-n", "--nproc", type=int, required=True, help="number of ranks")
    parser.add_argument(
        "--mpiexec", help="the mpiexec to use (default: next to Python, else on PATH)"
    )
    parser.add_argument("script", help="the Python script each rank runs")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the script's arguments")
    ns = parser.parse_args(argv)
    if ns.nproc < 1:
        parser.error(f"-n must be at least 1, got {ns.nproc}")
    return launch(ns.nproc, [ns.script, *ns.args], ns.mpiexec)


if __name__ == "__main__":
    sys.exit(main())
