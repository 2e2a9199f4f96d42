"""CIFAR ResNet-20/32/44/56/110 (He et al. 2016, "Deep Residual Learning", §4.2), depth 6n+2.

Follows the gradflow notes (``gradflow.md`` §4): 3x3 stem conv + BN + ReLU, three stages of n basic
blocks with ``width``, ``2*width``, ``4*width`` channels (stride 2 entering stages 2 and 3), projection
shortcuts (1x1 conv + BN, "option B") where the shape changes, global average pool, one Linear.
ResNet-56 with width 16 has 855,770 parameters for 10 classes.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from .registry import ArchBuilder, ModelSpecError, register_arch


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus identity or 1x1-conv+BN shortcut, then ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            proj = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)
            self.shortcut = nn.Sequential(proj, nn.BatchNorm2d(out_ch))
        self.relu2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


class CifarResNet(nn.Sequential):
    """Stem, three stages (``layer1``..``layer3``) of ``(depth - 2) // 6`` blocks, pooled linear head."""

    def __init__(self, depth: int, num_classes: int, in_channels: int, width: int) -> None:
        n = (depth - 2) // 6
        parts: dict[str, nn.Module] = {
            "conv1": nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            "bn1": nn.BatchNorm2d(width),
            "relu": nn.ReLU(),
        }
        ch = width
        for i in range(3):
            out = width * 2**i
            blocks = [BasicBlock(ch if j == 0 else out, out, stride=2 if i > 0 and j == 0 else 1) for j in range(n)]
            parts[f"layer{i + 1}"] = nn.Sequential(*blocks)
            ch = out
        parts |= {"avgpool": nn.AdaptiveAvgPool2d(1), "flatten": nn.Flatten(), "fc": nn.Linear(ch, num_classes)}
        super().__init__(OrderedDict(parts))


def _builder(depth: int) -> ArchBuilder:
    def build(*, num_classes: int, input_shape: tuple[int, int, int], width: int = 16) -> nn.Module:
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ModelSpecError(f"width is the stem's channel count, a positive integer; got {width!r}")
        return CifarResNet(depth, num_classes, input_shape[0], width)

    build.__name__ = build.__qualname__ = f"cifar_resnet{depth}"
    build.__doc__ = f"CIFAR ResNet-{depth}: {(depth - 2) // 6} basic blocks per stage, base width ``width``."
    return build


for _depth in (20, 32, 44, 56, 110):
    register_arch(f"cifar_resnet{_depth}")(_builder(_depth))
