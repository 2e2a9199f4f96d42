"""Unstructured sparsity: the Mask object and magnitude pruning (layerwise and global)."""

from .magnitude import magnitude_mask, remaining_to_total
from .mask import BoundMask, Mask, prunable_parameters

__all__ = ["BoundMask", "Mask", "magnitude_mask", "prunable_parameters", "remaining_to_total"]
