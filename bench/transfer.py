"""Transfer speed: linear finetuning on cached features vs full finetuning, as ratios against a
baseline measured in the same run.

The upstream is our registry's ResNet-50 (1000 classes) with a 90% global magnitude mask, written
as a checkpoint and turned into the downstream network by ``transfer.full.downstream_model`` (new
dense head of ``--classes`` outputs, backbone mask kept), as a transfer run does. The downstream set
is ``--samples`` random RGB images of ``--size`` px in a TensorDataset, read in batches of 64.

1. Feature extraction (``transfer.linear.extract_features``, eval mode, no grad): its time in
   units of full-finetuning epochs, and a check that it is a single pass: a forward hook on the
   network counts its calls, which must equal the number of batches (and the feature rows the
   number of samples, in loader order).
2. One linear-finetuning epoch on the cached features (``train_linear_head(..., epochs=1)``,
   batch 64, the paper's SGD; its per-epoch test evaluation on the same features included) vs one
   full-finetuning epoch on the same images through the training engine (``train.engine.train``,
   batch 64, SGD momentum 0.9, weight decay 5e-4, backbone mask enforced after every step; the
   engine's epoch timer, which excludes its evaluation): goal <= 1%.

Each trial times an extraction pass, a linear epoch and a full epoch back to back (in rotated
order), so the ratios are paired and slow drift of a shared machine cancels out; medians over
``--trials`` after one untimed warm-up of each (allocators, kernels). The defaults run in about a
minute on an idle 2-core CPU.

    python bench/transfer.py [--samples 256] [--size 64] [--classes 100] [--sparsity 0.9] [--trials 3] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from sparselab.config import ComputeHparams, SeedHparams, TrainHparams
from sparselab.data import DatasetInfo, DatasetSplits, make_loader
from sparselab.models.checkpoint import save_checkpoint
from sparselab.models.spec import ArchSpec
from sparselab.sparsity.magnitude import magnitude_mask
from sparselab.sparsity.mask import Mask
from sparselab.train.engine import train
from sparselab.train.run import build_seeded
from sparselab.transfer.features import extract_features
from sparselab.transfer.full import downstream_model
from sparselab.transfer.linear import train_linear_head

BATCH = 64
GOAL = 0.01


def sparse_upstream(path: Path, shape: tuple[int, int, int], sparsity: float) -> float:
    """A ResNet-50 upstream checkpoint with a global magnitude mask; returns the mask's sparsity."""
    spec = ArchSpec("resnet50", 1000, shape, {})
    model = build_seeded(spec, 0)
    mask = magnitude_mask(model, sparsity, scope="global")
    mask.apply_(model)
    save_checkpoint(path, model, spec, mask=mask)
    return mask.sparsity


def make_data(n: int, size: int, classes: int) -> DatasetSplits:
    shape = (3, size, size)
    g = torch.Generator().manual_seed(1)
    ds = TensorDataset(torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g))
    tiny = TensorDataset(ds.tensors[0][:2], ds.tensors[1][:2])  # the engine's evaluation is not what we time
    info = DatasetInfo("synthetic", classes, shape, (0.0,) * 3, (1.0,) * 3)
    return DatasetSplits(info=info, train=ds, train_eval=ds, val=None, test=tiny)


