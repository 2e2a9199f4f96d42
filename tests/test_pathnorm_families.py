"""Path-norms of DenseNet, MNASNet, ShuffleNet and Inception-style networks.

The operations they are made of (functional pooling and ReLU, means over spatial or channel
dimensions, channel shuffles, chunks, splits, slices, concatenations and stacks, scaling by and
adding constants) are checked against the explicit path enumeration of tests/test_pathnorm.py on
tiny networks; rescaling invariance is checked inside torchvision's own DenseNet block and
ShuffleNetV2 unit; every torchvision classification model is either computed or refused with the
operation and module named; float32 is compared with float64 on DenseNet-121, MNASNet and
ShuffleNetV2.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from test_pathnorm import (
    REGIMES,
    RefDAG,
    _assert_invariant,
    assert_matches_enumeration,
    log10s,
    randomize,
    ref_adaptive_avgpool,
    ref_avgpool,
    ref_bn,
    ref_cat,
    ref_conv,
    ref_flatten,
    ref_input,
    ref_linear,
    ref_maxpool,
    ref_relu,
    rel,
)
from torch import nn

from sparselab.metrics.pathnorm import UnsupportedModelError, path_norms

pytestmark = pytest.mark.usefixtures("one_thread")  # the walks are many tiny ops (tests/conftest.py)


# ============================================================================ reference operations
def ref_reduce(g: RefDAG, ids: np.ndarray, axes: tuple[int, ...], kind: str, keepdim: bool = False) -> np.ndarray:
    """One neuron per remaining position over ``axes`` (no batch axis): a mean (edges 1/K), a sum
    (edges 1) or a max neuron."""
    kept = [a for a in range(ids.ndim) if a not in axes]
    moved = np.transpose(ids, kept + list(axes))
    rows = moved.reshape(-1, math.prod(ids.shape[a] for a in axes))
    out = np.zeros(rows.shape[0], dtype=np.int64)
    for r, row in enumerate(rows):
        n = g.new("max" if kind == "amax" else "affine")
        for src in row:
            g.edge(src, n, 1.0 / len(row) if kind == "mean" else 1.0)
        out[r] = n
    shape = [ids.shape[a] for a in kept]
    if keepdim:
        shape = [1 if a in axes else ids.shape[a] for a in range(ids.ndim)]
    return out.reshape(shape)


def ref_affine(g: RefDAG, ids: np.ndarray, weight: float, bias: float | None = None) -> np.ndarray:
    """``weight * x + bias`` for every neuron of ``ids``: a neuron with one edge (and a bias)."""
    out = np.zeros_like(ids)
    for idx in np.ndindex(*ids.shape):
        n = g.new("affine", bias)
        g.edge(ids[idx], n, weight)
        out[idx] = n
    return out


def ref_shuffle(ids: np.ndarray, groups: int) -> np.ndarray:
    c, h, w = ids.shape
    return ids.reshape(groups, c // groups, h, w).transpose(1, 0, 2, 3).reshape(c, h, w)


def ref_adaptive_maxpool(g: RefDAG, ids: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    c, h, w = ids.shape
    oh, ow = out_size
    out = np.zeros((c, oh, ow), dtype=np.int64)
    for ch in range(c):
        for i in range(oh):
            for j in range(ow):
                n = g.new("max")
                for y in range(math.floor(i * h / oh), math.ceil((i + 1) * h / oh)):
                    for x in range(math.floor(j * w / ow), math.ceil((j + 1) * w / ow)):
                        g.edge(ids[ch, y, x], n, 1.0)
                out[ch, i, j] = n
    return out


# ============================================================================ tiny networks
def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """torchvision's ShuffleNetV2 channel shuffle, verbatim: size arithmetic, view, transpose."""
    batchsize, num_channels, height, width = x.size()
    channels_per_group = num_channels // groups
    x = x.view(batchsize, groups, channels_per_group, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batchsize, -1, height, width)


