"""CIFAR VGG-13 with batch norm (Simonyan & Zisserman 2015; CIFAR variant as in the gradflow notes, §4).

Ten bias-free 3x3 convs (64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M, scaled by
``width``), each followed by BN and ReLU (``relu_before_bn=True``: ReLU then BN, the order of Lubana &
Dick's reference code), 2x2 max-pool at each M, global average pool (a no-op at 32x32) and a single
Linear. 9.41 M parameters for 10 classes at width 1.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ._common import check_positive, conv_bn_relu, scaled
from .registry import ModelSpecError, register_arch

_VGG13 = (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


@register_arch("vgg13_bn")
def vgg13_bn(
    *, num_classes: int, input_shape: tuple[int, int, int], width: float = 1.0, relu_before_bn: bool = False
) -> nn.Module:
    check_positive("width", width)
    if min(input_shape[1:]) < 32:
        raise ModelSpecError(
            f"vgg13_bn has five 2x2 max-pools and needs inputs of at least 32x32, got "
            f"{input_shape[1]}x{input_shape[2]}; upsample the data (e.g. `image_size: 32` in the dataset config)"
        )
    features: list[nn.Module] = []
    ch = input_shape[0]
    for v in _VGG13:
        if isinstance(v, str):  # "M": a 2x2 max-pool
            features.append(nn.MaxPool2d(2))
        else:
            out = scaled(v, width)
            features += conv_bn_relu(ch, out, relu_before_bn=relu_before_bn)
            ch = out
    head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch, num_classes)]
    return nn.Sequential(OrderedDict(features=nn.Sequential(*features), classifier=nn.Sequential(*head)))
