"""Wide ResNet WRN-depth-k (Zagoruyko & Komodakis 2016), exactly as DSR's ``cifar10_WideResNet``
(Mostafa & Wang 2019; notes ``dsr.md`` §3), without dropout.

Bias-free 3x3 stem conv to 16 channels; three groups of ``(depth - 4) // 6`` pre-activation basic blocks
(BN-ReLU-conv3x3-BN-ReLU-conv3x3) with widths round(16k), round(32k), round(64k) and strides 1, 2, 2;
a 1x1 shortcut conv where the shape changes, fed (like conv1) by that block's first BN-ReLU output;
final BN-ReLU, global average pool, one Linear. WRN-28-2 has 1,467,610 parameters for 10 classes; DSR's
thin-dense networks are ``widen_factor`` 1.47 / 1.33 / 1.15 / 0.98 / 0.75 (795,477 ... 209,130).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from ._common import check_positive, scaled
from .registry import ModelSpecError, register_arch


class PreActBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.shortcut: nn.Conv2d | None = None
        if in_ch != out_ch or stride != 1:
            self.shortcut = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        act = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(act))))
        return out + (x if self.shortcut is None else self.shortcut(act))


@register_arch("wrn")
def wrn(
    *, num_classes: int, input_shape: tuple[int, int, int], depth: int = 28, widen_factor: float = 2.0
) -> nn.Module:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ModelSpecError(f"wrn depth must be 6n+4 with n >= 1 (e.g. 16, 22, 28, 40), got {depth!r}")
    check_positive("widen_factor", widen_factor)
    n = (depth - 4) // 6
    parts: dict[str, nn.Module] = {"conv1": nn.Conv2d(input_shape[0], 16, 3, padding=1, bias=False)}
    ch = 16
    for i, (base, stride) in enumerate(((16, 1), (32, 2), (64, 2))):
        out = scaled(base, widen_factor)
        blocks = [PreActBlock(ch if j == 0 else out, out, stride if j == 0 else 1) for j in range(n)]
        parts[f"block{i + 1}"] = nn.Sequential(*blocks)
        ch = out
    parts |= {
        "bn": nn.BatchNorm2d(ch),
        "relu": nn.ReLU(),
        "avgpool": nn.AdaptiveAvgPool2d(1),
        "flatten": nn.Flatten(),
        "fc": nn.Linear(ch, num_classes),
    }
    return nn.Sequential(OrderedDict(parts))
