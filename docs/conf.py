"""Sphinx configuration: the API reference (autodoc of ``torchrl_seps.__all__``) and the user
guide (Markdown through MyST). Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html``."""
from __future__ import annotations

import torchrl_seps

project = "torchrl-seps"
release = version = torchrl_seps.__version__
extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# The result folders hold each run's own files (tables, scripts); only their index is a page.
exclude_patterns = ["_build", "results/*/**"]
myst_heading_anchors = 4
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
html_theme = "furo"
html_title = f"torchrl-seps {release}"


def _skip_foreign_member(app, what, name, obj, skip, options):
    """Leaves out the methods a class inherits from other libraries (scikit-learn's
    ``set_fit_request``, torch's ``nn.Module`` API): the reference covers this package's own."""
    module = getattr(obj, "__module__", None) or ""
    if what == "class" and callable(obj) and not module.startswith("torchrl_seps"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_foreign_member)