class NetDense(nn.Module):
    """DenseNet in miniature: conv1x1-BN-F.relu-F.max_pool2d(3, 2, 1); a dense block of two
    BN-ReLU-conv1x1-BN-ReLU-conv3x3 layers, each reading the concatenation of every earlier
    feature map; a transition BN-ReLU-conv1x1-F.avg_pool2d(2, 2, ceil_mode, no padding counted);
    F.relu, F.adaptive_avg_pool2d((1, 1)), flatten, Linear."""

    input_shape = (1, 5, 5)

    def __init__(self) -> None:
        super().__init__()
        self.conv0, self.bn0 = nn.Conv2d(1, 2, 1, bias=False), nn.BatchNorm2d(2)
        self.dense = nn.ModuleList(
            nn.ModuleList(
                [
                    nn.BatchNorm2d(2 + k),
                    nn.Conv2d(2 + k, 2, 1, bias=False),
                    nn.BatchNorm2d(2),
                    nn.Conv2d(2, 1, 3, padding=1, bias=False),
                ]
            )
            for k in range(2)
        )
        self.bn_t, self.conv_t = nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1, bias=False)
        self.fc = nn.Linear(2, 3)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn0(self.conv0(x)), inplace=True), 3, 2, 1)
        features = [x]
        for bn1, conv1, bn2, conv2 in self.dense:
            y = F.relu(bn1(torch.cat(features, 1)), inplace=True)
            features.append(conv2(F.relu(bn2(conv1(y)))))
        x = self.conv_t(F.relu(self.bn_t(torch.cat(features, 1))))
        x = F.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(F.relu(x), (1, 1)), 1))

    def reference(self, g: RefDAG):
        inp = ref_input(g, self.input_shape)
        x = ref_relu(g, ref_bn(g, ref_conv(g, inp, self.conv0), self.bn0))
        features = [ref_maxpool(g, x, nn.MaxPool2d(3, 2, 1))]
        for bn1, conv1, bn2, conv2 in self.dense:
            y = ref_relu(g, ref_bn(g, ref_cat(*features), bn1))
            features.append(ref_conv(g, ref_relu(g, ref_bn(g, ref_conv(g, y, conv1), bn2)), conv2))
        x = ref_conv(g, ref_relu(g, ref_bn(g, ref_cat(*features), self.bn_t)), self.conv_t)
        x = ref_avgpool(g, x, nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False))
        x = ref_adaptive_avgpool(g, ref_relu(g, x), nn.AdaptiveAvgPool2d((1, 1)))
        return inp, ref_linear(g, ref_flatten(x), self.fc)


def _bn_relu_conv(c_in: int, c_out: int, **conv) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, bias=False, **conv), nn.BatchNorm2d(c_out)]


class NetShuffle(nn.Module):
    """ShuffleNetV2 and MNASNet in miniature: conv1x1-BN-ReLU; a stride-1 unit (x.chunk(2, dim=1),
    1x1-BN-ReLU-depthwise 3x3-BN-1x1-BN-ReLU on the second half, torch.cat, channel shuffle); a
    stride-2 unit (both branches, depthwise stride 2); then x.mean([2, 3]) and Linear."""

    input_shape = (2, 4, 4)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(2, 4, 1), nn.BatchNorm2d(4), nn.ReLU())
        self.unit1 = self._branch(2, 2, stride=1)
        self.unit2_left = nn.Sequential(
            nn.Conv2d(4, 4, 3, 2, 1, groups=4, bias=False),
            nn.BatchNorm2d(4),
            nn.Conv2d(4, 2, 1, bias=False),
            nn.BatchNorm2d(2),
            nn.ReLU(),
        )
        self.unit2_right = self._branch(4, 2, stride=2)
        self.fc = nn.Linear(4, 3)

    @staticmethod
    def _branch(c_in: int, c: int, stride: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(c_in, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, c, 3, stride, 1, groups=c, bias=False), nn.BatchNorm2d(c),
            nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
        )  # fmt: skip

    def forward(self, x):
        x = self.stem(x)
        x1, x2 = x.chunk(2, dim=1)
        x = channel_shuffle(torch.cat((x1, self.unit1(x2)), dim=1), 2)
        x = channel_shuffle(torch.cat((self.unit2_left(x), self.unit2_right(x)), dim=1), 2)
        return self.fc(x.mean([2, 3]))

    @staticmethod
    def _ref_sequential(g: RefDAG, ids: np.ndarray, seq: nn.Sequential) -> np.ndarray:
        for m in seq:
            if isinstance(m, nn.Conv2d):
                ids = ref_conv(g, ids, m)
            elif isinstance(m, nn.BatchNorm2d):
                ids = ref_bn(g, ids, m)
            else:
                ids = ref_relu(g, ids)
        return ids

    def reference(self, g: RefDAG):
        inp = ref_input(g, self.input_shape)
        x = self._ref_sequential(g, inp, self.stem)
        x1, x2 = np.split(x, 2, axis=0)
        x = ref_shuffle(ref_cat(x1, self._ref_sequential(g, x2, self.unit1)), 2)
        left, right = self._ref_sequential(g, x, self.unit2_left), self._ref_sequential(g, x, self.unit2_right)
        x = ref_shuffle(ref_cat(left, right), 2)
        return inp, ref_linear(g, ref_reduce(g, x, (1, 2), "mean"), self.fc)


