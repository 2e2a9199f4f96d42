"""RigL upstreams from scratch (Evci et al., ICML 2020): drop-and-grow sparse training in the pipeline,
next to the imported RigL checkpoints the paper used."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ...config import ComputeHparams, DataHparams, ModelHparams, TrainHparams
from ...dst.layers import sparse_tensors
from ...dst.rigl import growth_sparsity
from ...train.engine import TrainResult
from ...train.run import RunFiles, train_and_save
from ..base.setup import RunSetup
from ..base.summary import write_summary
from .options import RiglUpstreams
from .summaries import upstream_summary

MASK_STREAM = 0x7269676C  # "rigl": the initial masks' own stream of the replicate


def run_rigl(
    files: RunFiles,
    summary_json: str | Path,
    *,
    data: DataHparams,
    model: ModelHparams,
    recipe: TrainHparams,
    sparsity: float,
    options: Mapping[str, Any],
    sparse_layers: str | Sequence[str],
    seed: int,
    compute: ComputeHparams,
) -> TrainResult:
    """RigL from scratch at global ``sparsity`` over ``sparse_layers`` (``options``: the experiment's
    ``rigl`` block): per-layer densities (ERK or uniform) with random initial masks, drop-and-grow
    until ``stop`` of the run; the masks of the last step are the checkpoint's mask, which full
    finetuning then keeps. Tensors the densities leave dense (``dense_first``, an ERK layer over
    density 1) carry no mask."""
    hp = RiglUpstreams.from_dict(options, path="rigl").growth()
    run = RunSetup.fresh(data, model, seed)
    net = run.build()
    layers = sparse_layers if isinstance(sparse_layers, str) else list(sparse_layers)
    names = sparse_tensors(net, model.arch, layers)
    generator = torch.Generator().manual_seed(run.seeds.init ^ MASK_STREAM)
    callback = growth_sparsity("rigl", net, names, float(sparsity), hp, generator)
    hparams = run.hparams("rigl", recipe, rigl={"sparsity": float(sparsity), "sparse_layers": layers, **hp.to_dict()})
    result = train_and_save(
        files,
        run,
        net,
        None,
        hparams,
        recipe=recipe,
        compute=compute,
        eval_before=False,
        callbacks=(callback,),
        parents=(),
    )
    params = dict(result.model.named_parameters())
    total = sum(params[n].numel() for n in names)
    pruned = sum(int((~result.mask[n]).sum()) for n in result.mask) if result.mask is not None else 0
    write_summary(
        summary_json,
        upstream_summary(result, "rigl", sparsity),
        {
            "densities": hp.densities,
            "sparse_layers_sparsity": pruned / total,  # over every tensor of sparse_layers, dense ones included
            "mask_updates": callback.events,
            "dropped_total": callback.dropped_total,
        },
    )
    return result
