"""Margins, per-sample losses and the paper's margin quantiles, against brute-force references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparselab.metrics.margin_stats import (
    MARGIN_QUANTILE_LEVELS,
    LogitStats,
    logit_statistics,
    margin_quantiles,
    margins,
    top1_from_margins,
)

# 3 inputs -> 4 classes; small integers keep every float32 logit exact.
WEIGHT = [[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, -1]]
BIAS = [0.0, 0.5, -0.5, 0]
XS = [[2.0, 1, 0], [0, 3, 1], [1, 1, 4], [3, 3, 1], [0, 0, 0], [1, 2, 3], [5, -1, 2], [-2, -3, -1]]
YS = [0, 1, 2, 3, 0, 2, 1, 3]


def _linear() -> nn.Linear:
    model = nn.Linear(3, 4)
    with torch.no_grad():
        model.weight.copy_(torch.tensor(WEIGHT))
        model.bias.copy_(torch.tensor(BIAS))
    return model


def _batches(xs, ys, sizes=(3, 3, 2)) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A hand-built loader: consecutive batches of the given sizes (the last one short)."""
    out, start = [], 0
    for size in sizes:
        x, y = xs[start : start + size], ys[start : start + size]
        out.append((torch.tensor(x, dtype=torch.float32), torch.tensor(y)))
        start += size
    assert start == len(xs)
    return out


def _brute_margin(x: list[float], y: int) -> float:
    logits = [sum(w * v for w, v in zip(row, x)) + b for row, b in zip(WEIGHT, BIAS)]
    return logits[y] - max(v for k, v in enumerate(logits) if k != y)


def test_margins_match_brute_force_in_loader_order():
    got = margins(_linear(), _batches(XS, YS))
    assert got.dtype == torch.float32 and got.device.type == "cpu" and got.shape == (len(XS),)
    assert got.tolist() == [_brute_margin(x, y) for x, y in zip(XS, YS)]
    # Another batching and a permuted order: same per-sample values, in the new order.
    perm = [5, 0, 7, 2, 6, 1, 4, 3]
    xs, ys = [XS[i] for i in perm], [YS[i] for i in perm]
    assert margins(_linear(), _batches(xs, ys, (5, 2, 1)), "cpu").tolist() == [got[i].item() for i in perm]


def test_sign_convention():
    got = margins(_linear(), _batches(XS, YS)).tolist()
    # Sample 0: logits (2, 1.5, -0.5, 3), target 0 -> 2 - 3 = -1 (misclassified).
    assert got[0] == -1.0
    # Sample 2: logits (1, 1.5, 3.5, -2), target 2 -> 3.5 - 1.5 = 2.
    assert got[2] == 2.0


def test_ties_give_zero_margin_counted_correct():
    model = _linear()
    with torch.no_grad():
        model.bias.copy_(torch.tensor([0.0, -1, -1, 0]))
    # x = 0: logits (0, -1, -1, 0), classes 0 and 3 tie; x = (1, -0.5, 0): logits (1, -1.5, -1, 0.5).
    xs, ys = [[0.0, 0, 0], [0.0, 0, 0], [1.0, -0.5, 0]], [0, 3, 0]
    stats = logit_statistics(model, _batches(xs, ys, (2, 1)))
    assert stats.margins.tolist() == [0.0, 0.0, 0.5]
    assert top1_from_margins(stats.margins) == 1.0
    assert margin_quantiles(stats.margins)["margin_q0"] == 0.0  # E = 0: zero is not negative
    # Top-1 breaks ties by class index: class 0 wins the (0, 3) tie, so target 3 is not top-1.
    assert stats.correct.tolist() == [True, False, True]
    assert stats.top1 == pytest.approx(2 / 3)


def test_losses_are_per_sample_cross_entropy():
    torch.manual_seed(0)
    model = nn.Linear(5, 7)
    loader = [(torch.randn(4, 5), torch.randint(0, 7, (4,))) for _ in range(3)]
    loader.append((torch.randn(1, 5), torch.tensor([6])))
    stats = logit_statistics(model, loader)
    x, y = torch.cat([b[0] for b in loader]), torch.cat([b[1] for b in loader])
    with torch.no_grad():
        logits = model(x)
    assert stats.losses.dtype == torch.float32 and stats.correct.dtype == torch.bool
    torch.testing.assert_close(stats.losses, F.cross_entropy(logits, y, reduction="none"))
    assert stats.mean_loss == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    assert stats.correct.tolist() == (logits.argmax(1) == y).tolist()
    assert stats.n == 13
    # No ties here, so margin sign and top-1 agree.
    assert (stats.margins != 0).all()
    assert top1_from_margins(stats.margins) == stats.top1 == int((logits.argmax(1) == y).sum()) / 13


