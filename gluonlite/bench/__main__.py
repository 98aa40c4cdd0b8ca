"""``python -m gluonlite.bench``: the same as the ``gluonlite-bench`` console script."""

import sys

from .cli import main

sys.exit(main())
