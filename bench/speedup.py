"""Measured speed-ups of pruned models, ShrinkBench-style (Blalock et al., MLSys 2020; issue 18).

For every pruned model: its parameters, FLOPs of one forward pass, the theoretical speed-up (dense
FLOPs / remaining FLOPs: ``flops_sparse``, every masked weight skipped; ``flops_nm`` for 2:4
Linear layers) and the measured inference latency against the dense model, both timed in the same
run, interleaved (:func:`sparselab.metrics.latency.paired_latency`: eval mode, inference_mode,
warm-up, the ratio of median times over repeats, CUDA synchronised). Three kinds of pruning:

- ``narrowed``: filters removed physically (the gradient-flow study's networks): ResNet-20 and
  VGG-13 at CIFAR size 3x32x32, a global magnitude ranking of the filters removes ``--fractions``
  of them (``bench/gradflow.py``'s ``pruned_copy``: VGG keeps int(5%)+1 filters a layer, ResNets
  never prune the stem). A ResNet's residual-stream filters can only be masked: they still cost
  their full width, so the measured speed-up falls short of the theoretical one there.
- ``unstructured``: magnitude masks at 50% and 90% of every conv and Linear weight, zeros written
  into ordinary dense tensors: dense kernels do the same work, so the measured speed-up is about
  1.0 whatever the theoretical one says (the honest row).
- ``nm``: 2:4 masks on the Linear layers of an MLP/transformer-like stack (d -> 4d -> d blocks on
  a batch of tokens) converted by :func:`sparselab.models.semi_structured.to_semi_structured`
  (cuSPARSELt / CUTLASS), in float16 and float32: needs a CUDA GPU (compute capability >= 8.0);
  elsewhere one line says so.

    PYTHONPATH=lib python bench/speedup.py                 # every part (CPU: ~2 minutes on 2 cores)
    PYTHONPATH=lib python bench/speedup.py --quick         # tiny sizes, seconds (tests/test_bench_speedup.py)
    PYTHONPATH=lib python bench/speedup.py --parts nm --device cuda

Threads are torch's default unless ``--threads`` says otherwise; the header prints them.
``docs/performance.md`` records the results.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/gradflow.py: the study's pruning

from gradflow import pruned_copy  # noqa: E402

from sparselab.metrics.complexity import complexity, count_flops, flops_nm, flops_sparse, theoretical_speedup  # noqa: E402
from sparselab.metrics.latency import paired_latency  # noqa: E402
from sparselab.models import build_model  # noqa: E402
from sparselab.models.semi_structured import semi_structured_support, to_semi_structured  # noqa: E402
from sparselab.sparsity.magnitude import magnitude_mask  # noqa: E402
from sparselab.sparsity.mask import Mask  # noqa: E402
from sparselab.sparsity.nm import nm_mask  # noqa: E402

SHAPE = (3, 32, 32)
PARTS = ("narrowed", "unstructured", "nm")
# name -> (arch, kwargs at width w, min_fraction, protected convs): as bench/gradflow.py's ARCHS
ARCHS = {
    "resnet20": ("cifar_resnet20", lambda w: {"width": max(1, round(16 * w))}, 0.0, ("conv1",)),
    "vgg13": ("vgg13_bn", lambda w: {"width": w, "relu_before_bn": True}, 0.05, ()),
}
LABELS = {"resnet20": "ResNet-20", "vgg13": "VGG-13"}


@dataclasses.dataclass
class Row:
    model: str
    pruning: str
    device: str
    dtype: str
    batch: int | None
    params: int
    flops: int
    theoretical: float
    dense_ms: float | None = None
    pruned_ms: float | None = None
    measured: float | None = None


ROWS: list[Row] = []


@dataclasses.dataclass(frozen=True)
class Settings:
    device: torch.device
    width: float
    fractions: tuple[float, ...]
    sparsities: tuple[float, ...]
    batches: tuple[int, ...]
    repeats: int
    warmup: int
    min_sample_s: float
    mlp: tuple[int, int, int]  # (model dim, blocks, tokens)


def params_alive(model: nn.Module, shape: Sequence[int], mask: Mask | None) -> int:
    return complexity(model, shape, mask).params_alive


def emit(row: Row) -> None:
    ROWS.append(row)
    timing = (
        f"{row.dense_ms:.3f} ms -> {row.pruned_ms:.3f} ms, measured {row.measured:.2f}x"
        if row.measured is not None
        else "reference"
    )
    batch = f" batch {row.batch}" if row.batch is not None else ""
    print(
        f"  {row.model} {row.pruning} [{row.device} {row.dtype}{batch}]: {row.params:,} params, "
        f"{row.flops / 1e6:.2f} MFLOPs, theoretical {row.theoretical:.2f}x, {timing}",
        flush=True,
    )


def measure(
    label: str,
    pruning: str,
    dense: nn.Module,
    pruned: nn.Module,
    shape: Sequence[int],
    cost: tuple[int, int, float],
    s: Settings,
    dtype: torch.dtype = torch.float32,
) -> None:
    """One row per batch size: the pair timed on ``s.device`` with inputs of ``shape``."""
    params, flops, theory = cost
    g = torch.Generator().manual_seed(0)
    for batch in s.batches:
        x = torch.randn(batch, *shape, generator=g).to(device=s.device, dtype=dtype)
        lat = paired_latency(dense, pruned, x, repeats=s.repeats, warmup=s.warmup, min_sample_s=s.min_sample_s)
        emit(
            Row(
                label,
                pruning,
                s.device.type,
                str(dtype).removeprefix("torch."),
                batch,
                params,
                flops,
                theory,
                1e3 * lat.dense,
                1e3 * lat.pruned,
                lat.speedup,
            )
        )


def dense_model(name: str, s: Settings) -> nn.Module:
    arch, kwargs, _, _ = ARCHS[name]
    torch.manual_seed(0)
    return build_model(arch, 10, SHAPE, **kwargs(s.width)).eval()


def reference_row(label: str, dense: nn.Module, shape: Sequence[int], s: Settings, dtype: str = "float32") -> int:
    """The dense model's own row (theoretical 1.0, no timing: every other row times it); its FLOPs."""
    flops = count_flops(dense, shape)
    emit(Row(label, "dense", s.device.type, dtype, None, params_alive(dense, shape, None), flops, 1.0))
    return flops


