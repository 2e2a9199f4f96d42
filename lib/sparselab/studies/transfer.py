"""The sparse-transfer study (Iofinova et al., CVPR 2022) as workflow jobs.

Upstreams: AC/DC from scratch (:func:`run_acdc`), GMP of the dense upstream (:func:`run_gmp`), and
imported checkpoints (:func:`run_import`). Transfer: features of an upstream on a downstream
dataset extracted once and cached (:func:`run_feature_extraction`), linear heads trained on them per
seed (:func:`run_linear`), full finetuning with the backbone masks kept (:func:`run_full`), and the
from-scratch baseline (:func:`run_scratch`). Every job ends with a small ``summary.json`` (test top-1
and mean per-class accuracy, the measured backbone sparsity) that the records rule collects.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..compute import configure_determinism, select_device
from ..config import ComputeHparams, DataHparams, ModelHparams, TrainHparams
from ..data import build_splits, make_loader
from ..dst.layers import sparse_tensors
from ..io.atomic import atomic_path, atomic_write_json
from ..io.checkpoint import file_sha256, load_checkpoint
from ..sparsity.acdc import ACDC
from ..sparsity.mask import Mask
from ..train.engine import TrainResult
from ..train.run import RunFiles, run_training
from ..transfer.full import run_full_finetuning
from ..transfer.imports import import_checkpoint
from ..transfer.linear import extract_features, load_features, logistic_regression, save_features, train_linear_head
from .dst.gradual import GradualSpec, run_gradual_pruning

__all__ = ["run_acdc", "run_gmp", "run_import", "run_feature_extraction", "run_linear", "run_full", "run_scratch",
           "backbone_sparsity"]  # fmt: skip


def backbone_sparsity(model: torch.nn.Module) -> float:
    """Zeros among the Conv2d/Linear weights before the classifier (the transferred part)."""
    weights = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    head = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)][-1]
    names = [f"{n}.weight" for n in weights if n != head]
    return Mask.from_zeros(model, names).sparsity if names else 0.0


def _layers(model: torch.nn.Module, arch: str, sparse_layers: str | Sequence[str]) -> list[str]:
    return sparse_tensors(model, arch, sparse_layers if isinstance(sparse_layers, str) else list(sparse_layers))


def _test_metrics(result: TrainResult) -> dict[str, float]:
    """The test metrics of the weights the run ends with (the engine always evaluates the last epoch)."""
    final = result.final
    return {"top1": final["test_top1"], "mean_per_class": final["test_mean_per_class"], "loss": final["test_loss"]}


def _upstream_summary(result: TrainResult, method: str, target: float) -> dict[str, Any]:
    final = result.final
    return {"method": method, "target_sparsity": target, "sparsity": result.mask.sparsity if result.mask is not None else 0.0,
            "weight_sparsity": backbone_sparsity(result.model), "test_top1": final.get("test_top1"),
            "epochs": int(final.get("epoch", 0))}  # fmt: skip


# ---------------------------------------------------------------------------------------- upstreams
def run_acdc(
    files: RunFiles,
    summary_json: str | Path,
    *,
    data: DataHparams,
    model: ModelHparams,
    recipe: TrainHparams,
    sparsity: float,
    sparse_layers: str | Sequence[str],
    seed: int,
    compute: ComputeHparams,
) -> TrainResult:
    """AC/DC from scratch: the dense/sparse calendar over ``recipe.epochs``, global magnitude over
    ``sparse_layers``; the final model is the sparse one of the last epoch."""
    callback = ACDC(lambda net: _layers(net, model.arch, sparse_layers), sparsity, recipe.epochs)
    result = run_training(files, data=data, model=model, recipe=recipe, seed=seed, compute=compute, method="acdc",
                          callbacks=(callback,))  # fmt: skip
    if result.mask is None or abs(result.mask.sparsity - sparsity) > 1.0 / result.mask.numel + 1e-9:
        raise RuntimeError(f"AC/DC did not end in a sparse phase at {sparsity} (mask: {result.mask and result.mask.sparsity})")
    atomic_write_json(summary_json, _upstream_summary(result, "acdc", sparsity))
    return result


def run_gmp(
    files: RunFiles,
    summary_json: str | Path,
    *,
    dense: str | Path,
    data: DataHparams,
    recipe: TrainHparams,
    sparsity: float,
    options: Mapping[str, Any],
    sparse_layers: str | Sequence[str],
    seed: int,
    compute: ComputeHparams,
) -> TrainResult:
    """GMP of the dense upstream: the cubic ramp to ``sparsity`` under one global magnitude
    threshold over ``sparse_layers`` (the AC/DC repo's global variant), then training to the end."""
    spec = GradualSpec(target=float(sparsity), sparse_layers=sparse_layers if isinstance(sparse_layers, str) else tuple(sparse_layers),
                       start=int(options.get("start", 0)), freq=int(options.get("freq", 1)),
                       iterations=int(options.get("iterations", 4)), schedule=options.get("schedule", "cubic"),
                       by="threshold")  # fmt: skip
    result = run_gradual_pruning(files, None, dense=dense, data=data, recipe=recipe, spec=spec, seed=seed, compute=compute)
    atomic_write_json(summary_json, _upstream_summary(result, "gmp", sparsity))
    return result


def run_import(source: str | Path, out: str | Path, report_json: str | Path, *, kind: str, arch: str,
               arch_kwargs: Mapping[str, Any], num_classes: int) -> dict[str, Any]:  # fmt: skip
    """An external checkpoint in our format, with its measured sparsity (what the import reports)."""
    result = import_checkpoint(source, kind, arch, num_classes, Path(out), arch_kwargs=dict(arch_kwargs))  # type: ignore[arg-type]
    report = {"source": str(source), "kind": kind, "arch": arch, "sparsity": result.sparsity,
              "per_layer": result.per_layer, "notes": result.notes}  # fmt: skip
    atomic_write_json(report_json, report)
    return report


# ---------------------------------------------------------------------------------------- transfer
def run_feature_extraction(
    upstream: str | Path,
    data: DataHparams,
    train_out: str | Path,
    test_out: str | Path,
    *,
    compute: ComputeHparams,
    batch_size: int = 256,
) -> None:
    """One eval-mode pass of the upstream over the downstream train (no augmentation) and test
    splits; the features (input of the last Linear) are cached as safetensors with a sidecar."""
    ckpt = load_checkpoint(upstream)
    splits = build_splits(data)
    if tuple(ckpt.spec.input_shape) != tuple(splits.info.input_shape):
        raise ValueError(f"{upstream}: the upstream takes inputs {tuple(ckpt.spec.input_shape)}, {data.source} gives "
                         f"{tuple(splits.info.input_shape)}; set the downstream dataset's image_size/channels")  # fmt: skip
    device = select_device(compute.device)
    configure_determinism(compute.deterministic)
    model = ckpt.model.to(device)
    meta = {"upstream": str(upstream), "upstream_sha256": file_sha256(upstream), "source": data.source,
            "num_classes": splits.info.num_classes, "backbone_sparsity": backbone_sparsity(ckpt.model)}  # fmt: skip
    for split, ds, out in (("train", splits.train_eval, train_out), ("test", splits.test, test_out)):
        features, labels = extract_features(model, make_loader(ds, batch_size, shuffle=False), device)
        save_features(out, features, labels, {**meta, "split": split})


def run_linear(
    train_features: str | Path,
    test_features: str | Path,
    summary_json: str | Path,
    history_csv: str | Path,
    *,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    """A linear head per seed on the cached features (SGD: the paper's protocol; or L-BFGS logistic
    regression); the last epoch's test top-1 and mean per-class accuracy of every seed."""
    xtr, ytr, meta = load_features(train_features)
    xte, yte, _ = load_features(test_features)
    classes = int(meta["num_classes"])
    run = Path(summary_json).parent
    per_seed: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    for seed in options["seeds"]:
        if options["solver"] == "lbfgs":
            torch.manual_seed(seed)
            _, final = logistic_regression((xtr, ytr), (xte, yte), classes, l2=float(options["l2"]), max_iter=int(options["max_iter"]),
                                           run_name=f"{run}, seed {seed}")  # fmt: skip
            rows = [{"epoch": 1, **final}]
        else:
            _, rows = train_linear_head((xtr, ytr), (xte, yte), classes, epochs=int(options["epochs"]), lr=float(options["lr"]),
                                        momentum=float(options["momentum"]), weight_decay=float(options["weight_decay"]),
                                        batch_size=int(options["batch_size"]), decay_after=tuple(options["decay_after"]),
                                        seed=int(seed), run_name=f"{run}, seed {seed}")  # fmt: skip
            final = rows[-1]
        history += [{"seed": seed, **r} for r in rows]
        per_seed[str(seed)] = {"top1": final["test_top1"], "mean_per_class": final["test_mean_per_class"]}
    summary = {"solver": options["solver"], "dim": int(xtr.shape[1]), "train_samples": int(ytr.numel()),
               "test_samples": int(yte.numel()), "backbone_sparsity": meta.get("backbone_sparsity"),
               "upstream": meta.get("upstream"), "seeds": per_seed}  # fmt: skip
    columns = list(dict.fromkeys(k for r in history for k in r))
    with atomic_path(history_csv) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
    atomic_write_json(summary_json, summary)
    return summary


def run_full(
    files: RunFiles,
    summary_json: str | Path,
    *,
    upstream: str | Path,
    data: DataHparams,
    recipe: TrainHparams,
    lr: float | None,
    seed: int,
    compute: ComputeHparams,
) -> dict[str, Any]:
    """Full finetuning (backbone masks kept) with the downstream dataset's lr; last-epoch test metrics."""
    if lr is not None:
        recipe = dataclasses.replace(recipe, optimizer=dataclasses.replace(recipe.optimizer, lr=float(lr)))
    result = run_full_finetuning(files, upstream=upstream, data=data, recipe=recipe, seed=seed, compute=compute)
    summary = {"mode": "full", "lr": recipe.optimizer.lr, "epochs": recipe.epochs,
               "backbone_sparsity": backbone_sparsity(result.model),
               **_test_metrics(result)}  # fmt: skip
    atomic_write_json(summary_json, summary)
    return summary


def run_scratch(
    files: RunFiles,
    summary_json: str | Path,
    *,
    data: DataHparams,
    model: ModelHparams,
    recipe: TrainHparams,
    seed: int,
    compute: ComputeHparams,
) -> dict[str, Any]:
    """The baseline: the upstream's architecture trained from scratch on the downstream data."""
    result = run_training(files, data=data, model=model, recipe=recipe, seed=seed, compute=compute, method="scratch")
    summary = {"mode": "scratch", "epochs": recipe.epochs, "backbone_sparsity": 0.0,
               **_test_metrics(result)}  # fmt: skip
    atomic_write_json(summary_json, summary)
    return summary
