"""What the transfer study's jobs share: the measured sparsity of a backbone (no training code:
the feature jobs use it)."""

from __future__ import annotations

import torch

from ...sparsity.mask import Mask


def backbone_sparsity(model: torch.nn.Module) -> float:
    """Zeros among the Conv2d/Linear weights before the classifier (the transferred part)."""
    weights = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    head = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)][-1]
    names = [f"{n}.weight" for n in weights if n != head]
    return Mask.from_zeros(model, names).sparsity if names else 0.0
