"""Metrics of models: accuracy and loss (:mod:`.classification`).

Checkpoint-level evaluation lives in :mod:`.checkpoint_eval` and is imported from there, so the
training engine (which uses :func:`evaluate`) does not depend on it.
"""

from .classification import evaluate, target_ranks, topk_counts

__all__ = ["evaluate", "target_ranks", "topk_counts"]
