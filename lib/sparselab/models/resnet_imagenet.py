"""ImageNet ResNet-18/34/50/101/152 (He et al. 2016), built from torchvision's own classes.

With ``width=1.0``, ``small_input=False`` and 3 input channels the model is state-dict-identical to
``torchvision.models.resnetXX(num_classes=...)`` (and draws the same initial weights from the same seed).
``width`` scales the base width 64 to ``round(64 * width)`` (at least 1); the stages use 1x, 2x, 4x, 8x
that base and bottlenecks keep expansion 4. This is DSR's ``--widen-factor`` for ResNet-50
(``dsr.md`` §3): width 0.54 -> 8,167,095 and 0.46 -> 5,771,217 parameters (1000 classes).
``small_input=True`` uses a 3x3 stride-1 stem conv and no max-pool, for 8x8..32x32 inputs.
"""

from __future__ import annotations

from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from ._common import check_positive, scaled
from .registry import ArchBuilder, register_arch

_CONFIGS: dict[int, tuple[type[BasicBlock | Bottleneck], list[int]]] = {
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
    101: (Bottleneck, [3, 4, 23, 3]),
    152: (Bottleneck, [3, 8, 36, 3]),
}


class ScaledResNet(ResNet):
    """torchvision's ``ResNet`` (same attributes, ``_make_layer``, forward and init) with a scaled base
    width, any number of input channels and an optional small-input stem.

    ``ResNet.__init__`` hard-codes 3 input channels and base width 64, so this constructor sets up the
    same attributes itself, in the same order, and reuses ``ResNet._make_layer`` for the stages.
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: list[int],
        num_classes: int,
        in_channels: int = 3,
        width: float = 1.0,
        small_input: bool = False,
    ) -> None:
        nn.Module.__init__(self)
        base = scaled(64, width)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = base, 1, 1, 64
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, base, kernel_size=3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, base, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, base, layers[0])
        self.layer2 = self._make_layer(block, 2 * base, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * base, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * base, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * base * block.expansion, num_classes)
        # torchvision's initialisation (ResNet.__init__, zero_init_residual=False).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def _builder(depth: int) -> ArchBuilder:
    block, layers = _CONFIGS[depth]

    def build(
        *, num_classes: int, input_shape: tuple[int, int, int], width: float = 1.0, small_input: bool = False
    ) -> nn.Module:
        check_positive("width", width)
        return ScaledResNet(block, layers, num_classes, input_shape[0], width, small_input)

    build.__name__ = build.__qualname__ = f"resnet{depth}"
    build.__doc__ = f"torchvision ResNet-{depth}, base width ``round(64 * width)``; see the module docstring."
    return build


for _depth in _CONFIGS:
    register_arch(f"resnet{_depth}")(_builder(_depth))
