"""RigL upstreams of the transfer study (sparselab.studies.transfer.rigl): the checkpoint's mask is the
callback's last masks at the ERK counts per layer, and full finetuning keeps its zeros."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import expected_parents, sidecar_parents

from sparselab.config import ComputeHparams, DataHparams, ModelHparams, SeedHparams, TrainHparams
from sparselab.config.bundles import GrowthHparams
from sparselab.data import build_splits
from sparselab.dst.densities import layer_densities_for
from sparselab.dst.layers import active_count, sparse_tensors
from sparselab.dst.rigl import growth_sparsity
from sparselab.models.checkpoint import load_checkpoint
from sparselab.sparsity.mask import Mask
from sparselab.studies.transfer.options import RiglUpstreams
from sparselab.studies.transfer.rigl import MASK_STREAM, run_rigl
from sparselab.train.run import RunFiles
from sparselab.transfer.full import downstream_model, run_full_finetuning

CPU = ComputeHparams(device="cpu", progress="none")
DIGITS = DataHparams(source="digits")
LENET = ModelHparams("lenet300_100", {"hidden": [48, 24]})
RECIPE = TrainHparams.from_dict(
    {"epochs": 3, "batch_size": 64, "optimizer": {"lr": 0.05, "momentum": 0.9}, "schedule": {"kind": "constant"}}
)


def _options(**kw: object) -> dict:
    return RiglUpstreams.from_dict({"recipe": "r", "sparsities": [0.8], "delta_t": 5, **kw}).options()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("rigl")
    files = RunFiles.in_directory(d)
    run_rigl(
        files,
        d / "summary.json",
        data=DIGITS,
        model=LENET,
        recipe=RECIPE,
        sparsity=0.8,
        options=_options(),
        sparse_layers="conv_fc",
        seed=0,
        compute=CPU,
    )
    return files.checkpoint


def test_the_checkpoint_mask_has_the_erk_count_of_every_layer(upstream: Path) -> None:
    ckpt = load_checkpoint(upstream)
    names = sparse_tensors(ckpt.model, "lenet300_100", "conv_fc")
    densities = layer_densities_for(ckpt.model, names, 0.2, "erk")
    params = dict(ckpt.model.named_parameters())
    assert ckpt.mask is not None
    sparse = [n for n in names if densities[n] < 1.0]
    assert sorted(ckpt.mask.names()) == sorted(sparse) and len(sparse) >= 2  # dense ERK layers carry no mask
    for n in sparse:  # drop-and-grow keeps each layer's count: ERK's, rounded as the initial masks are
        numel = params[n].numel()
        assert int(ckpt.mask[n].sum()) == active_count(numel, 1.0 - densities[n]), n
        assert (params[n][~ckpt.mask[n]] == 0).all(), n  # the weights obey the mask
    # ERK: the active entries over all sparse_layers (dense ones included) are 20% of them
    active = sum(int(ckpt.mask[n].sum()) if n in ckpt.mask else params[n].numel() for n in names)
    total = sum(params[n].numel() for n in names)
    assert active / total == pytest.approx(0.2, abs=len(names) / total)


def test_the_masks_moved_and_the_summary_says_so(upstream: Path) -> None:
    summary = json.loads((upstream.parent / "summary.json").read_text())
    metrics = pd.read_csv(upstream.parent / "metrics.csv")
    # 3 epochs of ceil(1347 / 64) = 22 steps, no update from round(0.75 * 66) = 50 on, one every 5 steps
    stop = round(0.75 * 3 * math.ceil(len(build_splits(DIGITS).train) / 64))
    assert summary["method"] == "rigl" and summary["mask_updates"] == (stop - 1) // 5
    assert int(metrics["reallocations"].iloc[-1]) == summary["mask_updates"]
    assert summary["dropped_total"] > 0 and summary["densities"] == "erk"
    assert summary["sparse_layers_sparsity"] == pytest.approx(0.8, abs=0.01)
    # the checkpoint holds the masks after the last update, not the initial random ones
    ckpt = load_checkpoint(upstream)
    names = sparse_tensors(ckpt.model, "lenet300_100", "conv_fc")
    seeds = SeedHparams.for_replicate(0)
    initial = growth_sparsity(
        "rigl", ckpt.model, names, 0.8, GrowthHparams(), torch.Generator().manual_seed(seeds.init ^ MASK_STREAM)
    ).masks
    assert ckpt.mask is not None and set(initial) == set(ckpt.mask.names())
    moved = sum(int((initial[n] != ckpt.mask[n]).sum()) for n in initial)
    assert 0 < moved <= 2 * summary["dropped_total"]
    meta = json.loads(upstream.with_suffix(".json").read_text())
    assert meta["hparams"]["method"] == "rigl" and meta["hparams"]["rigl"]["delta_t"] == 5
    assert meta["parents"] == []  # RigL trains from scratch


def test_full_finetuning_keeps_the_rigl_zeros(upstream: Path, tmp_path: Path) -> None:
    files = RunFiles.in_directory(tmp_path)
    run_full_finetuning(files, upstream=upstream, data=DIGITS, recipe=RECIPE, seed=1, compute=CPU)
    _, backbone, _, report = downstream_model(upstream, 10, 0)
    assert backbone is not None
    ckpt = load_checkpoint(files.checkpoint)
    params = dict(ckpt.model.named_parameters())
    up = load_checkpoint(upstream)
    for n in backbone:
        assert torch.equal(ckpt.mask[n], up.mask[n]) and (params[n][~backbone[n]] == 0).all(), n
    assert Mask.from_zeros(ckpt.model, backbone.names()).sparsity >= backbone.sparsity - 1e-12
    assert sidecar_parents(files.checkpoint) == expected_parents(("upstream", upstream))


def test_a_run_without_any_mask_update_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"RigL would make no mask update: the first update step, delta_t=1000"):
        run_rigl(
            RunFiles.in_directory(tmp_path),
            tmp_path / "summary.json",
            data=DIGITS,
            model=LENET,
            recipe=RECIPE,
            sparsity=0.8,
            options=_options(delta_t=1000),
            sparse_layers="conv_fc",
            seed=0,
            compute=CPU,
        )
    assert (
        not any(tmp_path.glob("*.safetensors")) and not (tmp_path / "summary.json").exists()
    )  # refused before training
