"""Gradient-flow pruning speed, as ratios against baselines measured in the same run.

1. A training step (forward, backward, SGD step) of a physically pruned network vs the dense one,
   on the same batch: the time ratio should fall roughly with the FLOPs ratio (printed beside it).
   Each network is pruned by one global magnitude ranking to ``--target`` of its filters (VGG and
   MobileNet keep int(5%)+1 filters per layer, ResNets never prune the stem), as a study round does.
2. Importance estimation on 20 minibatches of 128 (2,560 samples) vs 20 training steps on the same
   minibatches: goal <= 1.2x for the first-order measures (one eval-mode forward/backward per
   minibatch, no optimizer step). GraSP-type measures (a double backward per class) are printed too.

Inputs are CIFAR-shaped random tensors; the networks are the study's at ``--width`` (1.0 = the
paper's size; the default 0.5 keeps the run to a few minutes on a 2-core CPU).

    python bench/gradflow.py [--archs vgg13 mobilenet resnet56] [--width 0.5] [--target 0.75] [--trials 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from sparselab.metrics.complexity import complexity
from sparselab.models import build_model
from sparselab.structured.dependency import channel_groups
from sparselab.structured.measures import importance
from sparselab.structured.ranking import minimum_widths, ranking_rows, select_filters
from sparselab.structured.removal import prune_filters

SHAPE = (3, 32, 32)
ARCHS = {
    "vgg13": ("vgg13_bn", lambda w: {"width": w, "relu_before_bn": True}, 0.05, ()),
    "mobilenet": ("mobilenet_v1", lambda w: {"width": w}, 0.05, ()),
    "resnet56": ("cifar_resnet56", lambda w: {"width": max(1, round(16 * w))}, 0.0, ("conv1",)),
}
FIRST_ORDER = ("loss_based", "biased_loss", "tfo", "fisher", "nvidia")
SECOND_ORDER = ("grasp", "grad_preserve")


def median_time(fn: Callable[[], object], trials: int) -> float:
    fn()  # warm-up (allocator, kernels)
    times = []
    for _ in range(trials):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def train_steps(
    model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], temperature: float = 5.0
) -> Callable[[], None]:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)

    def run() -> None:
        model.train()
        for x, y in batches:
            loss = F.cross_entropy(model(x) / temperature, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return run


def pruned_copy(
    model: nn.Module, min_fraction: float, protect: tuple[str, ...], target: float
) -> tuple[nn.Module, object]:
    groups = channel_groups(model, SHAPE)
    scores = importance(model, "mag_based", None)
    rows = ranking_rows(groups, protect=protect)
    keep = select_filters(scores, groups, int(target * rows), minimum_widths(groups, min_fraction), protect=protect)
    return prune_filters(model, groups, keep)


def step_speed(name: str, width: float, target: float, batch: int, trials: int) -> None:
    arch, kwargs, min_fraction, protect = ARCHS[name]
    torch.manual_seed(0)
    dense = build_model(arch, 10, SHAPE, **kwargs(width))
    pruned, mask = pruned_copy(dense, min_fraction, protect, target)
    x, y = torch.randn(batch, *SHAPE), torch.randint(0, 10, (batch,))
    cd, cp = complexity(dense, SHAPE), complexity(pruned, SHAPE, mask if len(mask) else None)  # type: ignore[arg-type]
    ratios = []
    for _ in range(trials):  # paired: dense and pruned alternate, drift of a shared machine cancels out
        td = median_time(train_steps(dense, [(x, y)]), 3)
        tp = median_time(train_steps(pruned, [(x, y)]), 3)
        ratios.append(tp / td)
    print(
        f"  {name:10s} {cd.params / 1e6:7.3f}M -> {cp.params_alive / 1e6:7.3f}M params | "
        f"FLOPs ratio {cp.flops / cd.flops:5.3f} (alive {cp.flops_alive / cd.flops:5.3f}) | "
        f"step time ratio {statistics.median(ratios):5.3f} (range {min(ratios):.3f}-{max(ratios):.3f})"
    )


def importance_speed(name: str, width: float, trials: int, measures: tuple[str, ...]) -> None:
    arch, kwargs, _, _ = ARCHS[name]
    torch.manual_seed(0)
    model = build_model(arch, 10, SHAPE, **kwargs(width))
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(128, *SHAPE, generator=g), torch.randint(0, 10, (128,), generator=g)) for _ in range(20)]
    pool = batches + [
        (torch.randn(128, *SHAPE, generator=g), torch.randint(0, 10, (128,), generator=g)) for _ in range(10)
    ]
    steps = median_time(train_steps(model, batches), max(1, trials // 2))
    cells = []
    for m in measures:
        if m in SECOND_ORDER:  # class-balanced 256 per class, read from a larger pool
            t = median_time(lambda m=m: importance(model, m, pool, grasp_samples=2560, num_classes=10), 1)
        else:
            t = median_time(lambda m=m: importance(model, m, batches), max(1, trials // 2))
        goal = " OK" if m not in FIRST_ORDER or t / steps <= 1.2 else " MISS"
        cells.append(f"{m} {t / steps:.2f}{goal if m in FIRST_ORDER else ''}")
    print(f"  {name:10s} 20 steps {steps:6.2f} s | " + " | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--target", type=float, default=0.75)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--second-order", action="store_true", help="also time grasp and grad_preserve (slow)")
    args = parser.parse_args()
    print(
        f"1. training step, pruned ({args.target:.0%} of filters by global magnitude) / dense, batch {args.batch}, "
        f"width {args.width}, {torch.get_num_threads()} threads"
    )
    for name in args.archs:
        step_speed(name, args.width, args.target, args.batch, args.trials)
    measures = FIRST_ORDER + (SECOND_ORDER if args.second_order else ())
    print("2. importance on 20 x 128 samples / 20 training steps on them (goal <= 1.2 for first-order measures)")
    for name in args.archs:
        importance_speed(name, args.width, args.trials, measures)


if __name__ == "__main__":
    main()
