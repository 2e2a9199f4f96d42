"""Architectures of the model registry: parameter counts from the reference notes, shapes, module types,
torchvision equivalence and argument checking. Full-size models are built on the meta device (no memory,
no initialisation cost) unless their weights are needed."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from sparselab.models import ModelSpecError, arch_kwargs, build_model, list_archs

# A tiny configuration and input shape per architecture, for forward passes.
TINY: dict[str, tuple[dict, tuple[int, int, int]]] = {
    "lenet300_100": ({"hidden": (7, 5)}, (1, 8, 8)),
    **{f"cifar_resnet{d}": ({"width": 2}, (3, 32, 32)) for d in (20, 32, 44, 56, 110)},
    **{f"resnet{d}": ({"width": 1 / 32}, (3, 32, 32)) for d in (18, 34, 50, 101, 152)},
    "vgg13_bn": ({"width": 1 / 16}, (3, 32, 32)),
    "mobilenet_v1": ({"width": 1 / 16}, (3, 32, 32)),
    "wrn": ({"depth": 10, "widen_factor": 0.25}, (3, 32, 32)),
}

ALLOWED_LEAVES = (
    nn.Conv2d,
    nn.Linear,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Dropout,
    nn.Identity,
)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def meta_model(arch: str, num_classes: int = 10, input_shape=(3, 32, 32), **kwargs) -> nn.Module:
    with torch.device("meta"):
        return build_model(arch, num_classes, input_shape, **kwargs)


def tiny_model(arch: str, num_classes: int = 7) -> nn.Module:
    kwargs, shape = TINY[arch]
    return build_model(arch, num_classes, shape, **kwargs)


def test_tiny_table_covers_every_arch() -> None:
    assert sorted(TINY) == list_archs()


# --------------------------------------------------------------------------- shapes and module types


@pytest.mark.parametrize("arch", sorted(TINY))
def test_forward_shape_tiny(arch: str) -> None:
    torch.manual_seed(0)
    model = tiny_model(arch)
    x = torch.randn(2, *TINY[arch][1])
    out = model(x)  # train mode
    assert out.shape == (2, 7)
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", sorted(TINY))
def test_leaf_modules_are_path_norm_friendly(arch: str) -> None:
    model = tiny_model(arch)
    leaves = [m for m in model.modules() if not list(m.children())]
    bad = sorted({type(m).__name__ for m in leaves if not isinstance(m, ALLOWED_LEAVES)})
    assert not bad, f"{arch} has unsupported leaf modules {bad}"
    # ... and no container owns parameters itself (every weight sits in one of the leaves above).
    for m in model.modules():
        if list(m.children()):
            assert not list(m.parameters(recurse=False)), type(m).__name__


@pytest.mark.parametrize(
    ("arch", "kwargs", "shape"),
    [
        ("lenet300_100", {"batch_norm": True, "hidden": [6]}, (3, 4, 5)),  # a list, as in a JSON sidecar
        ("resnet18", {"width": 1 / 16, "small_input": True}, (3, 16, 16)),
        ("resnet50", {"width": 1 / 64, "small_input": True}, (1, 8, 8)),
        ("cifar_resnet20", {"width": 1}, (1, 8, 8)),
        ("mobilenet_v1", {"width": 1 / 32, "stem_stride": 2}, (3, 32, 32)),
        ("vgg13_bn", {"width": 1 / 32, "relu_before_bn": True}, (1, 40, 36)),
        ("wrn", {"depth": 16, "widen_factor": 0.5}, (1, 16, 16)),
    ],
)
def test_forward_shape_variants(arch: str, kwargs: dict, shape: tuple[int, int, int]) -> None:
    model = build_model(arch, 3, shape, **kwargs)
    assert model(torch.randn(2, *shape)).shape == (2, 3)


def test_default_models_on_cifar_shape() -> None:
    """The small full-size CIFAR models run one (cheap) forward pass."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    for arch in ("cifar_resnet20", "wrn", "mobilenet_v1"):
        model = build_model(arch, 10, (3, 32, 32), **({"depth": 10} if arch == "wrn" else {}))
        assert model(x).shape == (2, 10), arch


# --------------------------------------------------------------------------- parameter counts from the notes


def test_lenet_counts() -> None:
    # dsr.md §3: 266,200 weights + 820 BN parameters.
    assert n_params(meta_model("lenet300_100", 10, (1, 28, 28), batch_norm=True)) == 267_020
    assert n_params(meta_model("lenet300_100", 10, (1, 28, 28))) == 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10


