"""Parameter and FLOP counts (sparselab.metrics.complexity) against closed forms."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparselab.metrics.complexity import complexity, count_flops, flops_sparse, theoretical_speedup
from sparselab.models import build_model
from sparselab.sparsity.mask import Mask
from sparselab.structured.dependency import channel_groups
from sparselab.structured.removal import prune_filters


def test_flops_of_a_conv_and_a_linear_match_the_closed_form() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5))
    conv = 2 * 3 * 9 * 8 * 6 * 6  # 2 per multiply-add
    linear = 2 * 288 * 5
    assert count_flops(model, (3, 6, 6)) == conv + linear
    c = complexity(model, (3, 6, 6))
    assert c.params == 3 * 9 * 8 + 288 * 5 + 5 and c.params_alive == c.params and c.macs == (conv + linear) // 2


def test_vgg13_cifar_macs_match_the_reference_count() -> None:
    # the gradflow notes' ptflops count (229.14 M MACs, 10 classes) includes BN (2/elem), ReLU and
    # pooling (1/elem); torch counts convs and matmuls only: 228.0 M of them are conv + linear MACs
    model = build_model("vgg13_bn", 10, (3, 32, 32), relu_before_bn=True)
    convs, c_in, hw = 0, 3, 32
    for v in (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"):
        if v == "M":
            hw //= 2
        else:
            convs += 9 * c_in * v * hw * hw
            c_in = v
    assert count_flops(model, (3, 32, 32)) // 2 == convs + 512 * 10
    assert 227e6 < convs < 229.14e6


def test_masked_residual_filters_are_counted_as_computed_and_left_out_as_alive() -> None:
    torch.manual_seed(0)
    model = build_model("cifar_resnet20", 10, (3, 8, 8), width=4).eval()
    groups = channel_groups(model, (3, 8, 8))
    keep = {
        "layer1.0.conv2": torch.tensor([True, False, True, True]),
        "layer1.0.conv1": torch.tensor([True, True, False, False]),
    }
    pruned, mask = prune_filters(model, groups, keep)
    dense = complexity(model, (3, 8, 8))
    c = complexity(pruned, (3, 8, 8), mask)
    # conv1 lost 2 filters physically: 2 rows of (4*9) weights + 2 BN pairs, and 2 input channels of conv2
    removed = 2 * 4 * 9 + 2 * 2 + 4 * 2 * 9
    assert c.params == dense.params - removed
    # conv2's dead row (2 inputs * 9 weights) and its BN scale/shift are masked
    assert c.params_alive == c.params - (2 * 9 + 2)
    assert c.flops_alive == c.flops - 2 * 2 * 9 * 8 * 8
    assert c.flops < dense.flops
    assert c.compression(dense.params) == pytest.approx(dense.params / c.params_alive)


def test_sparse_flops_skip_each_zero_weight_at_every_output_position() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5))
    conv_mask = torch.ones(8, 3, 3, 3, dtype=torch.bool)
    conv_mask[0, 0, 0, :] = False  # 3 zero weights, each used at 6*6 output positions
    linear_mask = torch.ones(5, 288, dtype=torch.bool)
    linear_mask[2, :10] = False  # 10 zero weights, used once (batch 1)
    mask = Mask({"0.weight": conv_mask, "3.weight": linear_mask})
    dense = count_flops(model, (3, 6, 6))
    assert flops_sparse(model, (3, 6, 6), None) == dense
    assert flops_sparse(model, (3, 6, 6), mask) == dense - 2 * 3 * 36 - 2 * 10
    assert theoretical_speedup(dense, dense // 4) == pytest.approx(4.0, rel=1e-3)
    with pytest.raises(ValueError, match="positive"):
        theoretical_speedup(dense, 0)


def test_sparse_flops_of_a_half_pruned_mlp_halve_its_matmuls() -> None:
    model = nn.Sequential(nn.Linear(16, 8, bias=False), nn.ReLU(), nn.Linear(8, 4, bias=False))
    mask = Mask({n: torch.arange(p.numel()).reshape(p.shape) % 2 == 0 for n, p in model.named_parameters()})
    assert flops_sparse(model, (16,), mask) * 2 == count_flops(model, (16,))
