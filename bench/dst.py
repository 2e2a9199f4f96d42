"""Dynamic sparse training speed, as ratios against baselines measured in the same run.

1. A training step of WRN-28-2 with 90%-sparse masks (gradients of inactive entries zeroed before
   the optimizer step, masks enforced after it: what the engine does for every sparse method) vs
   the same step without masks: goal <= 1.05x. Trials alternate the two (paired ratios).
2. One DSR reallocation (magnitudes, global threshold, regrowth, new element-wise mask enforced)
   relative to an epoch of training at the paper's periods: CIFAR-10 has 500 iterations per epoch
   at batch 100, so P = 100 means 5 reallocations per epoch: goal <= 2% of the epoch.

Inputs are CIFAR-shaped random tensors at batch 100; the epoch time is extrapolated from measured
steps. ``--width`` scales WRN's widen factor (2.0 = the paper's network).

    python bench/dst.py [--width 2.0] [--trials 5] [--steps 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from sparselab.dst.callbacks import DSR, StepSchedule
from sparselab.dst.layers import initial_masks, sparse_tensors, to_mask
from sparselab.models import build_model

SHAPE = (3, 32, 32)


def step_fn(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, bound=None):  # type: ignore[no-untyped-def]
    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if bound is not None:
            bound.mask_gradients()
        opt.step()
        if bound is not None:
            bound.enforce()

    return step


def timed(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class _Ctx:
    def __init__(self, model: torch.nn.Module) -> None:
        self.model, self.epoch, self.step = model, 1, 0
        self.bound = None

    def set_mask(self, mask) -> None:  # type: ignore[no-untyped-def]
        self.bound = mask.bind(self.model)
        self.bound.enforce()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=float, default=2.0)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    dense = build_model("wrn", 10, SHAPE, depth=28, widen_factor=args.width)
    sparse = build_model("wrn", 10, SHAPE, depth=28, widen_factor=args.width)
    sparse.load_state_dict(dense.state_dict())
    names = sparse_tensors(sparse, "wrn")
    masks = initial_masks(sparse, names, 0.9, torch.Generator().manual_seed(1))
    bound = to_mask(sparse, masks).bind(sparse)
    bound.enforce()
    x, y = torch.randn(100, *SHAPE), torch.randint(0, 10, (100,))
    opts = [
        torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
        for m in (dense, sparse)
    ]
    dense_step = step_fn(dense, opts[0], x, y)
    sparse_step = step_fn(sparse, opts[1], x, y, bound)
    dense_step(), sparse_step()  # warm-up
    ratios, dense_times = [], []
    for _ in range(args.trials):
        td = timed(dense_step, args.steps)
        ts = timed(sparse_step, args.steps)
        ratios.append(ts / td)
        dense_times.append(td)
    step_s = statistics.median(dense_times)
    print(
        f"1. WRN-28-{args.width:g}, batch 100, {torch.get_num_threads()} threads: dense step {step_s * 1e3:.0f} ms; "
        f"90%-sparse masked step / dense step = {statistics.median(ratios):.3f} "
        f"(range {min(ratios):.3f}-{max(ratios):.3f}; goal <= 1.05)"
    )

    dsr = DSR(masks, StepSchedule({0: 100}), None, seed=2, target=20_000, threshold=1e-3)
    ctx = _Ctx(sparse)
    with torch.no_grad():  # weights of a trained-looking scale: the realloc's cost does not depend on them
        for n, p in sparse.named_parameters():
            if n in masks:
                p.mul_(to_mask(sparse, {n: masks[n]})[n])

    def realloc() -> None:
        dsr.masks = dsr.reallocate(ctx)  # type: ignore[arg-type]
        ctx.set_mask(to_mask(sparse, dsr.masks))

    realloc()
    t = timed(realloc, max(3, args.trials))
    epoch_s = 500 * step_s
    shares = ", ".join(f"P = {p}: {500 / p * t / epoch_s:.3%}" for p in (100, 200, 400, 800))
    print(
        f"2. one DSR reallocation {t * 1e3:.0f} ms; an epoch ~ 500 steps = {epoch_s:.0f} s; share of the epoch at "
        f"{shares} (goal <= 2%)"
    )


if __name__ == "__main__":
    main()
