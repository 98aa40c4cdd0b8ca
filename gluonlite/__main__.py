"""``python -m gluonlite``: print what this installation can do (paste it into bug reports)."""

from .runtime import report

print(report())