class NetIndex(nn.Module):
    """Indexing, constants and the remaining reductions: Inception's input transform (a channel
    picked by an integer index, unsqueezed, times a constant plus a constant; the other channels
    sliced, divided by a negative constant, minus a constant), torch.cat; conv-F.relu; torch.split
    of channels [1, 3]; one part permuted and flattened, another F.adaptive_max_pool2d then summed
    over its last dimension; a channel mean (keepdim) rescaled as ``3 - 2x``; torch.stack; Linear."""

    input_shape = (3, 3, 4)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(12 * 2 + 6, 2)

    def forward(self, x):
        x0 = torch.unsqueeze(x[:, 0], 1) * 2.5 + 0.3
        x12 = x[:, 1:] / -4.0 - 1.0
        y = F.relu(self.conv(torch.cat((x0, x12), 1)))
        a, b = torch.split(y, [1, 3], dim=1)
        a = a.permute(0, 1, 3, 2).flatten(1)
        b = F.adaptive_max_pool2d(b, (2, 1)).sum(-1).flatten(1)
        c = 3.0 - 2 * y.mean(dim=1, keepdim=True)
        stacked = torch.stack((a, c.reshape(c.shape[0], -1)), dim=2)
        return self.fc(torch.cat((stacked.flatten(1), b), 1))

    def reference(self, g: RefDAG):
        inp = ref_input(g, self.input_shape)
        x0 = ref_affine(g, inp[0:1], 2.5, 0.3)
        x12 = ref_affine(g, ref_affine(g, inp[1:], -0.25), 1.0, -1.0)
        y = ref_relu(g, ref_conv(g, ref_cat(x0, x12), self.conv))
        a, b = y[:1], y[1:]
        a = a.transpose(0, 2, 1).reshape(-1)
        b = ref_reduce(g, ref_adaptive_maxpool(g, b, (2, 1)), (2,), "sum").reshape(-1)
        c = ref_affine(g, ref_affine(g, ref_reduce(g, y, (0,), "mean", keepdim=True), 2.0), -1.0, 3.0)
        stacked = np.stack((a, c.reshape(-1)), axis=1)
        return inp, ref_linear(g, ref_cat(stacked.reshape(-1), b), self.fc)


NETS = {"dense": NetDense, "shuffle": NetShuffle, "index": NetIndex}


def make(name: str, seed: int = 0, scale: float = 0.6, bias_scale: float | None = None) -> nn.Module:
    return randomize(NETS[name](), seed, scale, bias_scale).eval()


@pytest.mark.parametrize("regime", sorted(REGIMES))
@pytest.mark.parametrize("name", sorted(NETS))
def test_new_operations_match_explicit_path_enumeration(name: str, regime: str) -> None:
    assert_matches_enumeration(make(name, 0, *REGIMES[regime]))


