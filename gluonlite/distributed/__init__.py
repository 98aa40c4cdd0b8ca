"""Running a script on several ranks: ``python -m gluonlite.distributed.run -n 2 script.py``.

See ``gluonlite.distributed.run``.
"""
