"""Classification metrics against closed forms on a model with known logits."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from sparselab.data import make_loader
from sparselab.metrics.classification import evaluate, target_ranks, topk_counts


class FixedLogits(nn.Module):
    """Returns the logits stored for each input index (inputs are indices)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("logits", logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[x.long()]


LOGITS = torch.tensor(
    [
        [5.0, 1, 0, 0, 0, 0],  # target 0: top-1
        [0.0, 5, 4, 3, 2, 1],  # target 0: rank 5 -> not in top-5
        [1.0, 2, 3, 4, 5, 6],  # target 1: rank 4 -> top-5
        [0.0, 0, 0, 0, 0, 0],  # all tied, target 3: ties go to lower indices -> rank 3, top-5 only
    ]
)
TARGETS = torch.tensor([0, 0, 1, 3])


def _evaluate(logits, targets, **kw):
    model = FixedLogits(logits).train()
    loader = make_loader(TensorDataset(torch.arange(len(targets)), targets), batch_size=3, shuffle=False)
    return model, evaluate(model, loader, "cpu", **kw)


def test_evaluate_matches_closed_form_and_restores_train_mode():
    model, m = _evaluate(LOGITS, TARGETS, temperature=2.0)
    assert m["loss"] == pytest.approx(torch.nn.functional.cross_entropy(LOGITS / 2.0, TARGETS).item(), rel=1e-6)
    assert (m["top1"], m["top5"], m["n"]) == (0.25, 0.75, 4)
    assert model.training


def test_a_nan_logit_row_is_wrong_not_tied():
    _, m = _evaluate(torch.cat([LOGITS, torch.full((1, 6), float("nan"))]), torch.cat([TARGETS, torch.tensor([2])]))
    assert (m["top1"], m["top5"]) == (1 / 5, 3 / 5)
    assert math.isnan(m["loss"])


def test_ranks_against_a_stable_sort_on_random_ties():
    g = torch.Generator().manual_seed(0)
    logits = torch.randint(0, 3, (200, 7), generator=g).float()  # many ties
    targets = torch.randint(0, 7, (200,), generator=g)
    order = torch.sort(-logits, dim=1, stable=True).indices  # descending, ties by index
    expected = (order == targets.unsqueeze(1)).float().argmax(1)
    assert torch.equal(target_ranks(logits, targets), expected)
    assert topk_counts(expected, (1, 5, 7)) == [int((expected < k).sum()) for k in (1, 5, 7)]


def test_uniform_logits_give_log_c_loss():
    model = FixedLogits(torch.zeros(5, 10))
    loader = make_loader(TensorDataset(torch.arange(5), torch.arange(5)), batch_size=5, shuffle=False)
    assert evaluate(model, loader)["loss"] == pytest.approx(math.log(10))


def test_mean_per_class_weighs_every_present_class_equally():
    # class 0: 3 of 4 right, class 2: 0 of 1 right, class 1 absent -> (0.75 + 0) / 2, while top-1 is 3/5
    logits = torch.tensor([[5.0, 0, 0], [5.0, 0, 0], [5.0, 0, 0], [0, 5.0, 0], [5.0, 0, 0]])
    targets = torch.tensor([0, 0, 0, 0, 2])
    m = evaluate(nn.Identity(), make_loader(TensorDataset(logits, targets), 2, shuffle=False))
    assert m["top1"] == pytest.approx(3 / 5)
    assert m["mean_per_class"] == pytest.approx(0.375)
