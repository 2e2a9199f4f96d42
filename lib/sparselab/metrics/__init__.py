"""Metrics of models: accuracy and loss (:mod:`.classification`), exact L^q path-norms
(:mod:`.pathnorm`), per-sample margins and their quantiles (:mod:`.margin_stats`) and the
Theorem 3.1 bound constants of the path-norm study (:mod:`.bound`, stdlib only).

Checkpoint-level evaluation lives in :mod:`.checkpoint_eval` and is imported from there, so the
training engine (which uses :func:`evaluate`) does not depend on it.
"""

from .classification import evaluate, target_ranks, topk_counts
from .margin_stats import LogitStats, logit_statistics, margin_quantiles, margins
from .pathnorm import PathNorm, UnsupportedModelError, path_norm, path_norms

__all__ = [
    "LogitStats", "PathNorm", "UnsupportedModelError", "evaluate", "logit_statistics", "margin_quantiles",
    "margins", "path_norm", "path_norms", "target_ranks", "topk_counts",
]  # fmt: skip
