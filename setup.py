"""Package discovery and the optional C extension; everything else is in pyproject.toml.

setuptools cannot both discover packages and map kernels/ (which sits at the top of the
repository) to gluonlite.kernels from pyproject.toml alone, so the list is built here: a new
gluonlite subpackage ships without being listed by hand.

``gluonlite._cndarray`` (gluonlite/_cndarray.c, CPython's C API only) is the C base of
``ndarray`` that runs its hottest paths; it is optional: where no compiler is found the
build goes on without it and gluonlite runs its pure-Python class (the same behaviour).
In a checkout, ``python setup.py build_ext --inplace`` (``make test`` does it) builds it.
"""

from setuptools import Extension, find_packages, setup

setup(
    packages=find_packages(include=["gluonlite", "gluonlite.*"]) + ["gluonlite.kernels"],
    ext_modules=[
        Extension(
            "gluonlite._cndarray",
            ["gluonlite/_cndarray.c"],
            optional=True,  # no compiler: a warning, and the pure-Python class
            extra_compile_args=["-O2"],
        )
    ],
)
