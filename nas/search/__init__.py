"""The search loop: spaces, the reward and evaluators meet a backend (Optuna or Ray Tune) here.

``run_search`` and ``SearchResult`` are imported on first use (module ``__getattr__``), so importing a
light module of this package (``nas.search.config``, ``nas.search.candidate``) pulls in no backend.
"""

from .config import SearchConfig, resolve_config

__all__ = ["SearchConfig", "SearchResult", "resolve_config", "run_search"]


def __getattr__(name: str):
    if name in ("SearchResult", "run_search"):
        from . import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
