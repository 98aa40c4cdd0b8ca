"""Sphinx configuration of gluonlite's documentation (``make docs``).

Sphinx rather than MkDocs: the docstrings are Google-style with runnable ``>>>`` examples,
which autodoc + napoleon render as they are, and Sphinx's doctest builder runs every example
in the pages and docstrings, so ``make test`` fails when the docs drift from the code.
Markdown pages (the benchmarks page is written by the benchmark tooling) come in through
myst-parser.
"""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

import gluonlite  # noqa: E402

project = "gluonlite"
author = "the gluonlite authors"
release = version = gluonlite.__version__
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.autosummary",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
# Each name is documented once, in the module that defines it (packages re-export names in
# __all__, which would give two targets per name).
autodoc_default_options = {
    "members": True,
    "undoc-members": False,
    "show-inheritance": True,
    "ignore-module-all": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = True
html_theme = "alabaster"
html_static_path = []
# The doctests of the pages and of the docstrings share one setup.
doctest_global_setup = "import gluonlite as mx\nimport numpy"
# The docstrings' own >>> examples run under pytest --doctest-modules (each in its module's
# namespace); the doctest builder runs the examples of the pages (the {doctest} blocks).
doctest_test_doctest_blocks = ""
suppress_warnings = ["myst.header"]
