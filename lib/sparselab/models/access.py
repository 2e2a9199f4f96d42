"""Reading a module's tensors with their type checked: ``nn.Module.__getattr__`` is typed to return
a tensor or a module, so code that needs a weight says so once, with a clear error otherwise."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["module_tensor"]


def module_tensor(module: nn.Module, name: str) -> torch.Tensor:
    """``module.<name>``, checked to be a tensor (a parameter or buffer)."""
    t = getattr(module, name)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{type(module).__name__}.{name} is a {type(t).__name__}, not a tensor")
    return t
