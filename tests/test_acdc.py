"""AC/DC (sparselab.dst.acdc): the phase calendar, global compression, and training with it."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from sparselab.config import ComputeHparams, DataHparams, SeedHparams, TrainHparams
from sparselab.data import build_splits
from sparselab.dst.acdc import ACDC, compress, phase_calendar
from sparselab.models import build_model
from sparselab.sparsity.mask import Mask
from sparselab.train.engine import train


def test_the_100_epoch_calendar_is_the_papers() -> None:
    cal = phase_calendar(100)
    spans = {"dense": [range(0, 10), range(75, 85)], "sparse": [range(10, 15), range(70, 75), range(85, 100)]}
    for phase, ranges in spans.items():
        for r in ranges:
            assert all(cal[e] == phase for e in r), (phase, r)
    assert cal[15:20] == ["dense"] * 5 and cal[20:25] == ["sparse"] * 5
    assert cal.count("sparse") == cal.count("dense") == 50


# The original's trigger pairs [start, freq, end] per run length (IST-DASLab/ACDC configs/neurips/
# iht_imagenet_resnet50_insta_cosinelr_s90_ep{100,150}.yaml and ..._s90_ep200_unif.yaml): two pruners
# (compression) and two RestoreWeights recyclers (decompression), each firing at the start of the
# epochs range(start, end, freq) (policies/manager.py, schedule_prunes_and_recycles).
ORIGINAL_TRIGGERS = {
    100: {"compress": [(10, 10, 71), (85, 20, 100)], "decompress": [(15, 10, 66), (75, 20, 86)]},
    150: {"compress": [(10, 10, 121), (135, 20, 150)], "decompress": [(15, 10, 116), (125, 20, 134)]},
    200: {"compress": [(10, 10, 171), (185, 20, 200)], "decompress": [(15, 10, 166), (175, 20, 186)]},
}


def _original_calendar(epochs: int) -> list[str]:
    """The original manager's phases: dense until a pruner fires, then whatever fired last."""
    events = {}
    for kind, phase in (("compress", "sparse"), ("decompress", "dense")):
        for start, freq, end in ORIGINAL_TRIGGERS[epochs][kind]:
            events.update({e: phase for e in range(start, end, freq)})
    phase, calendar = "dense", []
    for e in range(epochs):
        phase = events.get(e, phase)
        calendar.append(phase)
    return calendar


@pytest.mark.parametrize("epochs", [100, 150, 200])
def test_the_calendar_is_the_originals_at_every_length_it_ran(epochs: int) -> None:
    assert phase_calendar(epochs) == _original_calendar(epochs)


@pytest.mark.parametrize(("epochs", "last_alternating"), [(150, 120), (200, 170)])
def test_longer_runs_lengthen_only_the_alternation(epochs: int, last_alternating: int) -> None:
    cal = phase_calendar(epochs)
    assert cal[:10] == ["dense"] * 10  # the 10 dense warm-up epochs
    for start in range(10, last_alternating + 1, 5):  # 5-epoch phases, starting sparse
        assert cal[start : start + 5] == ["sparse" if (start - 10) % 10 == 0 else "dense"] * 5, start
    assert cal[last_alternating : epochs - 25] == ["sparse"] * 5  # the alternation ends sparse
    assert cal[epochs - 25 : epochs - 15] == ["dense"] * 10  # the 10-epoch last dense phase
    assert cal[epochs - 15 :] == ["sparse"] * 15  # the 15-epoch final sparse phase
    assert cal.count("sparse") == cal.count("dense") == epochs // 2


def test_shorter_multiples_of_ten_keep_the_original_phase_lengths() -> None:
    assert phase_calendar(40) == ["dense"] * 10 + ["sparse"] * 5 + ["dense"] * 10 + ["sparse"] * 15
    assert phase_calendar(50) == ["dense"] * 10 + (["sparse"] * 5 + ["dense"] * 5) * 2 + ["dense"] * 5 + ["sparse"] * 15


