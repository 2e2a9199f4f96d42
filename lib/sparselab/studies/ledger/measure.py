"""The ledger's measurement of one study's final checkpoints (rule ``ledger_measure``): one row
per checkpoint with its lineage, SHA-256, sparsity, parameters, FLOPs, exact L^q path-norms, train
margin quantiles, the Theorem 3.1 bound, train and test top-1 and the generalisation gap.

One job per study: process start and imports cost about 3 s, a digits checkpoint well under one.
Nothing is trained, and the checkpoints are only read. A model the path-norm code refuses (an
operation it is not defined for) keeps empty path-norm and bound cells, with the reason in
``pathnorm_error``; the other measures are still filled.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn

from ...compute import Placement, place
from ...config import ComputeHparams, DataHparams
from ...data import build_splits, make_loader
from ...data.registry import DatasetInfo, DatasetSplits
from ...data.splits import subset_indices, take
from ...io.checkpoint import read_meta
from ...io.hashing import file_sha256
from ...metrics.bound import BoundConstants, normalisation_sup_norm, theorem31_first_part
from ...metrics.classification import evaluate
from ...metrics.complexity import complexity, flops_sparse
from ...metrics.margin_stats import logit_statistics, margin_quantiles
from ...metrics.path_graph import UnsupportedModelError, effective_weight, trace
from ...metrics.pathnorm import path_norms
from ...models.checkpoint import check_fits, load_checkpoint
from ..base.records import write_records
from .options import MeasureSpec

log = logging.getLogger("sparselab")

__all__ = ["bound_constants", "measure_checkpoint", "measure_part", "weight_sparsity", "weighted_depth"]

# The ledger's columns in order (lineage first); measures a model cannot have stay empty.
LINEAGE = ("study", "method", "dataset", "model", "sparsity", "seed", "detail", "path", "sha256")
LINEAGE_TAIL = ("parent", "parent_role", "parents", "also_in")


def weighted_depth(model: nn.Module) -> int:
    """D of Theorem 3.1: the most Conv2d/Linear layers on one path from input to output of the
    model's fx trace (LeNet-300-100: 3; a CIFAR ResNet-20: 20). BatchNorm is an affine map the
    reference folds into its convolution, so it adds no depth."""
    graph = trace(model)
    depth: dict[fx.Node, int] = {}
    for node in graph.nodes():
        before = max((depth[a] for a in node.all_input_nodes), default=0)
        weighted = node.op == "call_module" and isinstance(graph.modules[str(node.target)], (nn.Conv2d, nn.Linear))
        depth[node] = before + int(weighted)
    return max(depth.values(), default=0)


def weight_sparsity(model: nn.Module) -> float:
    """Zeros among the Conv2d/Linear weights as the forward pass uses them (a tied layer's weight is
    its bank's values, so it has no parameter named ``<layer>.weight`` to read)."""
    weights = [effective_weight(m) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / total if total else 0.0


def _max_pooling(model: nn.Module) -> tuple[int, int]:
    """K (inputs of the largest max-pool window) and P (1 with max-pooling, else 0) of Theorem 3.1."""
    windows = [m.kernel_size for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    if not windows:
        return 1, 0
    sizes = [(k, k) if isinstance(k, int) else tuple(k) for k in windows]
    return max(a * b for a, b in sizes), 1


def bound_constants(model: nn.Module, info: DatasetInfo, n: int) -> BoundConstants:
    """Theorem 3.1's constants of a model trained on ``n`` samples of a dataset: B from the
    dataset's normalisation over inputs in [0, 1] (float32, as the reference), D from the trace,
    K and P from its max-pools, d_in and d_out from the data. For digits this gives the config's
    ``pathnorm.bound`` digits entry (B, D = 3 / 20, K = 1, P = 0, d_in = 64, d_out = 10, n = 1212)."""
    K, P = _max_pooling(model)
    return BoundConstants(
        B=normalisation_sup_norm(info.mean, info.std, float32=True),
        D=weighted_depth(model),
        K=K,
        P=P,
        d_in=math.prod(info.input_shape),
        d_out=info.num_classes,
        n=n,
    )


def _train_subset(splits: DatasetSplits, spec: MeasureSpec) -> torch.utils.data.Dataset:
    """The non-augmented train samples (the ones the checkpoint trained on), optionally a seeded subset."""
    ds = splits.train_eval
    n = len(ds)  # type: ignore[arg-type]
    if spec.margin_samples is None or spec.margin_samples >= n:
        return ds
    return take(ds, subset_indices(n, spec.margin_samples / n, spec.seed)[: spec.margin_samples])


def _parents(meta: Mapping[str, Any]) -> str:
    """The sidecar's lineage as ``role:path`` words; ``unknown`` for sidecars written before it existed."""
    if "parents" not in meta:
        return "unknown"
    return " ".join(f"{p.get('role', '')}:{p.get('path', '')}" for p in meta["parents"])


def measure_checkpoint(
    row: Mapping[str, Any], splits: DatasetSplits, spec: MeasureSpec, placement: Placement
) -> dict[str, Any]:
    """Every ledger column of one checkpoint (``row``: a plan's ``ledger_row``)."""
    t0 = time.perf_counter()
    path = str(row["path"])
    ckpt = load_checkpoint(path)  # verifies the tensors against the sidecar's SHA-256
    check_fits(ckpt.spec, splits.info, path)
    out: dict[str, Any] = {k: row.get(k, "") for k in LINEAGE if k != "sha256"}
    out["sha256"] = file_sha256(path)
    out.update({"parent": row.get("parent", ""), "parent_role": row.get("parent_role", "")})
    out.update({"parents": _parents(read_meta(path)), "also_in": row.get("also_in", ""), "arch": ckpt.spec.arch})
    model = ckpt.model.eval()
    shape = tuple(ckpt.spec.input_shape)
    cost = complexity(model, shape, ckpt.mask)
    out.update(
        measured_sparsity=weight_sparsity(model),
        params=cost.params,
        params_alive=cost.params_alive,
        flops=cost.flops,
        flops_sparse=flops_sparse(model, shape, ckpt.mask),
    )
    model = placement.model(model)
    # exact quantities: float32 logits, never bf16 autocast (as the path-norm study)
    train = _train_subset(splits, spec)
    loader = make_loader(train, spec.batch_size, shuffle=False, **placement.loader_options())
    stats = logit_statistics(model, loader, placement.device, channels_last=placement.channels_last)
    quantiles = margin_quantiles(stats.margins)
    test_loader = make_loader(splits.test, spec.batch_size, shuffle=False, **placement.loader_options())
    test = evaluate(model, test_loader, placement.device)
    out.update(train_samples=stats.n, train_top1=stats.top1, test_top1=test["top1"])
    out["gap"] = out["train_top1"] - out["test_top1"]
    out.update(quantiles)
    median = quantiles["margin_q1_2"]
    out["inverse_margin"] = 1 / median if median > 0 else math.nan
    out["pathnorm_error"] = ""
    try:
        for pn in path_norms(model, spec.qs, shape):
            out[f"L{pn.q:g}"] = pn.value
        c = bound_constants(model, splits.info, len(splits.train_eval))  # type: ignore[arg-type]
    except UnsupportedModelError as err:
        out["pathnorm_error"] = str(err).splitlines()[0]
        log.info("%s: no path-norm (%s)", path, out["pathnorm_error"])
    else:
        factor = theorem31_first_part(c)
        out.update({f"bound_{k}": v for k, v in vars(c).items()})
        out["bound_factor"] = factor
        out["bound"] = factor * out["L1"]
        out["bound_margin"] = out["bound"] / median if median > 0 else math.nan
    out["seconds"] = time.perf_counter() - t0
    return out


def _data_of(row: Mapping[str, Any], datasets: Mapping[str, Mapping[str, Any]]) -> DataHparams:
    return DataHparams.from_dict({**datasets[row["dataset"]], **dict(row.get("data") or {})})


def measure_part(
    rows: Sequence[Mapping[str, Any]],
    datasets: Mapping[str, Mapping[str, Any]],
    options: Mapping[str, Any],
    out_csv: str | Path,
    *,
    compute: ComputeHparams | None = None,
) -> list[dict[str, Any]]:
    """Measure every checkpoint of one study and write its rows (the splits of each distinct data
    setting are built once)."""
    spec = MeasureSpec.from_dict(options, path="ledger")
    placement = place(compute or ComputeHparams())
    cache: dict[DataHparams, DatasetSplits] = {}
    measured = []
    for row in rows:
        data = _data_of(row, datasets)
        if data not in cache:
            cache[data] = build_splits(data)
        measured.append(measure_checkpoint(row, cache[data], spec, placement))
        log.info("%s: %.2f s", row["path"], measured[-1]["seconds"])
    write_records(measured, out_csv, first=LINEAGE)
    return measured
