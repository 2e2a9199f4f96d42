"""Training-step speed of the engine, as ratios against baselines measured in the same run.

1. engine vs a minimal hand-written PyTorch loop (same model, batches, optimizer, schedule):
   throughput ratio, goal >= 0.95.
2. a 90%-masked training step (mask enforced after every step) vs the dense step in the engine:
   time ratio, goal <= 1.05.

3. with ``--capture``: the captured step (``compute.capture: graphs``; CUDA graphs on CUDA, plain
   inductor on CPU) vs the eager engine: time ratio, plus the one-time compile seconds (first
   epoch minus a timed one) and the epochs of the given length that take to pay them back.

Each trial runs the variants back to back (in rotated order) and yields paired ratios; the
median and range of those ratios are reported, so slow drift of a shared machine cancels out.

    python bench/train_step.py [--model cifar_resnet20] [--batch 128] [--steps 40] [--trials 5]
                               [--device cpu|cuda] [--capture]
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
from sparselab.models.spec import ArchSpec
from sparselab.sparsity.magnitude import magnitude_mask
from sparselab.train.engine import train
from sparselab.train.optim import build_optimizer, build_scheduler
from sparselab.train.run import build_seeded

SHAPES = {
    "lenet300_100": (1, 28, 28),
    "cifar_resnet20": (3, 32, 32),
    "cifar_resnet56": (3, 32, 32),
    "vgg13_bn": (3, 32, 32),
    "wrn": (3, 32, 32),
    "resnet18": (3, 64, 64),
}
KWARGS = {"wrn": {"depth": 28, "widen_factor": 2.0}}  # WRN-28-2


def make_data(shape, n: int, classes: int = 10) -> DatasetSplits:
    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g))
    tiny = TensorDataset(ds.tensors[0][:2], ds.tensors[1][:2])  # evaluation is not what we time
    info = DatasetInfo("synthetic", classes, tuple(shape), (0.0,) * shape[0], (1.0,) * shape[0])
    return DatasetSplits(info=info, train=ds, train_eval=ds, val=None, test=tiny)


def recipe(epochs: int, batch: int) -> TrainHparams:
    return TrainHparams.from_dict(
        {
            "epochs": epochs,
            "batch_size": batch,
            "eval_batch_size": 2,
            "optimizer": {"lr": 0.01, "nesterov": True},
            "schedule": {"kind": "cosine", "warmup_epochs": 0.5},
        }
    )


FIRST_EPOCH_EXTRA: dict[str, list[float]] = {}  # variant -> first epoch minus a timed one (compile, warm-up)


def engine_step_seconds(
    spec: ArchSpec,
    data: DatasetSplits,
    hp: TrainHparams,
    mask_sparsity: float | None,
    device: str = "cpu",
    capture: str = "none",
    label: str = "engine",
) -> float:
    """Seconds per training step in the engine, from the epoch timer (excludes evaluation)."""
    model = build_seeded(spec, 0)
    mask = magnitude_mask(model, mask_sparsity, scope="global") if mask_sparsity else None
    result = train(
        model,
        data,
        hp,
        seeds=SeedHparams.for_replicate(0),
        mask=mask,
        compute=ComputeHparams(device=device, progress="lines", capture=capture),
    )
    timed = result.history[1:]  # epoch 1 warms up allocators and kernels (and compiles)
    steps = result.history[-1]["step"] - result.history[0]["step"]
    per_epoch = statistics.median(r["epoch_time_s"] for r in timed)
    FIRST_EPOCH_EXTRA.setdefault(label, []).append(result.history[0]["epoch_time_s"] - per_epoch)
    return sum(r["epoch_time_s"] for r in timed) / steps


def minimal_step_seconds(spec: ArchSpec, data: DatasetSplits, hp: TrainHparams, device: str = "cpu") -> float:
    """The loop anyone would write by hand: forward, loss, backward, step, schedule (data on the device)."""
    model = build_seeded(spec, 0).to(device)
    opt = build_optimizer(model, hp.optimizer)
    x_all, y_all = (t.to(device) for t in data.train.tensors)
    steps_per_epoch = -(-len(y_all) // hp.batch_size)
    sched = build_scheduler(opt, hp.schedule, steps_per_epoch, hp.epochs)
    model.train()
    elapsed = 0.0
    for epoch in range(hp.epochs):
        order = torch.randperm(len(y_all), device=device)
        _sync(device)
        start = time.perf_counter()
        for i in range(steps_per_epoch):
            idx = order[i * hp.batch_size : (i + 1) * hp.batch_size]
            loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        _sync(device)
        if epoch > 0:
            elapsed += time.perf_counter() - start
    return elapsed / (steps_per_epoch * (hp.epochs - 1))


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="cifar_resnet20", choices=sorted(SHAPES))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="steps per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial; the first is a warm-up and not timed")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the engine's data stays in host memory)")
    parser.add_argument("--capture", action="store_true", help="add the captured step (compute.capture: graphs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    shape = SHAPES[args.model]
    spec = ArchSpec(args.model, 10, shape, KWARGS.get(args.model, {}))
    data = make_data(shape, args.batch * args.steps)
    hp = recipe(args.epochs, args.batch)
    dev = args.device
    runs = {
        "minimal": lambda: minimal_step_seconds(spec, data, hp, dev),
        "engine": lambda: engine_step_seconds(spec, data, hp, None, dev),
        "engine_masked90": lambda: engine_step_seconds(spec, data, hp, 0.9, dev, label="engine_masked90"),
    }
    if args.capture:
        runs["engine_captured"] = lambda: engine_step_seconds(spec, data, hp, None, dev, "graphs", "engine_captured")
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for trial in range(args.trials):
        k = trial % len(names)
        for name in names[k:] + names[:k]:  # rotate the order: no variant always runs first
            times[name].append(runs[name]())
    med = {k: statistics.median(v) for k, v in times.items()}
    throughput = [m / e for m, e in zip(times["minimal"], times["engine"])]
    masked = [m / e for m, e in zip(times["engine_masked90"], times["engine"])]

    print(f"model {args.model}, batch {args.batch}, input {shape}, {dev}, {args.threads} threads, {args.trials} trials")
    for name, t in med.items():
        print(f"  {name:16s} {1000 * t:8.2f} ms/step (median)  {args.batch / t:9.1f} samples/s")
    for label, ratios, goal, ok in (
        ("engine / minimal loop throughput", throughput, ">= 0.95", statistics.median(throughput) >= 0.95),
        ("90%-masked / dense step time    ", masked, "<= 1.05", statistics.median(masked) <= 1.05),
    ):
        print(
            f"{label}: {statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f}, "
            f"goal {goal})  {'OK' if ok else 'MISSED'}"
        )
    if args.capture:
        captured = [c / e for c, e in zip(times["engine_captured"], times["engine"])]
        # the first captured trial compiles with cold caches (later ones may reuse its code): the cost a job pays
        compile_s = max(FIRST_EPOCH_EXTRA["engine_captured"]) - statistics.median(FIRST_EPOCH_EXTRA["engine"])
        saved = (med["engine"] - med["engine_captured"]) * args.steps  # seconds per epoch of --steps steps
        pays = (
            f"pays back after {compile_s / saved:.1f} epochs of {args.steps} steps" if saved > 0 else "never pays back"
        )
        print(
            f"captured / eager step time      : {statistics.median(captured):.3f} (range {min(captured):.3f}-"
            f"{max(captured):.3f}); compile {compile_s:.1f} s once per job; {pays}"
        )


if __name__ == "__main__":
    main()
