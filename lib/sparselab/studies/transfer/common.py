"""What the transfer study's jobs share: the measured sparsity of a backbone and the sparse layers
of an upstream (no training code: the feature jobs use it)."""

from __future__ import annotations

from typing import Sequence

import torch

from ...dst.layers import sparse_tensors
from ...sparsity.mask import Mask


def backbone_sparsity(model: torch.nn.Module) -> float:
    """Zeros among the Conv2d/Linear weights before the classifier (the transferred part)."""
    weights = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    head = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)][-1]
    names = [f"{n}.weight" for n in weights if n != head]
    return Mask.from_zeros(model, names).sparsity if names else 0.0


def sparse_layer_names(model: torch.nn.Module, arch: str, sparse_layers: str | Sequence[str]) -> list[str]:
    return sparse_tensors(model, arch, sparse_layers if isinstance(sparse_layers, str) else list(sparse_layers))
