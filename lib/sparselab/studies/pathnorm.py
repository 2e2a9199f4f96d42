"""The path-norm study (Gonon, Brisebarre, Riccietti, Gribonval, ICLR 2024) on the shared engine.

* :class:`PathNormAnalysis`: the per-epoch analysis (L^q path-norms, train-margin quantiles and
  eval-mode train accuracy/loss on a seeded, non-augmented train subset), as engine callback.
* IMP with rewinding (Figure 4): round 0 trains densely and saves the full training state after
  the rewind epoch; round r prunes the previous round's final weights (per layer, a fraction of
  the *remaining* weights: 20% of conv layers, 10% of the final linear layer), rewinds weights,
  BN statistics, optimizer momentum, schedule position and RNG to that state and retrains.
* Growing training subsets (Figure 5): dense training on nested seeded fractions of the data.
* Pretrained models (Tables 3 and 5, Figure 3): path-norms in both conventions and margins of a
  checkpoint or of published torchvision weights.

Deliberate differences to the original code (see docs/pathnorm.md): path-norms by their
definition (``convention="exact"``; ``gbrg24`` available), margins and train accuracy in eval
mode on non-augmented data, masks from the final weights (the original's "best" checkpoint was
also the last epoch), and no state corrupted by the path-norm computation.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import torch
from torch import nn

from ..config import ComputeHparams, DataHparams, ModelHparams, SeedHparams, TrainHparams
from ..data import build_splits, make_loader
from ..data.splits import subset_indices, take
from ..divergence import check_finite
from ..io.atomic import atomic_path, atomic_write_json
from ..io.checkpoint import ArchSpec, load_checkpoint
from ..metrics.margin_stats import logit_statistics, margin_quantiles
from ..metrics.pathnorm import path_norms
from ..sparsity import Mask, magnitude_mask
from ..sparsity.mask import prunable_parameters
from ..train.callbacks import Callback, TrainContext
from ..train.engine import TrainResult
from ..train.run import RunFiles, train_and_save, build_seeded, check_fits
from ..train.state import TrainState

log = logging.getLogger("sparselab")

Convention = Literal["exact", "gbrg24"]


def norm_column(q: float, convention: str = "exact", log10: bool = False) -> str:
    """CSV column of a path-norm: ``L1``, ``log10_L2``, ``gbrg24_L4``, ``gbrg24_log10_L4``..."""
    name = f"{'log10_' if log10 else ''}L{q:g}"
    return name if convention == "exact" else f"{convention}_{name}"


@dataclasses.dataclass(frozen=True)
class AnalysisSpec:
    """What the per-epoch analysis computes (config ``pathnorm.analysis`` plus ``pathnorm.qs``)."""

    qs: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
    conventions: tuple[str, ...] = ("exact",)
    margin_samples: int | None = 10000  # seeded subset of the train split; None = all of it
    seed: int = 0
    batch_size: int = 512

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AnalysisSpec":
        return cls(
            qs=tuple(float(q) for q in d.get("qs", cls.qs)),
            conventions=tuple(d.get("conventions", cls.conventions)),
            margin_samples=d.get("margin_samples", cls.margin_samples),
            seed=int(d.get("seed", cls.seed)),
            batch_size=int(d.get("batch_size", cls.batch_size)),
        )


def analysis_subset(dataset: torch.utils.data.Dataset, samples: int | None, seed: int) -> torch.utils.data.Dataset:
    n = len(dataset)  # type: ignore[arg-type]
    if samples is None or samples >= n:
        return dataset
    return take(dataset, subset_indices(n, samples / n, seed)[:samples])


def analyse(model: nn.Module, loader: Iterable, input_shape: Sequence[int], spec: AnalysisSpec,
            device: torch.device | None = None) -> dict[str, float]:  # fmt: skip
    """Path-norms for every q and convention, margin quantiles, eval top-1 and loss: one row."""
    row: dict[str, float] = {}
    for convention in spec.conventions:
        for pn in path_norms(model, spec.qs, tuple(input_shape), convention=convention):
            row[norm_column(pn.q, convention)] = pn.value
            row[norm_column(pn.q, convention, log10=True)] = pn.log10
    stats = logit_statistics(model, loader, device)
    row.update(margin_quantiles(stats.margins))
    row["margin_train_top1"] = stats.top1
    row["margin_train_loss"] = stats.mean_loss
    return row


class PathNormAnalysis(Callback):
    """Adds the path-norm analysis to every epoch's metrics row (and times it)."""

    def __init__(self, spec: AnalysisSpec, input_shape: Sequence[int]) -> None:
        self.spec, self.input_shape = spec, tuple(input_shape)
        self.loader: Any = None

    def on_train_start(self, ctx: TrainContext) -> None:
        subset = analysis_subset(ctx.splits.train_eval, self.spec.margin_samples, self.spec.seed)
        self.loader = make_loader(subset, self.spec.batch_size, shuffle=False)

    def on_epoch_end(self, ctx: TrainContext, row: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        row.update(analyse(ctx.model, self.loader, self.input_shape, self.spec, ctx.device))
        row["analysis_time_s"] = time.perf_counter() - t0


# ------------------------------------------------------------------------------------ IMP
def imp_mask(
    model: nn.Module,
    current: Mask | None,
    *,
    conv_fraction: float = 0.2,
    linear_fraction: float = 0.1,
    scope: Literal["layerwise", "global"] = "layerwise",
) -> Mask:
    """The next IMP mask: prune ``conv_fraction`` of the remaining weights of every Conv2d (and
    of every Linear but the last, for MLPs) and ``linear_fraction`` of the last Linear layer's.

    ``global`` ranks all layers but the last jointly (one threshold), the last layer on its own.
    Counts are exact (ties broken deterministically), so densities follow 0.8^r and 0.9^r.
    """
    names = prunable_parameters(model)
    linears = [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    last = linears[-1] if linears else None
    body = [n for n in names if n != last]
    params = dict(model.named_parameters())

    def remaining(n: str) -> int:
        return int(current[n].sum()) if current is not None and n in current else params[n].numel()

    def target(names_: list[str], fraction: float) -> float:
        total = sum(params[n].numel() for n in names_)
        keep = sum(remaining(n) for n in names_)
        return 1.0 - keep * (1.0 - fraction) / total

    masks: dict[str, torch.Tensor] = {}
    if body:
        if scope == "global":
            masks.update(magnitude_mask(model, target(body, conv_fraction), "global", body, current).items())
        else:
            per_layer = {n: target([n], conv_fraction) for n in body}
            masks.update(magnitude_mask(model, per_layer, "layerwise", body, current).items())
    if last is not None:
        masks.update(magnitude_mask(model, {last: target([last], linear_fraction)}, "layerwise", [last], current).items())
    return Mask(masks)


def _record(method: str, seed: int, seeds: SeedHparams, data: DataHparams, model: dict[str, Any],
            recipe: TrainHparams, extra: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    return {"method": method, "seed": seed, "seeds": seeds.to_dict(), "data": data.to_dict(), "model": model,
            "train": recipe.to_dict(), **extra}  # fmt: skip


def run_imp_dense(
    files: RunFiles,
    rewind_state: str | Path,
    *,
    data: DataHparams,
    model: ModelHparams,
    recipe: TrainHparams,
    seed: int,
    rewind_epoch: int,
    analysis: AnalysisSpec,
    compute: ComputeHparams,
) -> TrainResult:
    """IMP round 0: dense training, logging the analysis every epoch; the full training state
    after ``rewind_epoch`` epochs is saved to ``rewind_state`` (the rewind point of every round)."""
    if not 1 <= rewind_epoch < recipe.epochs:
        raise ValueError(f"rewind_epoch {rewind_epoch} must be in [1, epochs={recipe.epochs})")
    seeds = SeedHparams.for_replicate(seed)
    splits = build_splits(data)
    spec = ArchSpec(model.arch, splits.info.num_classes, splits.info.input_shape, dict(model.kwargs))
    hparams = _record("imp_round0", seed, seeds, data, model.to_dict(), recipe,
                      {"imp": {"round": 0, "rewind_epoch": rewind_epoch}, "analysis": dataclasses.asdict(analysis)})  # fmt: skip
    net = build_seeded(spec, seeds.init)
    # The snapshot lives beside the resume state (Snakemake deletes the declared outputs of a
    # killed job; a resumed run past the rewind epoch could not write it again).
    snapshot = files.state_dir / "rewind.pt"
    result = train_and_save(
        files, net, spec, None, hparams, data=data, splits=splits, recipe=recipe, seeds=seeds, compute=compute,
        eval_before=False, callbacks=(PathNormAnalysis(analysis, splits.info.input_shape),),
        snapshots={rewind_epoch: snapshot},
    )  # fmt: skip
    if not snapshot.exists():
        raise RuntimeError(f"the rewind state after epoch {rewind_epoch} was not written to {snapshot}")
    with atomic_path(rewind_state) as tmp:
        tmp.write_bytes(snapshot.read_bytes())
    snapshot.unlink()
    return result


def run_imp_round(
    files: RunFiles,
    *,
    previous: str | Path,
    rewind_state: str | Path,
    round_index: int,
    data: DataHparams,
    recipe: TrainHparams,
    seed: int,
    conv_fraction: float,
    linear_fraction: float,
    scope: Literal["layerwise", "global"],
    analysis: AnalysisSpec,
    compute: ComputeHparams,
) -> TrainResult:
    """IMP round r >= 1: prune the previous round's final weights, rewind, retrain to the end."""
    prev = load_checkpoint(previous)
    splits = build_splits(data)
    check_fits(prev.spec, splits.info, str(previous))
    mask = imp_mask(prev.model, prev.mask, conv_fraction=conv_fraction, linear_fraction=linear_fraction, scope=scope)
    state = TrainState.load(rewind_state)
    seeds = SeedHparams.for_replicate(seed)
    net = prev.model  # architecture and buffers; the rewind state overwrites every tensor
    hparams = _record(
        f"imp_{scope}", seed, seeds, data, {"arch": prev.spec.arch, "kwargs": prev.spec.kwargs}, recipe,
        {"imp": {"round": round_index, "rewind_epoch": state.epoch, "conv_fraction": conv_fraction,
                 "linear_fraction": linear_fraction, "scope": scope, "sparsity": mask.sparsity},
         "parent": {"path": str(previous), "tensors_sha256": prev.meta.get("tensors_sha256")},
         "rewind": {"path": str(rewind_state), "epoch": state.epoch},
         "analysis": dataclasses.asdict(analysis)},
    )  # fmt: skip
    log.info("IMP round %d: sparsity %.4f, rewinding to epoch %d", round_index, mask.sparsity, state.epoch)
    return train_and_save(
        files, net, prev.spec, mask, hparams, data=data, splits=splits, recipe=recipe, seeds=seeds, compute=compute,
        eval_before=False, callbacks=(PathNormAnalysis(analysis, splits.info.input_shape),), initial_state=state,
    )  # fmt: skip


# ------------------------------------------------------------------------------------ subsets
def run_subset(
    files: RunFiles,
    *,
    data: DataHparams,
    model: ModelHparams,
    recipe: TrainHparams,
    fraction: float,
    seed: int,
    analysis: AnalysisSpec,
    compute: ComputeHparams,
) -> TrainResult:
    """Dense training on a seeded ``fraction`` of the train split (nested across fractions for a
    seed: the subsets are prefixes of one seeded permutation), with the per-epoch analysis."""
    data = dataclasses.replace(data, subset_fraction=fraction, subset_seed=seed)
    seeds = SeedHparams.for_replicate(seed)
    splits = build_splits(data)
    spec = ArchSpec(model.arch, splits.info.num_classes, splits.info.input_shape, dict(model.kwargs))
    hparams = _record("dense_subset", seed, seeds, data, model.to_dict(), recipe,
                      {"subset": {"fraction": fraction, "train_samples": len(splits.train)},
                       "analysis": dataclasses.asdict(analysis)})  # fmt: skip
    return train_and_save(
        files, build_seeded(spec, seeds.init), spec, None, hparams, data=data, splits=splits, recipe=recipe,
        seeds=seeds, compute=compute, eval_before=False, callbacks=(PathNormAnalysis(analysis, splits.info.input_shape),),
    )  # fmt: skip


# ------------------------------------------------------------------------------------ pretrained
def analyse_pretrained(
    summary_json: str | Path,
    margins_out: str | Path,
    *,
    name: str,
    data: DataHparams,
    checkpoint: str | Path | None = None,
    weights: str | None = None,
    hub_dir: str | None = None,
    qs: Sequence[float] = (1.0, 2.0, 4.0, 8.0, 16.0),
    conventions: Sequence[str] = ("exact", "gbrg24"),
    margin_samples: int | None = None,
    batch_size: int = 512,
    seed: int = 0,
    compute: ComputeHparams | None = None,
) -> dict[str, Any]:
    """Path-norms (every q and convention) and train margins of one trained model: our own
    ``checkpoint`` or torchvision ``weights`` from the local hub cache (never downloaded).

    Margins use the train split with eval transforms (the 99% split of ImageNet-train when the
    dataset holds out 1% for validation), optionally a seeded subset; they are saved in loader
    order as a safetensors file, the quantiles and path-norms in ``summary_json``.
    """
    from safetensors.torch import save_file

    from ..compute import select_device

    if (checkpoint is None) == (weights is None):
        raise ValueError(f"pretrained model {name!r}: give exactly one of checkpoint or weights")
    if weights is not None:
        from ..models.pretrained import load_pretrained

        model, spec = load_pretrained(weights, hub_dir)
        source = f"torchvision:{weights}"
    else:
        ckpt = load_checkpoint(checkpoint)  # type: ignore[arg-type]
        model, spec, source = ckpt.model, ckpt.spec, f"checkpoint:{checkpoint}"
    check_finite(model.state_dict().items(), str(checkpoint or source), "the path-norm is undefined (the training diverged)")
    splits = build_splits(data)
    check_fits(spec, splits.info, source)
    device = select_device((compute or ComputeHparams()).device)
    model = model.to(device).eval()
    t0 = time.perf_counter()
    norms = [
        {"q": pn.q, "convention": convention, "value": pn.value, "log10": pn.log10}
        for convention in conventions
        for pn in path_norms(model, qs, spec.input_shape, convention=convention)
    ]
    pathnorm_s = time.perf_counter() - t0
    subset = analysis_subset(splits.train_eval, margin_samples, seed)
    loader = make_loader(subset, batch_size, shuffle=False, num_workers=(compute or ComputeHparams()).num_workers,
                         pin_memory=device.type == "cuda")  # fmt: skip
    stats = logit_statistics(model, loader, device)
    summary = {
        "name": name,
        "source": source,
        "dataset": data.to_dict(),
        "arch": spec.arch,
        "input_shape": list(spec.input_shape),
        "n": stats.n,
        "train_top1": stats.top1,
        "train_loss": stats.mean_loss,
        "quantiles": margin_quantiles(stats.margins),
        "pathnorms": norms,
        "seconds": {"pathnorms": pathnorm_s, "margins": time.perf_counter() - t0 - pathnorm_s},
    }
    with atomic_path(margins_out) as tmp:
        save_file({"margins": stats.margins.contiguous()}, str(tmp), metadata={"name": name, "source": source})
    atomic_write_json(summary_json, summary)
    return summary


def read_summary(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