def test_lenet_layer_order() -> None:
    bn = build_model("lenet300_100", 10, (1, 28, 28), batch_norm=True)
    assert [type(m) for m in bn] == [nn.Flatten] + [nn.Linear, nn.BatchNorm1d, nn.ReLU] * 2 + [
        nn.Linear,
        nn.BatchNorm1d,
    ]
    assert all(m.bias is None for m in bn if isinstance(m, nn.Linear))
    plain = build_model("lenet300_100", 10, (1, 28, 28))
    assert [type(m) for m in plain] == [nn.Flatten] + [nn.Linear, nn.ReLU] * 2 + [nn.Linear]
    assert all(m.bias is not None for m in plain if isinstance(m, nn.Linear))


@pytest.mark.parametrize(
    ("arch", "kwargs", "num_classes", "expected"),
    [
        # gradflow.md §4 (rounded to 3 significant digits there)
        ("cifar_resnet56", {}, 10, 0.856e6),
        ("cifar_resnet56", {}, 100, 0.862e6),
        ("vgg13_bn", {"relu_before_bn": True}, 10, 9.41e6),
        ("vgg13_bn", {}, 100, 9.46e6),
        ("mobilenet_v1", {}, 10, 3.22e6),
        ("mobilenet_v1", {}, 100, 3.31e6),
    ],
)
def test_gradflow_counts(arch: str, kwargs: dict, num_classes: int, expected: float) -> None:
    assert n_params(meta_model(arch, num_classes, **kwargs)) == pytest.approx(expected, rel=5e-3)


def test_cifar_resnet_depths_and_shortcuts() -> None:
    assert n_params(meta_model("cifar_resnet56")) == 855_770
    for depth in (20, 32, 44, 56, 110):
        model = meta_model(f"cifar_resnet{depth}")
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        # stem + 2 convs in each of the 3n = (depth - 2) / 2 blocks + the two option-B projections
        assert len(convs) == 1 + (depth - 2) + 2
        assert sum(c.kernel_size == (1, 1) for c in convs) == 2
        assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 1


@pytest.mark.parametrize(
    ("widen_factor", "expected"),
    # dsr.md §3: WRN-28-2 dense, then the thin-dense widths 1.47 / 1.33 / 1.15 / 0.98 / 0.75
    [(2.0, 1_467_610), (1.47, 795_477), (1.33, 652_093), (1.15, 491_845), (0.98, 356_376), (0.75, 209_130)],
)
def test_wrn_counts(widen_factor: float, expected: int) -> None:
    assert n_params(meta_model("wrn", widen_factor=widen_factor)) == expected


@pytest.mark.parametrize(
    ("width", "expected"),
    # dsr.md §3: ResNet-50 dense, thin dense wf 0.54 and 0.46 (1000 classes)
    [(1.0, 25_557_032), (0.54, 8_167_095), (0.46, 5_771_217)],
)
def test_resnet50_counts(width: float, expected: int) -> None:
    assert n_params(meta_model("resnet50", 1000, (3, 224, 224), width=width)) == expected


# --------------------------------------------------------------------------- torchvision ResNets


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_resnet_state_dict_keys_match_torchvision(depth: int) -> None:
    import torchvision

    with torch.device("meta"):
        ours = build_model(f"resnet{depth}", 10, (3, 224, 224)).state_dict()
        ref = getattr(torchvision.models, f"resnet{depth}")(num_classes=10).state_dict()
    assert list(ours) == list(ref)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in ref.items()}


@pytest.mark.parametrize("depth", [18, 50])
def test_resnet_equals_torchvision(depth: int) -> None:
    import torchvision

    torch.manual_seed(1)
    ref = getattr(torchvision.models, f"resnet{depth}")(num_classes=10)
    torch.manual_seed(1)
    ours = build_model(f"resnet{depth}", 10, (3, 64, 64))
    # same construction order and initialisation: same weights from the same seed
    for (k, a), b in zip(ours.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), k
    # perturb the torchvision weights, load them strictly, compare outputs
    with torch.no_grad():
        for v in ref.state_dict().values():
            if v.is_floating_point():
                v.add_(0.01 * torch.randn_like(v))
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval()
    ref.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x))


def test_resnet_width_input_channels_and_small_input() -> None:
    model = build_model("resnet18", 5, (1, 16, 16), width=0.5, small_input=True)
    assert model.conv1.in_channels == 1 and model.conv1.out_channels == 32
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    assert model.fc.in_features == 256
    big = meta_model("resnet50", 5, (3, 224, 224), width=0.5)
    assert big.conv1.kernel_size == (7, 7) and isinstance(big.maxpool, nn.MaxPool2d)
    assert big.layer4[0].conv2.out_channels == 256 and big.fc.in_features == 1024
    assert meta_model("resnet50", 5, (3, 64, 64), width=1e-3).conv1.out_channels == 1  # at least one channel


# --------------------------------------------------------------------------- architecture details


