"""The path-norm study on the engine: IMP masks and rewinding, subsets, per-epoch analysis,
pretrained analysis, the CLI and the paper-scale plan."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from conftest import REPO, expected_parents, run_snakemake, sidecar_parents
from test_workflow import planned_jobs
from torch import nn

from sparselab.__main__ import main as cli
from sparselab.config import ComputeHparams, DataHparams, ModelHparams, TrainHparams
from sparselab.data import build_splits
from sparselab.metrics.pathnorm import path_norms
from sparselab.models.checkpoint import load_checkpoint
from sparselab.sparsity.mask import Mask
from sparselab.studies.pathnorm.analysis import AnalysisSpec, analyse
from sparselab.studies.pathnorm.imp import imp_mask, run_imp_dense, run_imp_round
from sparselab.studies.pathnorm.pretrained import analyse_pretrained
from sparselab.studies.pathnorm.subsets import run_subset
from sparselab.train.run import RunFiles
from sparselab.train.state import TrainState

DATA = DataHparams(source="digits", val_fraction=0.1)
COMPUTE = ComputeHparams(device="cpu", progress="lines")
SPEC = AnalysisSpec(qs=(1.0, 2.0), margin_samples=200)


def recipe(epochs: int = 4) -> TrainHparams:
    return TrainHparams.from_dict(
        {
            "epochs": epochs,
            "batch_size": 64,
            "optimizer": {"lr": 0.05},
            "schedule": {"kind": "multistep", "warmup_epochs": 1, "milestones": [3]},
        }
    )


def rows(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 40), nn.ReLU(), nn.Linear(40, 30), nn.ReLU(), nn.Linear(30, 10))


def test_imp_mask_prunes_fractions_of_remaining_weights_per_layer():
    model = mlp()
    mask = None
    for r in (1, 2, 3):
        mask = imp_mask(model, mask, conv_fraction=0.2, linear_fraction=0.1)
        mask.apply_(model)
        for name, m in mask.items():
            density = m.float().mean().item()
            expected = 0.9**r if name == "5.weight" else 0.8**r  # the last Linear loses 10%, the others 20%
            assert density == pytest.approx(expected, abs=2 / m.numel())
    # pruned weights never come back
    before = mask
    after = imp_mask(model, before)
    assert all(bool((after[n] <= before[n]).all()) for n in before)


def test_imp_mask_global_keeps_the_body_total_and_the_last_layer_separate():
    model = mlp()
    mask = imp_mask(model, None, conv_fraction=0.5, linear_fraction=0.1, scope="global")
    body = [n for n in mask if n != "5.weight"]
    kept = sum(int(mask[n].sum()) for n in body)
    total = sum(mask[n].numel() for n in body)
    assert kept == pytest.approx(0.5 * total, abs=1)
    assert mask["5.weight"].float().mean().item() == pytest.approx(0.9, abs=1 / 300)
    assert len({round(mask[n].float().mean().item(), 3) for n in body}) > 1  # one threshold, not per layer


def test_imp_rounds_rewind_weights_schedule_and_log_the_analysis(tmp_path):
    model = ModelHparams(arch="lenet300_100", kwargs={"hidden": [32, 16]})
    r0 = RunFiles.in_directory(tmp_path / "r0")
    rewind = tmp_path / "r0" / "rewind.pt"
    run_imp_dense(
        r0, rewind, data=DATA, model=model, recipe=recipe(), seed=0, rewind_epoch=2, analysis=SPEC, compute=COMPUTE
    )
    state = TrainState.load(rewind)
    assert state.epoch == 2 and state.mask is None
    r1 = RunFiles.in_directory(tmp_path / "r1")
    run_imp_round(
        r1,
        previous=r0.checkpoint,
        rewind_state=rewind,
        round_index=1,
        data=DATA,
        recipe=recipe(),
        seed=0,
        conv_fraction=0.2,
        linear_fraction=0.1,
        scope="layerwise",
        analysis=SPEC,
        compute=COMPUTE,
    )
    dense, pruned = rows(r0.metrics_csv), rows(r1.metrics_csv)
    assert [r["epoch"] for r in dense] == ["1", "2", "3", "4"]
    assert [r["epoch"] for r in pruned] == ["3", "4"]  # restarts after the rewind epoch
    assert [r["lr"] for r in pruned] == [r["lr"] for r in dense[2:]]  # schedule position rewound
    for row in dense + pruned:
        for col in ("L1", "log10_L1", "L2", "margin_q0", "margin_q1", "margin_train_top1", "analysis_time_s"):
            assert row[col] != ""
    ckpt = load_checkpoint(r1.checkpoint)
    assert ckpt.mask.sparsity == pytest.approx(
        1 - (0.8 * (64 * 32 + 32 * 16) + 0.9 * 16 * 10) / (64 * 32 + 32 * 16 + 160), abs=1e-3
    )
    assert Mask.from_zeros(ckpt.model, ckpt.mask.names()).sparsity >= ckpt.mask.sparsity - 1e-12
    # lineage: round 0 is a root; round 1 comes from round 0's weights and the rewind state
    assert sidecar_parents(r0.checkpoint) == []
    assert sidecar_parents(r1.checkpoint) == expected_parents(("previous_round", r0.checkpoint), ("rewind", rewind))
    # the logged path-norms of the last epoch are the saved model's, in both conventions
    last = pruned[-1]
    for convention, prefix in (("exact", ""), ("gbrg24", "gbrg24_")):
        (pn,) = path_norms(ckpt.model, [1.0], ckpt.spec.input_shape, convention=convention)
        assert float(last[f"{prefix}log10_L1"]) == pytest.approx(pn.log10, rel=1e-9)


def bn_convnet() -> nn.Module:
    """Conv, trained-looking BatchNorm (non-zero mean and shift), ReLU, adaptive average pool over 4x4,
    Linear: the original code's convention (gbrg24) then differs from the definition at every q."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 10),
    )
    with torch.no_grad():
        bn = model[1]
        bn.running_mean.uniform_(-0.5, 0.5), bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(0.1, 0.5)
    return model.eval()