def timed_extraction(
    model: torch.nn.Module, data: DatasetSplits
) -> tuple[float, int, int, tuple[torch.Tensor, torch.Tensor]]:
    """Seconds of one extraction pass, network forward calls counted in it, batches read."""
    loader = make_loader(data.train, BATCH, shuffle=False)
    calls = 0

    def count(*_: object) -> None:
        nonlocal calls
        calls += 1

    hook = model.register_forward_hook(count)
    try:
        t0 = time.perf_counter()
        feats = extract_features(model, loader)
        elapsed = time.perf_counter() - t0
    finally:
        hook.remove()
    return elapsed, calls, len(loader), feats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (RGB)")
    parser.add_argument("--classes", type=int, default=100, help="downstream classes")
    parser.add_argument("--sparsity", type=float, default=0.9, help="upstream global magnitude sparsity")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shape = (3, args.size, args.size)
    data = make_data(args.samples, args.size, args.classes)

    with tempfile.TemporaryDirectory() as tmp:
        upstream = Path(tmp) / "upstream.safetensors"
        up_sparsity = sparse_upstream(upstream, shape, args.sparsity)
        model, mask, _, report = downstream_model(upstream, args.classes, seed=0)
    assert mask is not None

    hp = TrainHparams.from_dict(
        {
            "epochs": 1,
            "batch_size": BATCH,
            "eval_batch_size": 2,
            "optimizer": {"lr": 0.001, "momentum": 0.9, "weight_decay": 5e-4},
            "schedule": {"kind": "constant"},
        }
    )

    def full_epoch() -> float:
        """One full-finetuning epoch through the engine (in place); its epoch timer excludes the evaluation."""
        result = train(
            model,
            data,
            hp,
            seeds=SeedHparams.for_replicate(0),
            mask=mask,
            compute=ComputeHparams(device="cpu", progress="lines"),
        )
        return float(result.history[-1]["epoch_time_s"])

    extractions: list[tuple[float, int, int, tuple[torch.Tensor, torch.Tensor]]] = []

    def extraction() -> float:
        extractions.append(timed_extraction(model, data))
        return extractions[-1][0]

    def linear_epoch() -> float:
        cached = extractions[-1][3]
        t0 = time.perf_counter()
        train_linear_head(cached, cached, args.classes, epochs=1, batch_size=BATCH, seed=len(extractions))
        return time.perf_counter() - t0

    # warm-up (allocators, kernels): one of each, not timed; the linear head then always has features
    full_epoch(), extraction(), linear_epoch()
    runs = {"extract": extraction, "linear": linear_epoch, "full": full_epoch}
    times: dict[str, list[float]] = {k: [] for k in runs}
    names = list(runs)
    for trial in range(args.trials):  # each trial times all three, in rotated order: paired ratios
        for name in names[trial % 3 :] + names[: trial % 3]:
            times[name].append(runs[name]())
    extract_s, linear_s, full_s = (statistics.median(times[k]) for k in names)
    extract_epochs = statistics.median(e / f for e, f in zip(times["extract"], times["full"]))
    features, labels = extractions[-1][3]
    single_pass = all(calls == batches for _, calls, batches, _ in extractions)
    in_order = features.shape[0] == args.samples and torch.equal(labels, data.train.tensors[1])
    kept = Mask.from_zeros(model, mask.names()).sparsity + 1e-12 >= mask.sparsity

    ratios = sorted(lin / full for lin, full in zip(times["linear"], times["full"]))
    ratio = statistics.median(ratios)
    steps = -(-args.samples // BATCH)
    print(
        f"ResNet-50 upstream {up_sparsity:.0%} sparse (global magnitude; backbone {report['backbone_sparsity']:.1%} "
        f"after the new head), {args.classes} classes, {args.samples} images {args.size}x{args.size} RGB, batch {BATCH} "
        f"({steps} steps/epoch), {torch.get_num_threads()} threads, {args.trials} trials"
    )
    print(
        f"1. feature extraction {extract_s:.2f} s = {extract_epochs:.3f} full epochs; single pass: "
        f"{extractions[-1][1]} network forwards for {extractions[-1][2]} batches in every pass -> {'OK' if single_pass else 'FAIL'}; "
        f"features {tuple(features.shape)}, labels in loader order -> {'OK' if in_order else 'FAIL'}"
    )
    print(
        f"2. linear epoch on cached features {linear_s * 1e3:.1f} ms; full finetuning epoch (engine, mask enforced, "
        f"backbone sparsity kept: {'yes' if kept else 'NO'}) {full_s:.2f} s; "
        f"linear / full = {ratio:.4f} (range {ratios[0]:.4f}-{ratios[-1]:.4f}; goal <= {GOAL}) "
        f"{'PASS' if ratio <= GOAL else 'MISS'}"
    )


if __name__ == "__main__":
    main()
