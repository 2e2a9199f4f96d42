"""Evaluate a saved checkpoint on its dataset's splits and summarise it as one JSON record."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ..compute import place
from ..config import ComputeHparams, DataHparams
from ..data import build_splits, make_loader
from ..io.atomic import atomic_write_json
from ..models.checkpoint import check_fits, load_checkpoint, parameter_counts
from ..sparsity.mask import Mask, prunable_parameters
from .classification import evaluate
from .complexity import complexity, flops_nm, flops_sparse, theoretical_speedup


def nm_pattern(meta: Mapping[str, Any]) -> tuple[int, int]:
    """The N:M pattern a checkpoint was made for (its ``nm`` record, in the sidecar or its hparams),
    else 2:4, the one pattern PyTorch's semi-structured kernels run."""
    nm = meta.get("nm") or (meta.get("hparams") or {}).get("nm") or {}
    return int(nm.get("n", 2)), int(nm.get("m", 4))


def complexity_record(
    model: nn.Module, input_shape: Sequence[int], mask: Mask | None, n: int, m: int
) -> dict[str, Any]:
    """Alive parameters and FLOPs of one batch-1 forward pass: as computed (dense), with every masked
    weight skipped (ShrinkBench's theoretical count and speed-up), and as N:M kernels run them
    (Linear layers whose mask is N:M at N/M, everything else dense)."""
    cost = complexity(model, input_shape, mask)
    sparse = flops_sparse(model, input_shape, mask)
    return {
        "params_alive": cost.params_alive,
        "flops": cost.flops,
        "flops_sparse": sparse,
        "theoretical_speedup": theoretical_speedup(cost.flops, sparse),
        "nm_pattern": f"{n}:{m}",
        "flops_nm": flops_nm(model, input_shape, mask if mask is not None else Mask({}), n, m),
    }


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: DataHparams,
    out_json: str | Path,
    *,
    compute: ComputeHparams | None = None,
    labels: Mapping[str, Any] | None = None,
    history_csv: str | Path | None = None,
    batch_size: int = 512,
    verify: bool = True,
) -> dict[str, Any]:
    """Test (and val, if held out) loss/top-1/top-5, sparsity, parameter counts and complexity
    (:func:`complexity_record`, with the checkpoint's N:M pattern: :func:`nm_pattern`) of a checkpoint.

    ``labels`` (study, model, scope, sparsity, seed...) are copied into the record so tables can be
    built from records alone. With ``history_csv`` (the run's per-epoch metrics), its first row is
    kept as ``start`` (e.g. accuracy right after pruning, before finetuning). A dataset whose classes
    or input shape differ from the checkpoint's is refused before anything is evaluated (a 10-class
    model scored on 3 classes would give a number, not an error). ``verify``: see ``load_checkpoint``.
    """
    placement = place(compute or ComputeHparams())
    ckpt = load_checkpoint(checkpoint, verify=verify)
    splits = build_splits(data)
    check_fits(ckpt.spec, splits.info, str(checkpoint))
    model = placement.model(ckpt.model)
    record: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "arch": ckpt.spec.arch,
        "method": ckpt.meta.get("method"),
        "source": data.source,
        **dict(labels or {}),
    }
    temperature = ((ckpt.meta.get("hparams") or {}).get("train") or {}).get("temperature", 1.0)
    for name, ds in (("test", splits.test), ("val", splits.val)):
        if ds is None:
            continue
        loader = make_loader(ds, batch_size, shuffle=False, **placement.loader_options())
        m = evaluate(model, loader, placement.device, temperature=temperature, **placement.options())
        record.update(
            {
                f"{name}_loss": m["loss"],
                f"{name}_top1": m["top1"],
                f"{name}_top5": m["top5"],
                f"{name}_mean_per_class": m["mean_per_class"],
            }
        )
    model.cpu()
    counts = parameter_counts(model)
    weights = Mask.from_zeros(model, prunable_parameters(model))
    record.update(
        params_total=counts["total"],
        params_nonzero=counts["nonzero"],
        compression=counts["total"] / max(1, counts["nonzero"]),
        weight_sparsity=weights.sparsity,  # zeros among Conv2d/Linear weights
        layer_sparsity={n: v["sparsity"] for n, v in weights.report()["layers"].items()},
    )
    record.update(complexity_record(model, ckpt.spec.input_shape, ckpt.mask, *nm_pattern(ckpt.meta)))
    nm = (ckpt.meta.get("hparams") or {}).get("nm")
    if nm is not None:  # an N:M run: the prunable weights it left dense (input size not a multiple of M)
        record["nm_dense_layers"] = " ".join(nm.get("dense_layers", []))
    if history_csv is not None:
        with open(history_csv, newline="") as f:
            start = next(csv.DictReader(f))
        record["start"] = {
            k: float(v) for k, v in start.items() if v != "" and (k.endswith(("_top1", "_loss")) or k == "epoch")
        }
    atomic_write_json(out_json, record)
    return record
