"""LeNet-300-100: the fully connected MNIST network (LeCun et al. 1998).

``batch_norm=True`` is the DSR variant (Mostafa & Wang 2019; notes ``dsr.md`` §3): bias-free Linear
layers each followed by BatchNorm1d, including a BatchNorm1d on the logits (267,020 parameters on MNIST).
``batch_norm=False`` is the plain network: Linear layers with bias, ReLU between them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from .registry import ModelSpecError, register_arch


@register_arch("lenet300_100")
def lenet300_100(
    *,
    num_classes: int,
    input_shape: tuple[int, int, int],
    hidden: Sequence[int] = (300, 100),
    batch_norm: bool = False,
) -> nn.Module:
    if isinstance(hidden, (str, int)) or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
        raise ModelSpecError(f"hidden must be a list of positive hidden-layer sizes, got {hidden!r}")
    sizes = [math.prod(input_shape), *hidden, num_classes]
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(fan_in, fan_out, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(fan_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)