def test_vgg_relu_before_bn_changes_order() -> None:
    def order(**kwargs) -> list[type]:
        model = build_model("vgg13_bn", 10, (3, 32, 32), width=1 / 16, **kwargs)
        return [type(m) for m in model.features][:4]

    assert order() == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Conv2d]
    assert order(relu_before_bn=True) == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d, nn.Conv2d]


def test_vgg_structure() -> None:
    model = meta_model("vgg13_bn", 10, width=0.5)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64, 128, 128, 256, 256, 256, 256]
    assert all(c.bias is None for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 5
    assert [type(m) for m in model.classifier] == [nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear]


def test_vgg_rejects_small_input() -> None:
    with pytest.raises(ModelSpecError, match="image_size: 32"):
        build_model("vgg13_bn", 10, (1, 28, 28))


def test_mobilenet_structure() -> None:
    model = meta_model("mobilenet_v1")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 2 * 13 and all(c.bias is None for c in convs)
    assert convs[0].stride == (1, 1) and convs[0].out_channels == 32
    depthwise = convs[1::2]
    assert all(c.groups == c.in_channels == c.out_channels for c in depthwise)
    assert [c.stride[0] for c in depthwise] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    assert [c.out_channels for c in convs[2::2]] == [64, 128, 128, 256, 256] + [512] * 6 + [1024, 1024]
    assert meta_model("mobilenet_v1", stem_stride=2).features[0][0].stride == (2, 2)


def test_wrn_shortcut_is_fed_by_first_bn_relu() -> None:
    torch.manual_seed(0)
    model = build_model("wrn", 10, (3, 16, 16), depth=10, widen_factor=0.5)
    model.eval()
    blocks = [model.block1[0], model.block2[0], model.block3[0]]
    assert blocks[0].shortcut is not None  # 16 -> round(16 * 0.5) = 8 channels
    assert all(b.shortcut is not None and b.shortcut.stride == (s, s) for b, s in zip(blocks, (1, 2, 2)))
    seen: dict[str, torch.Tensor] = {}
    block = model.block2[0]
    block.relu1.register_forward_hook(lambda m, i, o: seen.__setitem__("act", o))
    block.shortcut.register_forward_hook(lambda m, i, o: seen.__setitem__("short_in", i[0]))
    block.conv1.register_forward_hook(lambda m, i, o: seen.__setitem__("conv1_in", i[0]))
    with torch.no_grad():
        model(torch.randn(2, 3, 16, 16))
    assert seen["short_in"] is seen["act"] and seen["conv1_in"] is seen["act"]
    # blocks with equal in/out keep the raw identity shortcut; there is no dropout
    plain = meta_model("wrn")
    assert plain.block1[0].shortcut is not None and plain.block1[1].shortcut is None
    assert sum(isinstance(m, nn.Dropout) for m in plain.modules()) == 0
    assert sum(1 for m in plain.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)) == 25


# --------------------------------------------------------------------------- registry behaviour


def test_arch_kwargs() -> None:
    expected = {
        "lenet300_100": {"hidden": (300, 100), "batch_norm": False},
        "cifar_resnet56": {"width": 16},
        "resnet50": {"width": 1.0, "small_input": False},
        "vgg13_bn": {"width": 1.0, "relu_before_bn": False},
        "mobilenet_v1": {"width": 1.0, "stem_stride": 1},
        "wrn": {"depth": 28, "widen_factor": 2.0},
    }
    for arch, kwargs in expected.items():
        assert arch_kwargs(arch) == kwargs
        json.dumps(kwargs)  # defaults fit a JSON sidecar


def test_unknown_arch_is_rejected() -> None:
    with pytest.raises(ModelSpecError, match="unknown architecture 'resnet9'.*cifar_resnet56.*wrn"):
        build_model("resnet9", 10, (3, 32, 32))


def test_unknown_kwarg_is_rejected() -> None:
    with pytest.raises(ModelSpecError, match=r"does not accept 'depth'.*accepted: width=1\.0, relu_before_bn=False"):
        build_model("vgg13_bn", 10, (3, 32, 32), depth=13)


@pytest.mark.parametrize(
    ("arch", "kwargs"),
    [
        ("lenet300_100", {"hidden": 300}),
        ("lenet300_100", {"hidden": [300, 0]}),
        ("cifar_resnet20", {"width": 0}),
        ("cifar_resnet20", {"width": 1.5}),
        ("resnet18", {"width": 0.0}),
        ("vgg13_bn", {"width": -1.0}),
        ("mobilenet_v1", {"stem_stride": 3}),
        ("wrn", {"depth": 27}),
        ("wrn", {"widen_factor": 0}),
    ],
)
def test_bad_knob_values_are_rejected(arch: str, kwargs: dict) -> None:
    with pytest.raises(ModelSpecError):
        meta_model(arch, **kwargs)
