"""Small helpers shared by the architecture modules: width scaling, knob checks, conv-BN-ReLU units."""

from __future__ import annotations

from torch import nn

from .registry import ModelSpecError


def check_positive(name: str, value: float) -> None:
    """Reject a non-positive width knob with a ``ModelSpecError``."""
    if not value > 0:
        raise ModelSpecError(f"{name} must be > 0, got {value!r}")


def scaled(channels: int, width: float) -> int:
    """``round(channels * width)``, at least 1 (Python rounding, as the reference code uses)."""
    return max(1, round(channels * width))


def conv_bn_relu(
    in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, groups: int = 1, relu_before_bn: bool = False
) -> list[nn.Module]:
    """A bias-free ``kernel_size`` conv (padding ``kernel_size // 2``) followed by BN and ReLU (or ReLU then BN)."""
    conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2, groups=groups, bias=False)
    norm_act: list[nn.Module] = [nn.BatchNorm2d(out_ch), nn.ReLU()]
    return [conv, *(reversed(norm_act) if relu_before_bn else norm_act)]