@pytest.mark.parametrize("epochs", [35, 105])
def test_lengths_the_original_cannot_fill_scale_the_100_epoch_calendar(epochs: int) -> None:
    scaled = phase_calendar(epochs)
    starts = [e for e in range(1, epochs) if scaled[e] != scaled[e - 1]]  # where the phase changes
    assert starts == sorted({round(s * epochs / 100) for s in [10, *range(15, 71, 5), 75, 85]} - {0})
    assert scaled[0] == "dense" and scaled[-1] == "sparse"


def test_a_shorter_run_keeps_the_pattern_and_the_balance() -> None:
    cal = phase_calendar(20)
    assert cal[:2] == ["dense", "dense"] and cal[-3:] == ["sparse"] * 3 and cal.count("sparse") == 10
    with pytest.raises(ValueError):
        phase_calendar(5)


def test_compression_is_global_over_all_listed_weights() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(10, 10, bias=False), torch.nn.Linear(10, 10, bias=False))
    with torch.no_grad():
        model[0].weight.fill_(0.5)
        model[1].weight.copy_(torch.arange(100.0).view(10, 10) / 100)  # 0.00 ... 0.99
    mask = compress(model, ["0.weight", "1.weight"], 0.7)
    # keep ceil(200 * 0.3) = 60: the 49 entries above 0.5 (all in layer 1), then 11 of the ties at
    # 0.5 in model order (layer 0 first): one global threshold, not a share per layer
    assert {n: int(mask[n].sum()) for n in mask} == {"0.weight": 11, "1.weight": 49}
    assert mask["0.weight"].view(-1)[:11].all() and mask["1.weight"].view(-1)[51:].all()
    # the statistic is (|w| + 1e-4) * old mask: an entry masked out before ranks below every live one
    current = Mask(
        {"0.weight": torch.zeros(10, 10, dtype=torch.bool), "1.weight": torch.ones(10, 10, dtype=torch.bool)}
    )
    mask2 = compress(model, ["0.weight", "1.weight"], 0.5, current=current)
    assert int(mask2["0.weight"].sum()) == 0 and int(mask2["1.weight"].sum()) == 100


def test_training_alternates_resets_momentum_and_ends_sparse() -> None:
    torch.manual_seed(0)
    model = build_model("lenet300_100", 10, (1, 8, 8), hidden=[64, 32], batch_norm=True)
    names = [n for n, p in model.named_parameters() if p.dim() == 2]
    recipe = TrainHparams.from_dict(
        {"epochs": 20, "batch_size": 100, "optimizer": {"lr": 0.05, "momentum": 0.9}, "schedule": {"kind": "constant"}}
    )
    cb = ACDC(names, 0.9, recipe.epochs)
    resets = []

    class WatchMomentum(ACDC.__mro__[1]):  # a plain Callback: records momentum right after a decompression
        def on_epoch_end(self, ctx, row) -> None:  # type: ignore[no-untyped-def]
            if cb.phase == "dense" and row.get("acdc_phase") == "sparse":
                bufs = [s.get("momentum_buffer") for s in ctx.optimizer.state.values()]
                resets.append(all(b is None or float(b.abs().sum()) == 0 for b in bufs))

    result = train(
        model,
        build_splits(DataHparams(source="digits")),
        recipe,
        seeds=SeedHparams(),
        compute=ComputeHparams(device="cpu", progress="lines"),
        callbacks=(cb, WatchMomentum()),
    )
    phases = list(pd.DataFrame(result.history)["acdc_phase"])
    assert phases == phase_calendar(20)
    assert result.mask is not None and abs(result.mask.sparsity - 0.9) < 1e-3  # ends in its sparse phase
    params = dict(result.model.named_parameters())
    assert all((params[n][~result.mask[n]] == 0).all() for n in names)
    assert resets and all(resets) and cb.compressions == 7 + 1
