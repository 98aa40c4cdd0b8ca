"""CUDA C sources of gluonlite's kernels, shipped as package data (see gluonlite/_kernels.py)."""
