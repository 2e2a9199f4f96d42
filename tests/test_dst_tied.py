"""Tied (HashedNet-like, balanced) weights of the DSR baseline, checked against explicit references."""

from __future__ import annotations

import math

import pytest
import torch
from torch import fx, nn

from sparselab.dst.tied import (
    TiedWeight,
    balanced_index,
    bank_of,
    bank_size,
    he_fan_out_normal_,
    tie_weights,
    tied_modules,
    tied_parameter_count,
    uniform_fan_in_,
)
from sparselab.models.lenet import lenet300_100


def conv_net(seed: int = 0, bias: bool = True) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=bias),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 6, 3, stride=2, bias=bias),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 3 * 3, 10, bias=bias),
    )


CONV_TIED = ["0", "3", "6"]


def untied_copy(model: nn.Module) -> nn.Module:
    """The same network with every tied weight materialised as an ordinary dense Parameter."""
    dense = conv_net(bias=model[0].bias is not None)
    state = {k: v for k, v in model.state_dict().items() if "parametrizations" not in k}
    for name in CONV_TIED:
        state[f"{name}.weight"] = model.get_submodule(name).weight.detach().clone()
    dense.load_state_dict(state)
    return dense


# ---------------------------------------------------------------------------------- assignment
@pytest.mark.parametrize(("n", "sparsity"), [(72, 0.0), (72, 0.5), (72, 0.7), (100, 0.9), (1000, 0.97), (72, 0.999)])
def test_bank_size_and_balanced_usage(n, sparsity):
    k = bank_size(n, sparsity)
    assert k == max(1, round((1 - sparsity) * n))
    index = balanced_index(n, k, torch.Generator().manual_seed(3))
    assert index.dtype == torch.int64 and index.shape == (n,)
    counts = torch.bincount(index, minlength=k)
    assert counts.numel() == k  # no entry beyond k-1
    assert set(counts.tolist()) <= {n // k, math.ceil(n / k)}
    assert int((counts == math.ceil(n / k)).sum()) == (n % k or k)  # exactly n mod k entries get one more


def test_tie_weights_uses_exact_k_per_layer_and_shuffles_positions():
    net = conv_net()
    sizes = tie_weights(net, CONV_TIED, 0.7, seed=1)
    for name, module in net.named_modules():
        if name not in CONV_TIED:
            continue
        n = module.weight.numel()
        assert sizes[name] == round(0.3 * n) == bank_of(module).numel()
        index = module.parametrizations.weight[0].index
        assert torch.bincount(index).min() >= n // sizes[name]
        assert torch.unique(index).numel() == sizes[name]
        assert not torch.equal(index, torch.arange(n) % sizes[name])  # dealt after a shuffle, not in order
    assert sizes == {"0": 65, "3": 130, "6": 162}


# ---------------------------------------------------------------------------------- sharing and gradients
def test_tied_positions_share_one_stored_value():
    net = conv_net()
    tie_weights(net, CONV_TIED, 0.8, seed=0)
    layer = net[3]
    bank, index = bank_of(layer), layer.parametrizations.weight[0].index
    assert torch.equal(layer.weight, bank[index].view(layer.weight.shape))
    before = layer.weight.detach().clone()
    with torch.no_grad():
        bank[5] = 42.0
    after = layer.weight.detach()
    changed = (after != before).flatten()
    assert torch.equal(changed, index == 5)
    assert torch.all(after.flatten()[index == 5] == 42.0)


def test_bank_gradient_is_scatter_add_of_dense_gradient():
    net = conv_net()
    tie_weights(net, CONV_TIED, 0.75, seed=2)
    dense = untied_copy(net)
    x, y = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([1, 3, 5, 7])
    net.train(), dense.train()
    nn.functional.cross_entropy(net(x), y).backward()
    nn.functional.cross_entropy(dense(x), y).backward()
    for name in CONV_TIED:
        tied, plain = net.get_submodule(name), dense.get_submodule(name)
        index = tied.parametrizations.weight[0].index
        bank = bank_of(tied)
        expected = torch.zeros_like(bank).index_add_(0, index, plain.weight.grad.flatten())
        torch.testing.assert_close(bank.grad, expected, rtol=1e-5, atol=1e-7)
        assert expected.abs().sum() > 0
        torch.testing.assert_close(tied.bias.grad, plain.bias.grad)


# ---------------------------------------------------------------------------------- determinism and state
def test_seeded_determinism_and_independence_of_name_order():
    a, b, c = conv_net(seed=0), conv_net(seed=1), conv_net(seed=0)
    tie_weights(a, CONV_TIED, 0.6, seed=7)
    tie_weights(b, list(reversed(CONV_TIED)), 0.6, seed=7)  # torch's global seed and name order don't matter
    tie_weights(c, CONV_TIED, 0.6, seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    for key in sa:
        if "parametrizations" in key:
            assert torch.equal(sa[key], sb[key]), key
            assert not torch.equal(sa[key], sc[key]), key


def test_state_dict_round_trip_into_a_freshly_tied_model():
    net = conv_net(seed=0)
    tie_weights(net, CONV_TIED, 0.9, seed=5)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.randn(5, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    net(x).square().mean().backward()
    opt.step()  # so the banks differ from any fresh init
    net.eval()
    state = net.state_dict()
    assert {k for k in state if "parametrizations" in k} == {
        f"{n}.parametrizations.weight.{s}" for n in CONV_TIED for s in ("original", "0.index")
    }
    for seed in (5, 6):  # the index is a saved buffer, so even another seed's layout is overwritten
        fresh = conv_net(seed=3)
        tie_weights(fresh, CONV_TIED, 0.9, seed=seed)
        fresh.load_state_dict(state)
        fresh.eval()
        assert torch.equal(fresh(x), net(x))


def test_fx_symbolic_trace_keeps_outputs_state_and_gradients():
    net = conv_net()
    tie_weights(net, CONV_TIED, 0.5, seed=0)
    net.eval()
    traced = fx.symbolic_trace(net)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(traced(x), net(x))
    assert traced.state_dict().keys() == net.state_dict().keys()
    traced(x).sum().backward()
    assert bank_of(traced.get_submodule("6")).grad is not None


# ---------------------------------------------------------------------------------- training and counting
def test_sgd_step_changes_only_the_bank():
    net = conv_net(bias=False)
    tie_weights(net, CONV_TIED, 0.8, seed=0)
    net[1].requires_grad_(False)  # leave the BatchNorm out so the banks are the only parameters
    names = [n for n, p in net.named_parameters() if p.requires_grad]
    assert names == [f"{n}.parametrizations.weight.original" for n in CONV_TIED]
    assert all(not isinstance(p, nn.Parameter) for p in net.buffers())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.5, momentum=0.9)
    net(torch.randn(4, 3, 8, 8)).square().mean().backward()
    opt.step()
    after = net.state_dict()
    for key in before:
        if key.endswith("weight.original"):
            assert not torch.equal(before[key], after[key]), key
        elif key.endswith(".index"):
            assert torch.equal(before[key], after[key]) and after[key].dtype == torch.int64, key
    for name in CONV_TIED:  # still tied after the update
        layer = net.get_submodule(name)
        assert torch.equal(layer.weight, bank_of(layer)[layer.parametrizations.weight[0].index].view_as(layer.weight))


def test_parameter_count_lenet_matches_the_paper_budget():
    net = lenet300_100(num_classes=10, input_shape=(1, 28, 28), batch_norm=True)
    assert tied_parameter_count(net) == 267_020  # dense: the paper's "267K"
    linears = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    sizes = tie_weights(net, linears, 0.98, seed=0)
    assert list(sizes.values()) == [4704, 600, 20]
    assert tied_parameter_count(net) == 5324 + 820  # dsr.md §3: s = 0.98 -> 5,324 + 820 BN
    assert set(tied_modules(net)) == set(linears)


def test_parameter_count_small_conv_net():
    net = conv_net()
    tie_weights(net, ["0", "6"], 0.5, seed=0)  # conv "3" stays dense
    # conv0 216 -> 108 (+8 bias), bn 16, conv3 432 + 6, fc 540 -> 270 (+10 bias)
    assert tied_parameter_count(net) == 108 + 8 + 16 + 432 + 6 + 270 + 10


# ---------------------------------------------------------------------------------- init and inverse
def test_bank_inits():
    net = conv_net()
    tie_weights(net, ["0", "6"], 0.0, seed=0)
    conv_bank, fc_bank = bank_of(net[0]), bank_of(net[6])
    assert conv_bank[0] == 0 and fc_bank[0] == 0  # the reference zeroes entry 0
    assert conv_bank.abs().max() <= 1 / math.sqrt(3 * 9) and fc_bank.abs().max() <= 1 / math.sqrt(54)

    big = nn.Conv2d(64, 128, 3, bias=False)
    tie_weights(big, [""], 0.5, seed=0, init=he_fan_out_normal_)
    bank = bank_of(big)
    assert abs(bank.std().item() / math.sqrt(2 / (128 * 9)) - 1) < 0.03
    assert abs(bank.mean().item()) < 0.003

    a, b = torch.empty(50), torch.empty(50)
    uniform_fan_in_(a, torch.Size([4, 10]), torch.Generator().manual_seed(1))
    uniform_fan_in_(b, torch.Size([4, 10]), torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a[0] != 0


def test_assigning_a_tied_weight_reproduces_it():
    layer = nn.Linear(10, 7)
    tie_weights(layer, [""], 0.6, seed=0)
    tied = layer.parametrizations.weight[0]
    assert isinstance(tied, TiedWeight)
    target = torch.randn(tied.bank_size)[tied.index].view(7, 10)
    layer.weight = target  # goes through right_inverse: per-entry mean of the positions
    assert torch.allclose(layer.weight, target)
    assert bank_of(layer).numel() == tied.bank_size == 28


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.5, float("nan"), "0.5", True])
def test_rejects_sparsity_outside_unit_interval(sparsity):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        tie_weights(conv_net(), ["0"], sparsity, seed=0)


def test_rejects_modules_that_are_not_conv_or_linear():
    net = conv_net()
    with pytest.raises(TypeError, match="BatchNorm2d"):
        tie_weights(net, ["0", "1"], 0.5, seed=0)
    assert not tied_modules(net)  # validated before anything is tied
    with pytest.raises(KeyError, match="nope"):
        tie_weights(net, ["nope"], 0.5, seed=0)
    tie_weights(net, ["0"], 0.5, seed=0)
    with pytest.raises(ValueError, match="already"):
        tie_weights(net, ["0"], 0.5, seed=0)
