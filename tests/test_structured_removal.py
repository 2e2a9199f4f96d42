"""Channel groups, physical filter removal and the global ranking (sparselab.structured).

The reference for removal is the same network with the dropped filters *killed*: conv rows and
BatchNorm scale and shift set to zero, so the channel is exactly 0 after its BatchNorm. Removing
the channel physically must compute the same function, and give the same path-norm.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from sparselab.metrics.pathnorm import path_norm
from sparselab.models import build_model
from sparselab.structured.dependency import channel_groups
from sparselab.structured.ranking import (
    minimum_widths,
    ranking_rows,
    remaining_rows,
    round_fractions_from_thresholds,
    select_filters,
)
from sparselab.structured.removal import narrow, prune_filters, widths

FAMILIES = {
    "vgg13_relu_bn": ("vgg13_bn", {"width": 0.125, "relu_before_bn": True}, (3, 32, 32)),
    "mobilenet_v1": ("mobilenet_v1", {"width": 0.125}, (3, 32, 32)),
    "cifar_resnet20": ("cifar_resnet20", {"width": 4}, (3, 16, 16)),
    "resnet18": ("resnet18", {"width": 0.0625, "small_input": True}, (3, 16, 16)),
}


def randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(torch.randn(n, generator=g) * 0.3)
    return model.eval()


def family(name: str) -> tuple[nn.Module, tuple[int, int, int]]:
    arch, kwargs, shape = FAMILIES[name]
    torch.manual_seed(0)
    return randomized(build_model(arch, 10, shape, **kwargs)), shape


def random_keep(groups, seed: int = 1) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    keep = {}
    for group in groups:
        k = torch.rand(group.width, generator=g) < 0.6
        k[int(torch.randint(group.width, (1,), generator=g))] = True
        keep[group.producer] = k
    return keep


def killed(model: nn.Module, groups, keep):  # type: ignore[no-untyped-def]
    """The reference: every dropped filter zeroed (conv row, BN scale and shift), nothing removed."""
    return prune_filters(model, [dataclasses.replace(g, removable=False) for g in groups], keep)[0]


# ============================================================================ channel groups
def test_vgg_groups_follow_relu_then_batch_norm_and_reach_the_next_conv() -> None:
    model, shape = family("vgg13_relu_bn")
    groups = channel_groups(model, shape)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert [g.producer for g in groups] == convs and all(g.removable for g in groups)
    first, last = groups[0], groups[-1]
    assert first.batch_norms == ["features.2"] and first.consumers == [("features.3", 1)]  # conv, ReLU, BN
    assert last.consumers == [("classifier.2", 1)]  # pooled to 1x1, then the Linear


def test_mobilenet_depthwise_convs_are_tied_to_their_input_channels() -> None:
    model, shape = family("mobilenet_v1")
    groups = channel_groups(model, shape)
    assert len(groups) == 14 and all(g.removable for g in groups)  # stem + 13 pointwise
    assert groups[0].depthwise == ["features.1.0"] and groups[0].rows == 2
    assert groups[0].batch_norms == ["features.0.1", "features.1.1"]
    assert groups[0].consumers == [("features.1.3", 1)]
    assert groups[-1].depthwise == [] and groups[-1].rows == 1


@pytest.mark.parametrize("name", ["cifar_resnet20", "resnet18"])
def test_resnet_residual_stream_producers_are_masked_inner_convs_removed(name: str) -> None:
    model, shape = family(name)
    groups = {g.producer: g for g in channel_groups(model, shape)}
    for producer, g in groups.items():
        inner = producer.endswith(".conv1") and producer != "conv1"
        assert g.removable == inner, (producer, g.reason)
        if not inner:
            assert "residual sum" in g.reason


def test_linear_after_flattening_a_feature_map_reads_h_times_w_inputs_per_channel() -> None:
    model = randomized(
        nn.Sequential(
            nn.Conv2d(2, 5, 3, padding=1, bias=False),
            nn.BatchNorm2d(5),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(5 * 4 * 4, 3),
        )
    )
    (group,) = channel_groups(model, (2, 4, 4))
    assert group.consumers == [("4", 16)]
    keep = {"0": torch.tensor([True, False, True, False, True])}
    pruned, _ = prune_filters(model, [group], keep)
    assert pruned[4].in_features == 48
    x = torch.randn(3, 2, 4, 4)
    assert torch.allclose(pruned(x), killed(model, [group], keep)(x), atol=1e-6)


# ============================================================================ removal
@pytest.mark.parametrize("name", list(FAMILIES))
def test_removal_computes_what_the_killed_network_computes(name: str) -> None:
    model, shape = family(name)
    groups = channel_groups(model, shape)
    keep = random_keep(groups)
    pruned, mask = prune_filters(model, groups, keep)
    reference = killed(model, groups, keep)
    x = torch.randn(4, *shape)
    with torch.no_grad():
        assert torch.allclose(pruned(x), reference(x), rtol=1e-4, atol=1e-5)
    # removable groups shrank to exactly the kept count, maskable ones kept their width
    for g in groups:
        width = pruned.get_submodule(g.producer).out_channels
        assert width == (int(keep[g.producer].sum()) if g.removable else g.width), g.producer
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())
    # the mask covers exactly the maskable groups' dropped filters, and holds in the pruned model
    expected = {f"{g.producer}.weight" for g in groups if not g.removable and not keep[g.producer].all()}
    assert {
        n for n in mask if n.endswith(".weight") and "bn" not in n and "downsample.1" not in n and "shortcut.1" not in n
    } == expected
    params = dict(pruned.named_parameters())
    for n in mask:
        assert (params[n][~mask[n]] == 0).all()


@pytest.mark.parametrize("name", ["vgg13_relu_bn", "cifar_resnet20"])
def test_pruned_model_has_the_path_norm_of_the_killed_one(name: str) -> None:
    model, shape = family(name)
    groups = channel_groups(model, shape)
    keep = random_keep(groups, seed=3)
    pruned, _ = prune_filters(model, groups, keep)
    for q in (1.0, 2.0):
        a, b = path_norm(pruned, q, shape), path_norm(killed(model, groups, keep), q, shape)
        assert math.isclose(a, b, rel_tol=1e-5), (q, a, b)


def test_vgg_parameter_count_after_removal_matches_the_formula() -> None:
    model, shape = family("vgg13_relu_bn")
    groups = channel_groups(model, shape)
    keep = random_keep(groups, seed=5)
    pruned, _ = prune_filters(model, groups, keep)
    kept = [int(keep[g.producer].sum()) for g in groups]
    expected, c_in = 0, 3
    for k in kept:
        expected += 9 * c_in * k + 2 * k  # conv (no bias) + BN scale and shift
        c_in = k
    expected += c_in * 10 + 10  # Linear
    assert sum(p.numel() for p in pruned.parameters()) == expected


def test_the_model_given_is_not_modified() -> None:
    model, shape = family("cifar_resnet20")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    groups = channel_groups(model, shape)
    prune_filters(model, groups, random_keep(groups))
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("name", ["vgg13_relu_bn", "mobilenet_v1", "cifar_resnet20"])
def test_shape_spec_rebuilds_the_pruned_model(name: str) -> None:
    model, shape = family(name)
    groups = channel_groups(model, shape)
    pruned, mask = prune_filters(model, groups, random_keep(groups, seed=7))
    spec = widths(pruned, channel_groups(pruned, shape))
    arch, kwargs, _ = FAMILIES[name]
    dense = build_model(arch, 10, shape, **kwargs)
    rebuilt = narrow(dense, channel_groups(dense, shape), spec)
    rebuilt.load_state_dict(pruned.state_dict())
    x = torch.randn(2, *shape)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), pruned(x))


def test_bad_keep_sets_fail_clearly() -> None:
    model, shape = family("cifar_resnet20")
    groups = channel_groups(model, shape)
    with pytest.raises(KeyError, match="no channel group"):
        prune_filters(model, groups, {"fc": torch.tensor([0])})
    with pytest.raises(ValueError, match="at least one filter"):
        prune_filters(model, groups, {"layer1.0.conv1": torch.zeros(4, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"in \[0, 4\)"):
        prune_filters(model, groups, {"layer1.0.conv1": torch.tensor([0, 4])})
    with pytest.raises(ValueError, match="masked instead"):
        narrow(model, groups, {"layer1.0.conv2": 2})


# ============================================================================ ranking
def test_per_round_amounts_compound_to_the_target_with_linear_compression() -> None:
    rows_0, target, rounds = 2944, 0.75, 25  # VGG-13's filters
    left = [remaining_rows(rows_0, target, rounds, k) for k in range(rounds + 1)]
    assert left[0] == rows_0 and left[-1] == 736  # exactly 25%: no truncation drift
    ratios = [rows_0 / n for n in left]
    steps = [b - a for a, b in zip(ratios, ratios[1:])]
    assert all(abs(s - 0.12) < 6e-3 for s in steps)  # +0.12 per round, up to rounding to whole rows
    # each round removes p / (k p + n (1 - p)) of what is left (the notes' 0.10714, 0.09677, ...)
    relative = [1 - b / a for a, b in zip(left, left[1:])]
    assert relative[:5] == pytest.approx([0.10714, 0.09677, 0.08824, 0.08108, 0.075], abs=1e-3)
    assert round_fractions_from_thresholds([0.1, 0.5, 0.8]) == pytest.approx([0.1, 4 / 9, 0.6])
    with pytest.raises(ValueError):
        remaining_rows(100, 1.0, 5, 1)


def _group(name: str, width: int, rows: int = 1):  # type: ignore[no-untyped-def]
    from sparselab.structured.dependency import ChannelGroup

    return ChannelGroup(name, width, depthwise=["dw"] * (rows - 1))


def test_global_ranking_prunes_the_lowest_raw_scores_across_layers() -> None:
    groups = [_group("a", 4), _group("b", 4)]
    scores = {"a": torch.tensor([0.5, 0.1, 0.9, 0.3]), "b": torch.tensor([0.2, 0.8, 0.05, 0.7])}
    keep = select_filters(scores, groups, prune_rows=3)
    assert keep["a"].tolist() == [True, False, True, True] and keep["b"].tolist() == [False, True, False, True]


def test_minimum_width_keeps_the_most_important_filters_not_the_last_indices() -> None:
    groups = [_group("a", 6), _group("b", 2)]
    scores = {"a": torch.tensor([0.9, 0.01, 0.02, 0.03, 0.04, 0.05]), "b": torch.tensor([5.0, 6.0])}
    keep = select_filters(scores, groups, prune_rows=6, minimum={"a": 2, "b": 1})
    assert keep["a"].tolist() == [True, False, False, False, False, True]  # best two: 0.9 and 0.05
    assert keep["b"].tolist() == [False, True]
    assert minimum_widths([_group("x", 64), _group("y", 512)]) == {"x": 4, "y": 26}  # the notes' 5% rule


def test_ties_break_by_layer_order_then_index_and_dead_filters_are_not_reselected() -> None:
    groups = [_group("a", 3), _group("b", 3)]
    scores = {"a": torch.zeros(3), "b": torch.zeros(3)}
    alive = {"a": torch.tensor([True, True, True]), "b": torch.tensor([False, True, True])}
    keep = select_filters(scores, groups, prune_rows=2, minimum={"a": 1, "b": 1}, alive=alive)
    assert keep["a"].tolist() == [True, False, False]  # a's lower index counts as more important: 1, 2 go
    assert keep["b"].tolist() == [False, True, True]
    assert ranking_rows(groups, alive) == 5


def test_depthwise_rows_count_twice_and_protected_groups_are_never_ranked() -> None:
    groups = [_group("stem", 4), _group("pw", 4, rows=2)]
    scores = {"stem": torch.tensor([0.0, 0.0, 0.0, 0.0]), "pw": torch.tensor([0.1, 0.2, 0.3, 0.4])}
    keep = select_filters(scores, groups, prune_rows=4, protect=["stem"])
    assert keep["stem"].all() and keep["pw"].tolist() == [False, False, True, True]
    assert ranking_rows(groups, protect=["stem"]) == 8


# ============================================================================ checkpoint format
@pytest.mark.parametrize("name", ["mobilenet_v1", "cifar_resnet20"])
def test_pruned_model_saves_and_loads_through_the_checkpoint_format(name: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sparselab.io.checkpoint import read_meta
    from sparselab.models.checkpoint import load_checkpoint, save_checkpoint
    from sparselab.models.spec import ArchSpec

    model, shape = family(name)
    arch, kwargs, _ = FAMILIES[name]
    groups = channel_groups(model, shape)
    pruned, mask = prune_filters(model, groups, random_keep(groups, seed=11))
    spec = ArchSpec(arch, 10, shape, dict(kwargs)).with_widths(widths(pruned, channel_groups(pruned, shape)))
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, pruned, spec, mask=mask if len(mask) else None, meta={"method": "structured"})
    assert read_meta(path)["arch"]["widths"] == spec.widths
    ckpt = load_checkpoint(path)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        assert torch.equal(ckpt.model.eval()(x), pruned(x))
    assert (ckpt.mask is None) == (len(mask) == 0)
    if ckpt.mask is not None:
        assert ckpt.mask == mask
    assert math.isclose(path_norm(ckpt.model, 1.0, shape), path_norm(pruned, 1.0, shape), rel_tol=1e-6)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_per_parameter_tensors_are_cut_exactly_like_the_parameters(name: str) -> None:
    from sparselab.structured.removal import slice_like_parameters

    model, shape = family(name)
    groups = channel_groups(model, shape)
    keep = random_keep(groups, seed=13)
    pruned, _ = prune_filters(model, groups, keep)
    sliced = slice_like_parameters(model, groups, keep, {n: p.detach() for n, p in model.named_parameters()})
    expected = dict(pruned.named_parameters())
    assert sliced.keys() == expected.keys()
    for n, t in sliced.items():
        assert torch.equal(t, expected[n].detach()), n
