"""MobileNet-V1 (Howard et al. 2017), CIFAR variant as described in the gradflow notes (§4).

Stem 3x3 conv 3->32 (stride ``stem_stride``) + BN + ReLU, then 13 depthwise-separable blocks
[depthwise 3x3 -> BN -> ReLU -> pointwise 1x1 -> BN -> ReLU], global average pool, one Linear.
All channel counts are scaled by ``width``; convs are bias-free. 3.22 M parameters for 10 classes.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ._common import check_positive, conv_bn_relu, scaled
from .registry import ModelSpecError, register_arch

# (output channels, stride of the depthwise conv) of the 13 blocks.
_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * 5, (1024, 2), (1024, 1))


def _separable(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    return nn.Sequential(*conv_bn_relu(in_ch, in_ch, 3, stride, groups=in_ch), *conv_bn_relu(in_ch, out_ch, 1))


@register_arch("mobilenet_v1")
def mobilenet_v1(
    *, num_classes: int, input_shape: tuple[int, int, int], width: float = 1.0, stem_stride: int = 1
) -> nn.Module:
    check_positive("width", width)
    if stem_stride not in (1, 2):
        raise ModelSpecError(f"stem_stride must be 1 (CIFAR variant) or 2 (ImageNet), got {stem_stride!r}")
    ch = scaled(32, width)
    blocks: list[nn.Module] = [nn.Sequential(*conv_bn_relu(input_shape[0], ch, 3, stem_stride))]
    for out, stride in _BLOCKS:
        blocks.append(_separable(ch, scaled(out, width), stride))
        ch = scaled(out, width)
    head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch, num_classes)]
    return nn.Sequential(OrderedDict(features=nn.Sequential(*blocks), classifier=nn.Sequential(*head)))