def test_gbrg24_walks_the_new_operations_as_their_modules() -> None:
    # the original convention knows only modules: a functional pool or x.mean must give the value
    # of the same network written with modules (the mean as its adaptive average pool)
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 3, 3), nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(F.max_pool2d(F.relu(self.conv(x)), 2).mean((2, 3)))

    functional = randomize(Functional(), 3).eval()
    modules = nn.Sequential(
        functional.conv, nn.ReLU(), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), functional.fc
    )
    for convention in ("gbrg24", "exact"):
        a = log10s(functional, (1.0, 2.0, 4.0), input_shape=(1, 6, 6), convention=convention)
        b = log10s(modules, (1.0, 2.0, 4.0), input_shape=(1, 6, 6), convention=convention)
        assert a == pytest.approx(b, rel=1e-12), convention


# ============================================================================ refusals
class Gated(nn.Module):
    """A squeeze-and-excitation gate (a product of activations), a mean over the batch and a
    division by activations."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 3), nn.Linear(2, 2)

    def forward(self, x):
        y = F.relu(self.conv(x))
        y = y * y.mean((2, 3), keepdim=True)
        return self.fc(y.mean((2, 3)) - y.mean(0).sum()) / y.amax((2, 3))


def test_products_of_activations_and_batch_reductions_are_refused_by_name() -> None:
    with pytest.raises(UnsupportedModelError) as err:
        path_norms(Gated(), [1.0], (1, 5, 5))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("path-norm is not defined for Gated: ")
    assert "product of two activations" in msg and "mean over the batch dimension" in msg
    assert "division by an activation" in msg
    # the supported parts are not named
    assert "relu" not in msg.split(". Supported")[0] and "conv" not in msg.split(". Supported")[0]


def test_a_constant_tensor_made_in_forward_is_refused() -> None:
    class Offset(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(x + torch.ones(x.shape[-1]))

    with pytest.raises(UnsupportedModelError, match=r"ones \(makes a tensor that is not an activation\)"):
        path_norms(Offset(), [1.0], (3,))


# ============================================================================ rescaling invariance
def _small_densenet() -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.DenseNet(
        growth_rate=4, block_config=(2, 2), num_init_features=6, bn_size=2, num_classes=3
    )
    return randomize(model, 11, scale=0.4).double().eval()


@pytest.mark.parametrize("lam", [6.0, 0.1])
def test_rescaling_inside_a_torchvision_dense_block_leaves_the_norm_unchanged(lam: float) -> None:
    model = _small_densenet()
    scaled = copy.deepcopy(model)
    layer = scaled.features.denseblock2.denselayer2
    with torch.no_grad():
        layer.norm2.weight[3] *= lam  # norm2 channel 3 -> relu2 -> conv2's input channel 3
        layer.norm2.bias[3] *= lam
        layer.conv2.weight[:, 3] /= lam
        layer.norm1.weight[5] *= lam  # a channel of the concatenated input -> relu1 -> conv1
        layer.norm1.bias[5] *= lam
        layer.conv1.weight[:, 5] /= lam
    _assert_invariant(model, scaled, (3, 32, 32), qs=(0.0, 1.0, 2.0, 4.0))


def _small_shufflenet() -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.ShuffleNetV2(
        stages_repeats=[2, 1, 1], stages_out_channels=[4, 8, 16, 32, 16], num_classes=3
    )
    return randomize(model, 12, scale=0.4).double().eval()


@pytest.mark.parametrize("lam", [6.0, 0.1])
def test_rescaling_across_torchvision_shuffle_units_leaves_the_norm_unchanged(lam: float) -> None:
    """A ReLU channel j of stage2[0]'s right branch lands at 4 + j of the concatenation and at
    2j + 1 after the shuffle. j = 2 goes to the second half of stage2[1] (its right branch's first
    conv, input 5 - 4 = 1); j = 0 to the first half, passed through stage2[1] to position 1 of its
    concatenation, shuffled to 2, and read by both branches of the stride-2 stage3[0]."""
    model = _small_shufflenet()
    scaled = copy.deepcopy(model)
    unit, nxt, down = scaled.stage2[0], scaled.stage2[1], scaled.stage3[0]
    with torch.no_grad():
        for j in (2, 0):
            unit.branch2[6].weight[j] *= lam  # BN before the branch's last ReLU
            unit.branch2[6].bias[j] *= lam
        nxt.branch2[0].weight[:, 1] /= lam
        down.branch1[0].weight[2] /= lam  # depthwise: output channel 2 reads input channel 2
        down.branch2[0].weight[:, 2] /= lam
        unit.branch2[1].weight[1] *= lam  # inside a branch: BN -> ReLU -> depthwise channel 1
        unit.branch2[1].bias[1] *= lam
        unit.branch2[3].weight[1] /= lam
    _assert_invariant(model, scaled, (3, 32, 32), qs=(0.0, 1.0, 2.0, 4.0))
    broken = copy.deepcopy(model)  # the test can fail: compensating the wrong shuffled channel
    with torch.no_grad():
        broken.stage2[0].branch2[6].weight[2] *= lam
        broken.stage2[0].branch2[6].bias[2] *= lam
        broken.stage2[1].branch2[0].weight[:, 0] /= lam
    assert (
        rel(log10s(broken, [1.0], input_shape=(3, 32, 32))[0], log10s(model, [1.0], input_shape=(3, 32, 32))[0]) > 1e-6
    )


# ============================================================================ every torchvision model
# Families whose path-norm is computed, and for the others the first operation the refusal names
# with the module it is in (torchvision 0.29's classification models, default constructors).
COMPUTED = (
    "alexnet", "densenet", "googlenet", "inception_v3", "mnasnet", "regnet_x_", "resnet", "resnext",
    "shufflenet_v2", "squeezenet", "vgg", "wide_resnet",
)  # fmt: skip
REFUSED = {
    "convnext": ("GELU in features.1.0.block.4", "layer_norm in features.0.1"),
    "efficientnet_b": ("SiLU in features.0.2", "Sigmoid in features.1.0.block.1.scale_activation"),
    "efficientnet_v2": ("SiLU in features.0.2", "stochastic_depth in features.1.0.stochastic_depth"),
    "maxvit": ("GELU in stem.0.2",),
    "mobilenet_v2": ("ReLU6 in features.0.2",),
    "mobilenet_v3": ("Hardswish in features.0.2", "Hardsigmoid in features."),
    "regnet_y_": ("Sigmoid in trunk_output.block1.block1-0.f.se.scale_activation", "product of two activations"),
    "swin": ("LayerNorm in features.0.2",),
    "vit_": (
        "LayerNorm in encoder.layers.encoder_layer_0.ln_1",
        "MultiheadAttention in encoder.layers.encoder_layer_0.self_attention",
    ),
}
CLASSIFICATION_MODELS = torchvision.models.list_models(module=torchvision.models)


def _expected(name: str) -> str | tuple[str, ...]:
    if name.startswith(COMPUTED):
        return "computed"
    for prefix, named in REFUSED.items():
        if name.startswith(prefix):
            return named
    raise AssertionError(f"torchvision model {name} is in neither table: compute it and add it to one")


@contextlib.contextmanager
def _no_initialisation() -> Iterator[None]:
    """torchvision's initialisers as no-ops while a model is built: building takes only memory
    (untouched pages), where initialising ~100M-600M parameters costs seconds per model."""
    names = [n for n in dir(nn.init) if n.endswith("_") and not n.startswith("_")]
    with mock.patch.multiple(nn.init, **{n: (lambda tensor, *a, **k: tensor) for n in names}):
        yield


def _build(name: str) -> nn.Module:
    # init_weights=False: Inception v3 warns that its default initialisation will change
    options = {"init_weights": False} if name in ("inception_v3", "googlenet") else {}
    with _no_initialisation():
        return torchvision.models.get_model(name, **options).eval()


def _fill(model: nn.Module) -> nn.Module:
    """Finite random weights (uniform: cheaper than normal on large tensors), BatchNorm
    statistics of a trained network."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.05, 0.05, generator=g)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
    return model