def narrowed(name: str, dense: nn.Module, dense_flops: int, s: Settings) -> None:
    """Filters physically removed at each fraction; the pruned network is an ordinary narrower one
    (a ResNet's residual-stream filters masked at full width: counted removed in FLOPs, computed)."""
    _, _, min_fraction, protect = ARCHS[name]
    for fraction in s.fractions:
        pruned, mask = pruned_copy(dense, min_fraction, protect, fraction)
        kept = mask if len(mask) else None  # type: ignore[arg-type]
        flops = flops_sparse(pruned, SHAPE, kept)
        cost = (params_alive(pruned, SHAPE, kept), flops, theoretical_speedup(dense_flops, flops))
        measure(LABELS[name], f"filters {fraction:.0%} removed", dense, pruned.to(device=s.device), SHAPE, cost, s)


def unstructured(name: str, dense: nn.Module, dense_flops: int, s: Settings) -> None:
    """Magnitude masks (layerwise) written into dense weights: dense kernels, the same work."""
    for sparsity in s.sparsities:
        pruned = copy.deepcopy(dense)
        mask = magnitude_mask(pruned, sparsity)
        mask.apply_(pruned)
        flops = flops_sparse(pruned, SHAPE, mask)
        cost = (params_alive(pruned, SHAPE, mask), flops, theoretical_speedup(dense_flops, flops))
        measure(LABELS[name], f"unstructured {sparsity:.0%} (dense kernels)", dense, pruned, SHAPE, cost, s)


