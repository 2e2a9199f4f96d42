"""Path-norms and margins of trained models (Tables 3 and 5, Figure 3 of the path-norm study): in
both conventions, of a checkpoint of ours or of published torchvision weights (never downloaded).
No training code: these jobs rerun only when the analysis, the data or the models change.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from ...compute import place
from ...config import ComputeHparams, DataHparams
from ...data import build_splits, make_loader
from ...divergence import check_finite
from ...io.atomic import atomic_path
from ...metrics.margin_stats import logit_statistics, margin_quantiles
from ...metrics.pathnorm import path_norms
from ...models.checkpoint import check_fits, load_checkpoint
from ...models.pretrained import load_pretrained
from ..base.summary import write_summary
from .analysis import analysis_subset


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
    if (checkpoint is None) == (weights is None):
        raise ValueError(f"pretrained model {name!r}: give exactly one of checkpoint or weights")
    if weights is not None:
        model, spec = load_pretrained(weights, hub_dir)
        source = f"torchvision:{weights}"
    else:
        ckpt = load_checkpoint(checkpoint)  # type: ignore[arg-type]
        model, spec, source = ckpt.model, ckpt.spec, f"checkpoint:{checkpoint}"
    check_finite(
        model.state_dict().items(), str(checkpoint or source), "the path-norm is undefined (the training diverged)"
    )
    splits = build_splits(data)
    check_fits(spec, splits.info, source)
    placement = place(compute or ComputeHparams())
    model = placement.model(model).eval()
    device = placement.device
    t0 = time.perf_counter()
    norms = [
        {"q": pn.q, "convention": convention, "value": pn.value, "log10": pn.log10}
        for convention in conventions
        for pn in path_norms(model, qs, spec.input_shape, convention=convention)
    ]
    pathnorm_s = time.perf_counter() - t0
    subset = analysis_subset(splits.train_eval, margin_samples, seed)
    loader = make_loader(subset, batch_size, shuffle=False, **placement.loader_options())
    # margins are exact quantities: float32 logits, never under bf16 autocast
    stats = logit_statistics(model, loader, device, channels_last=placement.channels_last)
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
    return write_summary(summary_json, summary)
