"""Full finetuning of a sparse upstream (sparselab.transfer.full): new dense head, sparsity kept exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import expected_parents

from sparselab.config import ComputeHparams, DataHparams, ModelHparams, TrainHparams
from sparselab.models.checkpoint import load_checkpoint
from sparselab.studies.dst.options import DstOptions
from sparselab.studies.dst.sparse import run_sparse_training, spec_from_options
from sparselab.train.run import RunFiles
from sparselab.transfer.full import downstream_model, run_full_finetuning

COMPUTE = ComputeHparams(device="cpu", progress="lines")
RECIPE = TrainHparams.from_dict(
    {
        "epochs": 2,
        "batch_size": 64,
        "optimizer": {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4},
        "schedule": {"kind": "constant"},
    }
)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("upstream")
    files = RunFiles.in_directory(d)
    model = ModelHparams("lenet300_100", {"hidden": [64, 32], "batch_norm": True})
    run_sparse_training(
        files,
        d / "summary.json",
        data=DataHparams(source="digits"),
        model=model,
        recipe=RECIPE,
        spec=spec_from_options("static", 0.9, DstOptions()),
        seed=0,
        compute=COMPUTE,
    )
    return files.checkpoint


def test_the_backbone_moves_over_and_the_head_is_new_and_dense(upstream: Path) -> None:
    up = load_checkpoint(upstream)
    model, mask, spec, report = downstream_model(upstream, num_classes=4, seed=0)
    head = report["head"]
    assert spec.num_classes == 4 and model.get_submodule(head).out_features == 4
    assert mask is not None and not any(n.startswith(head + ".") for n in mask)
    ours, theirs = model.state_dict(), up.model.state_dict()
    new = set(report["new_tensors"])
    assert {f"{head}.weight", f"{head}.bias"} & set(ours) <= new and "8.running_mean" in new  # BN on the logits too
    assert all(torch.equal(ours[k], theirs[k]) for k in ours if k not in new)
    assert report["backbone_sparsity"] > 0.85


def test_full_finetuning_keeps_the_upstream_sparsity_exactly(upstream: Path, tmp_path: Path) -> None:
    files = RunFiles.in_directory(tmp_path)
    # the downstream task: digits 0-4 only would need a new source; the same data with the new head suffices
    run_full_finetuning(
        files, upstream=upstream, data=DataHparams(source="digits"), recipe=RECIPE, seed=1, compute=COMPUTE
    )
    ckpt = load_checkpoint(files.checkpoint)
    _, mask, _, report = downstream_model(upstream, 10, 0)
    params = dict(ckpt.model.named_parameters())
    for n in mask:
        assert torch.equal(ckpt.mask[n], mask[n]) and (params[n][~mask[n]] == 0).all(), n
    head = report["head"]
    assert (params[f"{head}.weight"] != 0).all()  # dense head
    meta = json.loads(files.checkpoint.with_suffix(".json").read_text())
    assert meta["hparams"]["transfer"]["backbone_sparsity"] == pytest.approx(mask.sparsity)
    assert meta["parents"] == expected_parents(("upstream", upstream))