def test_train_eval_flags_and_bn_stats_restored():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    model.train()
    model[2].eval()  # a mixed state must come back exactly, not as a blanket train()
    flags = {name: m.training for name, m in model.named_modules()}
    bn_state = {k: v.clone() for k, v in model[1].state_dict().items()}
    loader = [(torch.randn(5, 4), torch.randint(0, 3, (5,))) for _ in range(2)]
    first = margins(model, loader)
    second = margins(model, loader)
    assert torch.equal(first, second)  # eval mode: dropout off, BN uses running stats
    assert {name: m.training for name, m in model.named_modules()} == flags
    for k, v in model[1].state_dict().items():
        assert torch.equal(v, bn_state[k]), k
    with torch.no_grad():
        model.eval()
        logits = model(torch.cat([b[0] for b in loader]))
    y = torch.cat([b[1] for b in loader])
    expected = [(row[t] - max(v for k, v in enumerate(row) if k != t)).item() for row, t in zip(logits, y.tolist())]
    assert first.tolist() == pytest.approx(expected, abs=1e-6)


def test_flags_restored_when_forward_raises():
    model = nn.Sequential(nn.Linear(3, 2), nn.Dropout()).train()
    with pytest.raises(RuntimeError):
        margins(model, [(torch.zeros(2, 5), torch.zeros(2, dtype=torch.long))])  # wrong input width
    assert all(m.training for m in model.modules())


def test_empty_loader_raises():
    with pytest.raises(ValueError, match="empty"):
        margins(_linear(), [])


def test_amp_keeps_float32_outputs():
    stats = logit_statistics(_linear(), _batches(XS, YS), "cpu", amp=True, channels_last=True)
    assert stats.margins.dtype == stats.losses.dtype == torch.float32
    # Small integers survive bf16 exactly, so the margins are unchanged.
    assert stats.margins.tolist() == [_brute_margin(x, y) for x, y in zip(XS, YS)]


def test_parameter_free_model_defaults_to_buffer_device():
    class Fixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("table", torch.tensor([[1.0, 3.0], [2.0, 0.0]]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.table[x]

    assert margins(Fixed(), [(torch.tensor([0, 1]), torch.tensor([0, 0]))]).tolist() == [-2.0, 2.0]


# ---- quantiles ----------------------------------------------------------------------------


def _reference_quantiles(m: torch.Tensor) -> list[float]:
    """The reference's get_quantile_margins, verbatim (E is a 0-dim tensor, so it runs in float32)."""
    number_negative_margins = (m < 0).sum()
    sorted_margins = torch.sort(m).values
    return [
        sorted_margins[i].item()
        for i in [
            number_negative_margins,
            int((2 / 3) * number_negative_margins + (len(m) - 1) / 3),
            int(0.5 * number_negative_margins + 0.5 * (len(m) - 1)),
            int((1 / 3) * number_negative_margins + 2 * (len(m) - 1) / 3),
            len(m) - 1,
        ]
    ]


def _python_quantiles(m: torch.Tensor) -> list[float]:
    """The same formula with Python ints and loops (E = N clamped, as documented)."""
    values = sorted(m.tolist())
    n, e = len(values), sum(v < 0 for v in values)
    idx = [min(e, n - 1), int(2 * e / 3 + (n - 1) / 3), int(e / 2 + (n - 1) / 2), int(e / 3 + 2 * (n - 1) / 3)]
    idx.append(n - 1)
    return [values[i] for i in idx]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 101, 1000])
def test_quantiles_match_reference_formula(n):
    gen = torch.Generator().manual_seed(n)
    for e in sorted({0, 1, n // 3, n // 2, n - 1, n}):
        neg = -torch.rand(e, generator=gen) - 1e-3
        pos = torch.rand(n - e, generator=gen)
        m = torch.cat([neg, pos])[torch.randperm(n, generator=gen)]
        got = margin_quantiles(m)
        assert list(got) == list(MARGIN_QUANTILE_LEVELS)
        assert list(got.values()) == _python_quantiles(m), (n, e)
        if e < n:  # the reference itself indexes out of range when every margin is negative
            assert list(got.values()) == _reference_quantiles(m), (n, e)
        else:
            assert got["margin_q0"] == got["margin_q1"] == m.max().item()
        assert got["margin_q1"] == m.max().item()
        if 0 < e < n:
            assert got["margin_q0"] == pos.min().item()  # smallest non-negative margin


def test_quantiles_exhaustive_small_n():
    """Every (E, N) with N <= 40: indices against the Python formula on a sorted ramp."""
    for n in range(1, 41):
        for e in range(n + 1):
            m = torch.arange(n, dtype=torch.float32) - e  # exactly e negatives; value == index - e
            assert list(margin_quantiles(m).values()) == _python_quantiles(m)


def test_quantiles_reject_bad_input():
    with pytest.raises(ValueError, match="empty"):
        margin_quantiles(torch.zeros(0))
    with pytest.raises(ValueError, match="1-D"):
        margin_quantiles(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="empty"):
        top1_from_margins(torch.zeros(0))


def test_top1_from_margins_counts_zero_as_correct():
    assert top1_from_margins(torch.tensor([0.0, -1.0, 2.0, -0.0])) == 0.75


def test_logit_stats_properties():
    stats = LogitStats(
        margins=torch.tensor([1.0, -1.0]), losses=torch.tensor([0.5, 1.5]), correct=torch.tensor([True, False])
    )
    assert (stats.n, stats.top1, stats.mean_loss) == (2, 0.5, 1.0)
