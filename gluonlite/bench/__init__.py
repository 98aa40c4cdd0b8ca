"""``gluonlite-bench``: gluonlite's workloads timed side by side with NumPy, CuPy, torch and
Apache MXNet 1.9.1 (see ``docs/benchmarks.md``).

One module per concept: :mod:`~gluonlite.bench.timing` (how a number is taken),
:mod:`~gluonlite.bench.targets` (``--device``), :mod:`~gluonlite.bench.workload` (the suite
contract), :mod:`~gluonlite.bench.report` (tables, JSON, plot), and one module per suite:
``fc``, ``retain``, ``replicate``, ``param``, ``step``, ``mxnet``. Nothing here is imported
by ``import gluonlite``.
"""

from .cli import SUITES, main

__all__ = ["SUITES", "main"]
