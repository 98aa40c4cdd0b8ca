"""The functions built from ``_table.py``'s rows (``mx.np`` re-exports them)."""

from ._table import build as _build

globals().update(_build())
