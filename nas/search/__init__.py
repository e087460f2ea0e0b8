"""The search loop: spaces, the reward and evaluators meet a backend (Optuna or Ray Tune) here."""

from .config import SearchConfig, resolve_config
from .run import SearchResult, run_search

__all__ = ["SearchConfig", "SearchResult", "resolve_config", "run_search"]