@pytest.mark.parametrize("name", CLASSIFICATION_MODELS)
def test_every_torchvision_classification_model_is_computed_or_refused_by_name(name: str) -> None:
    expected = _expected(name)
    model = _build(name)
    if expected == "computed":
        shape = (3, 80, 80) if name == "inception_v3" else (3, 64, 64)
        norm = path_norms(_fill(model), [1.0], shape)[0]
        assert math.isfinite(norm.log10) and norm.value > 0, norm
        return
    with pytest.raises(UnsupportedModelError) as err:
        path_norms(model, [1.0], (3, 224, 224))  # refused from the trace: weights are never read
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"path-norm is not defined for {type(model).__name__}: ")
    for part in expected:
        assert part in msg, (part, msg[:400])


def test_inception_v3_with_its_input_transform_is_computed() -> None:
    # the pretrained Inception v3 normalises its input inside forward: constant scales and shifts
    # of picked channels, computed as edges and biases (the paths they start count)
    with _no_initialisation():
        plain = _fill(torchvision.models.inception_v3(init_weights=False, aux_logits=False).eval())
    transformed = copy.deepcopy(plain)
    transformed.transform_input = True
    a, b = (path_norms(m, [1.0, 2.0], (3, 80, 80)) for m in (plain, transformed))
    assert all(math.isfinite(n.log10) for n in a + b) and a[0].log10 != b[0].log10


