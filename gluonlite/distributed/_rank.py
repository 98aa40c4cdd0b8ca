"""One rank under ``gluonlite.distributed.run``: run the script, report how it ended.

The rank connects to the launcher (``GLUONLITE_RUN_MONITOR``), says which rank it is, runs
the script as ``__main__`` and reports ``finished`` when the script returns (or calls
``sys.exit(0)``), ``failed <reason>`` when it raises. A process that vanishes without
either (``os._exit``, a signal) closes the connection silently, which the launcher reports.
"""

from __future__ import annotations

import os
import runpy
import socket
import sys
import traceback

_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK")


def _connect() -> socket.socket | None:
    address = os.environ.get("GLUONLITE_RUN_MONITOR")
    if not address:
        return None
    host, port = address.rsplit(":", 1)
    try:
        conn = socket.create_connection((host, int(port)), timeout=10)
    except OSError as e:
        print(
            f"gluonlite.distributed.run: cannot reach the launcher at {address} ({e}); "
            f"running unwatched",
            file=sys.stderr,
            flush=True,
        )
        return None
    rank = next((os.environ[v] for v in _RANK_VARS if v in os.environ), "?")
    conn.sendall(f"rank {rank}\n".encode())
    return conn


def _report(conn: socket.socket | None, line: str) -> None:
    if conn is not None:
        try:
            conn.sendall((line.replace("\n", " ") + "\n").encode())
        except OSError:
            pass


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m gluonlite.distributed._rank script.py [args]")
    conn = _connect()
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        if e.code not in (None, 0):
            _report(conn, f"failed sys.exit({e.code!r})")
        else:
            _report(conn, "finished")
        raise
    except BaseException as e:
        _report(conn, f"failed {type(e).__name__}: {e}")
        traceback.print_exc()
        sys.stderr.flush()
        raise SystemExit(1) from None
    _report(conn, "finished")


if __name__ == "__main__":
    main()
