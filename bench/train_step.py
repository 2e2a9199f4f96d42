"""Training-step speed of the engine, as ratios against baselines measured in the same run.

1. engine vs a minimal hand-written PyTorch loop (same model, batches, optimizer, schedule):
   throughput ratio, goal >= 0.95.
2. a 90%-masked training step (mask enforced after every step) vs the dense step in the engine:
   time ratio, goal <= 1.05.

Each trial runs the three variants back to back (in rotated order) and yields paired ratios; the
median and range of those ratios are reported, so slow drift of a shared machine cancels out.

    python bench/train_step.py [--model cifar_resnet20] [--batch 128] [--steps 40] [--trials 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from sparselab.config import ComputeHparams, SeedHparams, TrainHparams
from sparselab.data import DatasetInfo, DatasetSplits
from sparselab.io.checkpoint import ArchSpec
from sparselab.sparsity.magnitude import magnitude_mask
from sparselab.train.engine import train
from sparselab.train.optim import build_optimizer, build_scheduler
from sparselab.train.run import build_seeded

SHAPES = {"lenet300_100": (1, 28, 28), "cifar_resnet20": (3, 32, 32), "vgg13_bn": (3, 32, 32), "resnet18": (3, 64, 64)}


def make_data(shape, n: int, classes: int = 10) -> DatasetSplits:
    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g))
    tiny = TensorDataset(ds.tensors[0][:2], ds.tensors[1][:2])  # evaluation is not what we time
    info = DatasetInfo("synthetic", classes, tuple(shape), (0.0,) * shape[0], (1.0,) * shape[0])
    return DatasetSplits(info=info, train=ds, train_eval=ds, val=None, test=tiny)


def recipe(epochs: int, batch: int) -> TrainHparams:
    return TrainHparams.from_dict(
        {"epochs": epochs, "batch_size": batch, "eval_batch_size": 2, "optimizer": {"lr": 0.01, "nesterov": True},
         "schedule": {"kind": "cosine", "warmup_epochs": 0.5}}
    )  # fmt: skip


def engine_step_seconds(spec: ArchSpec, data: DatasetSplits, hp: TrainHparams, mask_sparsity: float | None) -> float:
    """Seconds per training step in the engine, from the epoch timer (excludes evaluation)."""
    model = build_seeded(spec, 0)
    mask = magnitude_mask(model, mask_sparsity, scope="global") if mask_sparsity else None
    result = train(model, data, hp, seeds=SeedHparams.for_replicate(0), mask=mask,
                   compute=ComputeHparams(device="cpu", progress="lines"))  # fmt: skip
    timed = result.history[1:]  # epoch 1 warms up allocators and kernels
    steps = result.history[-1]["step"] - result.history[0]["step"]
    return sum(r["epoch_time_s"] for r in timed) / steps


def minimal_step_seconds(spec: ArchSpec, data: DatasetSplits, hp: TrainHparams) -> float:
    """The loop anyone would write by hand: forward, loss, backward, step, schedule."""
    model = build_seeded(spec, 0)
    opt = build_optimizer(model, hp.optimizer)
    x_all, y_all = data.train.tensors
    steps_per_epoch = -(-len(y_all) // hp.batch_size)
    sched = build_scheduler(opt, hp.schedule, steps_per_epoch, hp.epochs)
    model.train()
    elapsed = 0.0
    for epoch in range(hp.epochs):
        order = torch.randperm(len(y_all))
        start = time.perf_counter()
        for i in range(steps_per_epoch):
            idx = order[i * hp.batch_size : (i + 1) * hp.batch_size]
            loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if epoch > 0:
            elapsed += time.perf_counter() - start
    return elapsed / (steps_per_epoch * (hp.epochs - 1))



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="cifar_resnet20", choices=sorted(SHAPES))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="steps per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial; the first is a warm-up and not timed")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    shape = SHAPES[args.model]
    spec = ArchSpec(args.model, 10, shape, {})
    data = make_data(shape, args.batch * args.steps)
    hp = recipe(args.epochs, args.batch)
    times: dict[str, list[float]] = {"minimal": [], "engine": [], "engine_masked90": []}
    runs = {
        "minimal": lambda: minimal_step_seconds(spec, data, hp),
        "engine": lambda: engine_step_seconds(spec, data, hp, None),
        "engine_masked90": lambda: engine_step_seconds(spec, data, hp, 0.9),
    }
    names = list(runs)
    for trial in range(args.trials):
        for name in names[trial % 3 :] + names[: trial % 3]:  # rotate the order: no variant always runs first
            times[name].append(runs[name]())
    med = {k: statistics.median(v) for k, v in times.items()}
    throughput = [m / e for m, e in zip(times["minimal"], times["engine"])]
    masked = [m / e for m, e in zip(times["engine_masked90"], times["engine"])]

    print(f"model {args.model}, batch {args.batch}, input {shape}, {args.threads} threads, {args.trials} trials")
    for name, t in med.items():
        print(f"  {name:16s} {1000 * t:8.2f} ms/step (median)  {args.batch / t:9.1f} samples/s")
    for label, ratios, goal, ok in (
        ("engine / minimal loop throughput", throughput, ">= 0.95", statistics.median(throughput) >= 0.95),
        ("90%-masked / dense step time    ", masked, "<= 1.05", statistics.median(masked) <= 1.05),
    ):
        print(f"{label}: {statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f}, "
              f"goal {goal})  {'OK' if ok else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
