"""Build gluonlite's optional C extension in place (gluonlite/_cndarray*.so) for a checkout.

``pip install`` builds it through setup.py; an editable checkout whose .so is missing or
older than gluonlite/_cndarray.c gets it from here (``make test`` runs this). A bare
setuptools Distribution, so any setuptools version builds it, whatever pyproject.toml asks
of the packaging front end. Where no compiler works it says so and leaves gluonlite on its
pure-Python class (the same behaviour): the exit status is 0 either way.
"""

from __future__ import annotations

import os
import sys

from setuptools import Distribution, Extension

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    os.chdir(ROOT)
    ext = Extension(
        "gluonlite._cndarray", ["gluonlite/_cndarray.c"], optional=True, extra_compile_args=["-O2"]
    )
    dist = Distribution({"name": "gluonlite", "ext_modules": [ext]})
    cmd = dist.get_command_obj("build_ext")
    cmd.inplace = True
    cmd.build_temp = os.path.join("build", "cext")
    dist.run_command("build_ext")
    built = os.path.exists(cmd.get_ext_fullpath(ext.name))
    print("gluonlite._cndarray:", "built" if built else "not built (pure-Python ndarray)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
