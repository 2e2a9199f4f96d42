"""The Mask object and magnitude pruning, against brute-force references on tiny networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparselab.sparsity.magnitude import magnitude_mask, remaining_to_total
from sparselab.sparsity.mask import Mask, prunable_parameters


def tiny_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3),
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 5),
        nn.ReLU(),
        nn.Linear(5, 2),
    )


def test_prunable_parameters_are_conv_and_linear_weights_in_order():
    assert prunable_parameters(tiny_net()) == ["0.weight", "4.weight", "6.weight"]
    assert prunable_parameters(tiny_net(), exclude=["6.weight"]) == ["0.weight", "4.weight"]
    with pytest.raises(KeyError, match="1.weight"):
        prunable_parameters(tiny_net(), exclude=["1.weight"])


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9, 1.0])
def test_layerwise_prunes_exactly_the_smallest_in_every_layer(sparsity):
    net = tiny_net()
    mask = magnitude_mask(net, sparsity, scope="layerwise")
    for name, w in net.named_parameters():
        if name not in mask:
            continue
        flat = w.detach().abs().flatten()
        k = round(sparsity * flat.numel())
        expected = torch.ones_like(flat, dtype=torch.bool)
        expected[flat.argsort()[:k]] = False  # brute force: drop the k smallest |w|
        assert torch.equal(mask[name].flatten(), expected), name
        assert int((~mask[name]).sum()) == k


def test_global_uses_one_threshold_across_layers():
    net = tiny_net()
    mask = magnitude_mask(net, 0.7, scope="global")
    params = dict(net.named_parameters())
    kept = torch.cat([params[n].detach().abs().flatten()[mask[n].flatten()] for n in mask])
    pruned = torch.cat([params[n].detach().abs().flatten()[~mask[n].flatten()] for n in mask])
    assert kept.min() >= pruned.max()
    assert len(pruned) == round(0.7 * (len(kept) + len(pruned)))
    assert mask.sparsity == pytest.approx(0.7, abs=1 / mask.numel)
    # layers end up with different sparsities: the point of global pruning
    assert len({round(v["sparsity"], 3) for v in mask.report()["layers"].values()}) > 1


def test_ties_are_broken_deterministically_with_exact_counts():
    net = nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    a = magnitude_mask(net, 0.5, scope="layerwise", names=["weight"])
    b = magnitude_mask(net, 0.5, scope="layerwise", names=["weight"])
    assert a == b and a.num_active == 8


def test_iterative_pruning_keeps_earlier_pruned_weights_out():
    net = tiny_net()
    first = magnitude_mask(net, 0.5, scope="global")
    first.apply_(net)
    with torch.no_grad():  # regrowth pressure: masked-out weights become huge, they must stay out
        for name, p in net.named_parameters():
            if name in first:
                p.add_(torch.where(first[name], torch.zeros_like(p), torch.full_like(p, 100.0)))
    second = magnitude_mask(net, remaining_to_total(0.5, 0.2), scope="global", current=first)
    for name in first:
        assert not (second[name] & ~first[name]).any(), f"{name}: a pruned weight came back"
    assert second.sparsity == pytest.approx(0.6, abs=1 / second.numel)
    with pytest.raises(ValueError, match="below"):
        magnitude_mask(net, 0.3, scope="global", current=first)


def test_remaining_to_total_compounds():
    s = 0.0
    for _ in range(3):
        s = remaining_to_total(s, 0.2)
    assert s == pytest.approx(1 - 0.8**3)


def test_apply_from_zeros_and_report_round_trip():
    net = tiny_net()
    mask = magnitude_mask(net, {"0.weight": 0.2, "4.weight": 0.5, "6.weight": 0.9}, scope="layerwise")
    mask.apply_(net)
    assert Mask.from_zeros(net) == mask
    report = mask.report()
    assert report["layers"]["6.weight"]["active"] == 1  # 10 weights, 9 pruned
    assert report["active"] == mask.num_active and report["numel"] == mask.numel


def test_bound_mask_enforces_after_an_optimizer_step():
    net = tiny_net()
    mask = magnitude_mask(net, 0.8, scope="layerwise")
    bound = mask.bind(net)
    bound.enforce()
    opt = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-3)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(4, 1, 6, 6)).sum().backward()
        opt.step()
        bound.enforce()
    assert Mask.from_zeros(net, mask.names()) == mask


def test_mask_must_fit_the_model():
    mask = Mask({"4.weight": torch.ones(2, 2, dtype=torch.bool), "9.weight": torch.ones(1, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"no parameter '9.weight'.*4.weight: mask \(2, 2\) vs weight \(5, 48\)"):
        mask.apply_(tiny_net())


def test_global_rejects_per_layer_targets_and_unknown_scope():
    with pytest.raises(ValueError, match="global pruning takes one sparsity"):
        magnitude_mask(tiny_net(), {"0.weight": 0.5}, scope="global")
    with pytest.raises(ValueError, match="unknown pruning scope"):
        magnitude_mask(tiny_net(), 0.5, scope="random")  # type: ignore[arg-type]
