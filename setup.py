"""Package discovery only; everything else is in pyproject.toml.

setuptools cannot both discover packages and map kernels/ (which sits at the top of the
repository) to gluonlite.kernels from pyproject.toml alone, so the list is built here: a new
gluonlite subpackage ships without being listed by hand.
"""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["gluonlite", "gluonlite.*"]) + ["gluonlite.kernels"])
