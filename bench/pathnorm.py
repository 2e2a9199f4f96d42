"""Path-norm speed and accuracy, as ratios against baselines measured in the same run.

1. One exact path-norm per q (float32, scaled arithmetic) vs one plain float32 forward pass of the
   same model on the same all-ones input at batch size 1, torchvision ResNet-18/50, DenseNet-121,
   MNASNet 1.0 and ShuffleNetV2 1.0 on CPU:
   time ratio per q, goal <= 1.5. Trials alternate the two and report the median and range of the
   paired ratios, so drift of a shared machine cancels out. The model's trace is cached after the
   first call (the per-epoch use); its one-off cost is printed separately.
2. Agreement of that float32 value with the float64 computation: relative difference, goal <= 1e-6.
3. The per-epoch analysis of the path-norm study (path-norms for five q plus train-margin quantiles)
   vs the epoch's training time, on the embedded digits study: goal <= 10%.

BatchNorm statistics are randomised first, so the BN shifts (and their paths) are not zero.

    python bench/pathnorm.py [--archs resnet18 resnet50] [--trials 7] [--reps 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

from sparselab.metrics import path_graph
from sparselab.metrics.pathnorm import DEFAULT_QS, path_norms

QS = DEFAULT_QS


def realistic(arch: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)().eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    return model


def best_of(fn, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def speed(arch: str, trials: int, reps: int) -> None:
    model = realistic(arch)
    x = torch.ones(1, 3, 224, 224)
    with torch.no_grad():
        model(x)
        forward = lambda: model(x)  # noqa: E731
        t0 = time.perf_counter()
        path_graph.trace(model)
        trace_s = time.perf_counter() - t0
        ratios: dict[float, list[float]] = {q: [] for q in QS}
        fwd_times = []
        for _ in range(trials):
            for q in QS:
                f = best_of(forward, reps)
                p = best_of(lambda q=q: path_norms(model, [q]), reps)
                ratios[q].append(p / f)
                fwd_times.append(f)
        fp32 = path_norms(model, QS)
        fp64 = path_norms(model, QS, dtype=torch.float64)
    print(
        f"\n{arch}: forward {statistics.median(fwd_times) * 1e3:.1f} ms at batch 1 (224x224, {torch.get_num_threads()} threads);"
        f" one-off trace {trace_s * 1e3:.1f} ms"
    )
    print(
        f"  {'q':>4}  {'path-norm/forward':>18}  {'range':>13}  {'goal':>6}  {'log10 L_q':>11}  {'rel. diff to fp64':>17}  goal"
    )
    for q, a, b in zip(QS, fp32, fp64):
        r = ratios[q]
        diff = abs(10 ** (a.log10 - b.log10) - 1)
        ok_speed = "OK" if statistics.median(r) <= 1.5 else "MISS"
        ok_acc = "OK" if diff <= 1e-6 else "MISS"
        print(
            f"  {q:4g}  {statistics.median(r):18.3f}  {min(r):6.2f}-{max(r):<6.2f}  {ok_speed:>6}  {a.log10:11.4f}  {diff:17.2e}  {ok_acc}"
        )


def analysis_overhead(epochs: int = 5) -> None:
    """Per-epoch analysis (five path-norms + margins on 512 train samples) vs the epoch's training,
    on the embedded digits study's IMP network, and the estimate at ImageNet scale."""
    import csv
    import tempfile

    from sparselab.config import ComputeHparams, DataHparams, ModelHparams, TrainHparams
    from sparselab.studies.pathnorm.analysis import AnalysisSpec
    from sparselab.studies.pathnorm.subsets import run_subset
    from sparselab.train.run import RunFiles

    recipe = TrainHparams.from_dict(
        {"epochs": epochs, "batch_size": 64, "optimizer": {"lr": 0.05}, "schedule": {"kind": "constant"}}
    )
    with tempfile.TemporaryDirectory() as tmp:
        files = RunFiles.in_directory(tmp)
        run_subset(
            files,
            data=DataHparams(source="digits", val_fraction=0.1),
            model=ModelHparams("cifar_resnet20", {"width": 8}),
            recipe=recipe,
            fraction=1.0,
            seed=0,
            analysis=AnalysisSpec(margin_samples=512),
            compute=ComputeHparams(device="cpu", progress="lines"),
        )
        with open(files.metrics_csv) as f:
            rows = list(csv.DictReader(f))[1:]  # epoch 1 warms up
    ratios = [float(r["analysis_time_s"]) / float(r["epoch_time_s"]) for r in rows]
    print(
        f"\nper-epoch analysis, digits ResNet-20 (width 8, 1,212 train images, 512 for margins): "
        f"{statistics.median(ratios):.1%} of the epoch's training time (range {min(ratios):.1%}-{max(ratios):.1%})"
    )
    n, subset = 1_268_355, 50_000
    print(
        f"ImageNet estimate (configs/gbrg24.yaml): margins on {subset:,} of {n:,} images, forward only "
        f"~ {subset / (3 * n):.1%} of an epoch; five path-norms ~ 10 forward passes at batch 1 (negligible). Goal <= 10%."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--archs", nargs="+", default=["resnet18", "resnet50", "densenet121", "mnasnet1_0", "shufflenet_v2_x1_0"]
    )
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    for arch in args.archs:
        speed(arch, args.trials, args.reps)
    analysis_overhead()


if __name__ == "__main__":
    main()