def test_per_epoch_analysis_logs_both_conventions_by_default():
    assert AnalysisSpec().conventions == ("exact", "gbrg24")  # the paper's figures need gbrg24 (issue 15, point 6)
    model, shape = bn_convnet(), (1, 4, 4)
    loader = [(torch.randn(8, *shape), torch.randint(0, 10, (8,)))]
    row = analyse(model, loader, shape, AnalysisSpec(qs=(1.0, 2.0, 4.0)))
    for convention, prefix in (("exact", ""), ("gbrg24", "gbrg24_")):
        for pn in path_norms(model, [1.0, 2.0, 4.0], shape, convention=convention):
            assert row[f"{prefix}log10_L{pn.q:g}"] == pn.log10 and row[f"{prefix}L{pn.q:g}"] == pn.value
    assert row["gbrg24_log10_L2"] != pytest.approx(row["log10_L2"], abs=0.01)  # two different numbers


@pytest.mark.parametrize("config", ["config.yaml", "configs/gbrg24.yaml"])
def test_configs_log_both_conventions_per_epoch(config):
    import yaml

    from sparselab.workflow import load_workflow_config

    wf = load_workflow_config(yaml.safe_load((REPO / config).read_text()), REPO / "schemas" / "config.schema.yaml")
    assert AnalysisSpec.from_dict(wf.pathnorm.analysis_spec()).conventions == ("exact", "gbrg24")


def test_subsets_are_nested_per_seed_and_differ_across_seeds():
    def train_indices(fraction: float, seed: int) -> set:
        splits = build_splits(
            DataHparams(source="digits", val_fraction=0.1, subset_fraction=fraction, subset_seed=seed)
        )
        return {tuple(x.flatten().tolist()) for x, _ in (splits.train[i] for i in range(len(splits.train)))}

    half, quarter = train_indices(0.5, 0), train_indices(0.25, 0)
    assert quarter < half
    assert train_indices(0.25, 1) != quarter


def test_pretrained_analysis_and_cli(tmp_path, capsys):
    files = RunFiles.in_directory(tmp_path / "run")
    model = ModelHparams(arch="lenet300_100", kwargs={"hidden": [16]})
    run_subset(files, data=DATA, model=model, recipe=recipe(3), fraction=0.5, seed=0, analysis=SPEC, compute=COMPUTE)
    assert sidecar_parents(files.checkpoint) == []  # trained from scratch
    summary = analyse_pretrained(
        tmp_path / "s.json",
        tmp_path / "m.safetensors",
        name="mlp",
        data=DATA,
        checkpoint=files.checkpoint,
        qs=(1.0, 4.0),
        compute=COMPUTE,
    )
    assert json.loads((tmp_path / "s.json").read_text())["n"] == summary["n"] == len(build_splits(DATA).train)
    by = {(e["q"], e["convention"]): e for e in summary["pathnorms"]}
    assert set(by) == {(1.0, "exact"), (4.0, "exact"), (1.0, "gbrg24"), (4.0, "gbrg24")}
    from safetensors.torch import load_file

    margins = load_file(str(tmp_path / "m.safetensors"))["margins"]
    assert margins.numel() == summary["n"] and summary["train_top1"] == pytest.approx(
        float((margins >= 0).float().mean()), abs=1e-3
    )
    assert cli(["pathnorm", str(files.checkpoint), "--q", "1", "4", "--convention", "exact", "gbrg24"]) == 0
    out = capsys.readouterr().out
    assert f"{by[(1.0, 'exact')]['value']:14.6e}" in out and f"{by[(4.0, 'gbrg24')]['value']:14.6e}" in out


def test_pretrained_needs_exactly_one_source(tmp_path):
    with pytest.raises(ValueError, match="exactly one of checkpoint or weights"):
        analyse_pretrained(tmp_path / "s.json", tmp_path / "m.st", name="x", data=DATA)


def test_paper_config_plans_every_job(tmp_path):
    plan = planned_jobs(run_snakemake(tmp_path, "-n", "--configfile", str(REPO / "configs" / "gbrg24.yaml")).stdout)
    assert plan["pathnorm_imp_dense"] == 1 and plan["pathnorm_imp_round"] == 20  # rounds 1..20 chained
    assert plan["pathnorm_subset"] == 15  # 5 fractions x 3 seeds
    assert plan["pathnorm_pretrained"] == 5  # ResNet-18 ... 152
    for rule in ("pathnorm_bound", "pathnorm_pretrained_report", "pathnorm_imp_figure", "pathnorm_subsets_figure"):
        assert plan[rule] == 1
