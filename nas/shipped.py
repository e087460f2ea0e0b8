"""Where the YAML files nas ships with live: the search spaces and the experiments.

In a checkout they are the top-level folders ``search_spaces/`` and ``experiments/``, where users read,
edit and copy them. An installed wheel carries the same files as the packages ``nas.search_spaces`` and
``nas.experiments`` (pyproject's package-dir maps one onto the other), found by the import system. They
are folders of YAML without an ``__init__.py`` (namespace packages, whose importlib.resources.files() is
not a plain path), so the folder comes from the package's search location. The checkout's folder wins
when it exists, so an edit to it is what the next run sees.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def shipped_folder(folder: str) -> Path:
    """``search_spaces`` or ``experiments``: the checkout's top-level folder, else the installed package's."""
    in_checkout = _CHECKOUT / folder
    if in_checkout.is_dir():
        return in_checkout
    found = importlib.util.find_spec(f"nas.{folder}")
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError(f"nas is installed without its {folder}/ (nas.{folder}); reinstall the wheel")
    return Path(next(iter(found.submodule_search_locations)))