def cnns(names: Sequence[str], parts: Sequence[str], s: Settings) -> None:
    for name in names:
        dense = dense_model(name, s).to(device=s.device)
        dense_flops = reference_row(LABELS[name], dense, SHAPE, s)
        if "narrowed" in parts:
            narrowed(name, dense, dense_flops, s)
        if "unstructured" in parts:
            unstructured(name, dense, dense_flops, s)


def mlp(dim: int, blocks: int) -> nn.Sequential:
    """A transformer's feed-forward stack: ``blocks`` x (Linear d->4d, GELU, Linear 4d->d)."""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(blocks):
        layers += [nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)]
    return nn.Sequential(*layers).eval()


def semi_structured(s: Settings) -> None:
    """2:4 Linear layers through the sparse tensor cores, float16 and float32, against dense."""
    dim, blocks, tokens = s.mlp
    label = f"MLP {blocks}x({dim}-{4 * dim}-{dim}), {tokens} tokens"
    reason = semi_structured_support(s.device)
    if reason:
        print(f"  {label}, 2:4: not measured: these rows need a CUDA GPU ({reason})", flush=True)
        return
    base = mlp(dim, blocks)
    mask = nm_mask(base)
    masked = copy.deepcopy(base)
    mask.apply_(masked)
    for dtype in (torch.float16, torch.float32):
        name = str(dtype).removeprefix("torch.")
        dense = copy.deepcopy(base).to(device=s.device, dtype=dtype)
        dense_flops = reference_row(label, base, (dim,), s, name)
        flops = flops_nm(masked, (dim,), mask)
        pruned = copy.deepcopy(masked).to(device=s.device, dtype=dtype)
        report = to_semi_structured(pruned, require=True)
        if report.dense:
            print(f"  {label} {name}: layers left dense: {report.dense}", flush=True)
        cost = (params_alive(masked, (dim,), mask), flops, theoretical_speedup(dense_flops, flops))
        sub = dataclasses.replace(s, batches=(tokens,))
        measure(label, f"2:4 ({len(report.converted)} Linear layers)", dense, pruned, (dim,), cost, sub, dtype)


def _ms(v: float | None) -> str:
    return f"{v:.3f}" if v is not None else "—"


def table() -> str:
    head = "| model | pruning | device | dtype | batch | params | MFLOPs | theoretical speed-up | latency dense (ms) | latency pruned (ms) | measured speed-up |"
    lines = [head, "|" + "---|" * 11]
    for r in ROWS:
        lines.append(
            f"| {r.model} | {r.pruning} | {r.device} | {r.dtype} | {r.batch if r.batch is not None else '—'} | "
            f"{r.params:,} | {r.flops / 1e6:.2f} | {r.theoretical:.2f}x | {_ms(r.dense_ms)} | {_ms(r.pruned_ms)} | "
            f"{f'{r.measured:.2f}x' if r.measured is not None else '—'} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier of the CNNs (1.0: the paper's)")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.5, 0.9])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 1])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few repeats: checks the script")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(
        "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device.replace("auto", "cpu")
    )
    if device.type == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device here")
        return 2
    if args.quick:
        s = Settings(device, 0.25, (0.5,), tuple(args.sparsities), (8,), 3, 1, 0.002, (64, 1, 128))
    else:
        s = Settings(
            device,
            args.width,
            tuple(args.fractions),
            tuple(args.sparsities),
            tuple(args.batches),
            args.repeats,
            2,
            0.05,
            (1024, 4, 4096),
        )
    print(
        f"speed-ups on {device} ({torch.get_num_threads()} threads, torch {torch.__version__}); "
        f"CNNs at width {s.width}, inputs {'x'.join(map(str, SHAPE))}, {s.repeats} interleaved repeats"
    )
    ROWS.clear()
    if {"narrowed", "unstructured"} & set(args.parts):
        cnns(args.archs, args.parts, s)
    if "nm" in args.parts:
        semi_structured(s)
    print()
    print(table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
