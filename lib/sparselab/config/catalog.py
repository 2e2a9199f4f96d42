"""What the registries offer, known without importing torch (checked when the workflow is parsed).

``ARCHS`` maps each architecture to the module that builds it and the keyword arguments (width
knobs) it accepts; ``tests/test_config.py`` checks this against the builders' signatures.
"""

from __future__ import annotations

_CIFAR_RESNET = ("resnet_cifar", ("width",))
_RESNET = ("resnet_imagenet", ("width", "small_input"))

ARCHS: dict[str, tuple[str, tuple[str, ...]]] = {
    "lenet300_100": ("lenet", ("hidden", "batch_norm")),
    "cifar_resnet20": _CIFAR_RESNET,
    "cifar_resnet32": _CIFAR_RESNET,
    "cifar_resnet44": _CIFAR_RESNET,
    "cifar_resnet56": _CIFAR_RESNET,
    "cifar_resnet110": _CIFAR_RESNET,
    "resnet18": _RESNET,
    "resnet34": _RESNET,
    "resnet50": _RESNET,
    "resnet101": _RESNET,
    "resnet152": _RESNET,
    "vgg13_bn": ("vgg", ("width", "relu_before_bn")),
    "mobilenet_v1": ("mobilenet", ("width", "stem_stride")),
    "wrn": ("wide_resnet", ("depth", "widen_factor")),
}