# ============================================================================ float32 against float64
def _realistic(name: str) -> nn.Module:
    """torchvision's initialisation with BatchNorm statistics and affine parameters of a trained
    network (non-zero shifts), as bench/pathnorm.py does."""
    torch.manual_seed(0)
    model = torchvision.models.get_model(name).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    return model


@pytest.mark.parametrize("name", ["densenet121", "mnasnet1_0", "shufflenet_v2_x1_0"])
@pytest.mark.parametrize("trained_statistics", [False, True], ids=["init", "trained-bn"])
def test_float32_agrees_with_float64_on_the_new_families(name: str, trained_statistics: bool) -> None:
    if trained_statistics:
        model = _realistic(name)
    else:
        torch.manual_seed(0)
        model = torchvision.models.get_model(name).eval()  # BN shifts exactly 0, zero classifier bias
    qs = (1.0, 2.0, 4.0, 16.0)
    f32, f64 = path_norms(model, qs, (3, 224, 224)), path_norms(model, qs, (3, 224, 224), dtype=torch.float64)
    for a, b in zip(f32, f64):
        assert math.isfinite(b.log10), (b.q, b.log10)
        assert rel(a.log10, b.log10) <= 1e-6, (b.q, a.log10, b.log10)


def test_an_in_place_update_read_again_later_is_refused() -> None:
    # fx records the value before the update where the model reads the value after it
    class Aliased(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 3)

        def forward(self, x):
            x = F.relu(self.a(x))
            y = x.add_(self.b(x))
            return x * 2 + y

    class Fine(Aliased):
        def forward(self, x):
            x = F.relu(self.a(x))
            x += self.b(x)  # torchvision's residual: nothing reads the old value afterwards
            return x * 2

    with pytest.raises(
        UnsupportedModelError, match=r"Tensor\.add_ updates an activation in place .* in the model's forward"
    ):
        path_norms(Aliased(), [1.0], (3,))
    assert math.isfinite(path_norms(Fine(), [1.0], (3,))[0].log10)


@pytest.mark.parametrize("duplicate", ["expand", "repeat"])
def test_duplicated_neurons_are_edges_of_weight_one(duplicate: str) -> None:
    # x.expand / x.repeat copy each neuron three times: the same paths as a Linear whose weight
    # stacks three identities (zeros elsewhere start and carry no path)
    class Copies(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(3, 2), nn.Linear(6, 1)

        def forward(self, x):
            h = F.relu(self.a(x))
            h = h.unsqueeze(1).expand(-1, 3, -1).flatten(1) if duplicate == "expand" else h.repeat(1, 3)
            return self.b(h)

    model = randomize(Copies(), 2).eval()
    copier = nn.Linear(2, 6, bias=False)
    with torch.no_grad():
        copier.weight.copy_(torch.eye(2).repeat(3, 1))
    explicit = nn.Sequential(model.a, nn.ReLU(), copier, model.b)
    x = torch.randn(4, 3)
    torch.testing.assert_close(model(x), explicit(x))
    qs = (0.0, 1.0, 2.0, 3.7)
    for got, want in zip(log10s(model, qs, input_shape=(3,)), log10s(explicit, qs, input_shape=(3,))):
        assert rel(got, want) <= 1e-12
