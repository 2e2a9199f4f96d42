"""Jobs of the transfer study (sparselab.studies.transfer): AC/DC and GMP upstreams end exactly at
their sparsity, cached features are the eval-mode penultimate activations of every sample, linear
heads per seed, records from summaries."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO, expected_parents, sidecar_parents

from sparselab.config import ComputeHparams, DataHparams, ModelHparams, TrainHparams
from sparselab.data import build_splits
from sparselab.models.checkpoint import load_checkpoint
from sparselab.sparsity.mask import Mask
from sparselab.studies.transfer.acdc import run_acdc
from sparselab.studies.transfer.common import backbone_sparsity
from sparselab.studies.transfer.features import run_feature_extraction
from sparselab.studies.transfer.gmp import run_gmp
from sparselab.studies.transfer.linear import run_linear
from sparselab.studies.transfer.options import LinearProtocol
from sparselab.studies.transfer.records import records_from_summaries
from sparselab.train.optim import build_scheduler, lr_factor_fn
from sparselab.train.run import RunFiles, run_training
from sparselab.transfer.features import load_features
from sparselab.workflow import load_workflow_config

CPU = ComputeHparams(device="cpu", progress="none")
DIGITS = DataHparams(source="digits")
LENET = ModelHparams("lenet300_100", {"hidden": [24, 12]})


def _recipe(epochs: int) -> TrainHparams:
    return TrainHparams.from_dict(
        {"epochs": epochs, "batch_size": 64, "optimizer": {"lr": 0.05}, "schedule": {"kind": "constant"}}
    )


def test_acdc_upstream_ends_sparse_at_exactly_the_target(tmp_path) -> None:  # type: ignore[no-untyped-def]
    files = RunFiles.in_directory(tmp_path / "acdc")
    run_acdc(
        files,
        tmp_path / "summary.json",
        data=DIGITS,
        model=LENET,
        recipe=_recipe(10),
        sparsity=0.75,
        sparse_layers="conv_fc",
        seed=0,
        compute=CPU,
    )
    ckpt = load_checkpoint(files.checkpoint)
    names = [n for n, p in ckpt.model.named_parameters() if n.endswith("weight")]
    assert ckpt.mask is not None and sorted(ckpt.mask.names()) == sorted(names)
    total = sum(dict(ckpt.model.named_parameters())[n].numel() for n in names)
    assert ckpt.mask.num_active == -(-total // 4)  # ceil(N (1 - s)): one global threshold
    assert Mask.from_zeros(ckpt.model, names).sparsity >= ckpt.mask.sparsity - 1e-12  # the weights obey it
    phases = pd.read_csv(files.metrics_csv)["acdc_phase"].dropna().tolist()
    assert phases[0] == "dense" and phases[-1] == "sparse" and "dense" in phases[phases.index("sparse") :]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["method"] == "acdc" and summary["sparsity"] == pytest.approx(0.75, abs=1 / total)
    assert sidecar_parents(files.checkpoint) == []  # AC/DC trains from scratch


def _original_cosine_lr(base: float, epoch: int, warmup: int = 5, end: int = 100) -> float:
    """The lr of (0-based) ``epoch`` under the original's CosineLR (IST-DASLab/ACDC
    optimization/lr_schedulers.py, after STR): built once (lr for epoch 0), stepped at every
    epoch's end by the trigger [0, 1, end]."""
    if epoch < warmup:
        return base * (epoch + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / (end - warmup))) * base


@pytest.mark.parametrize("name", ["imagenet_acdc", "imagenet_dense"])
def test_paper_imagenet_recipes_step_the_lr_per_epoch_as_the_original(name: str) -> None:
    recipe = TrainHparams.from_dict(yaml.safe_load((REPO / "configs" / "iofinova22.yaml").read_text())["recipes"][name])
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=recipe.optimizer.lr)
    steps = 3  # iterations per epoch
    sched = build_scheduler(opt, recipe.schedule, steps, recipe.epochs)
    per_epoch = []
    for _ in range(recipe.epochs):
        lrs = set()
        for _ in range(steps):
            lrs.add(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        assert len(lrs) == 1, f"epoch {len(per_epoch)} has several lrs: {sorted(lrs)}"
        per_epoch.append(lrs.pop())
    epochs = [0, 1, 2, 3, 4, 5, 6, 50, 99]
    assert [per_epoch[e] for e in epochs] == pytest.approx([_original_cosine_lr(0.256, e) for e in epochs])
    assert per_epoch[:6] == pytest.approx([0.0512, 0.1024, 0.1536, 0.2048, 0.256, 0.256])  # base/5 ... full at 4 and 5


def test_gmp_upstream_reaches_its_target_under_one_global_threshold(tmp_path) -> None:  # type: ignore[no-untyped-def]
    dense = RunFiles.in_directory(tmp_path / "dense")
    run_training(dense, data=DIGITS, model=LENET, recipe=_recipe(2), seed=0, compute=CPU)
    files = RunFiles.in_directory(tmp_path / "gmp")
    run_gmp(
        files,
        tmp_path / "summary.json",
        dense=dense.checkpoint,
        data=DIGITS,
        recipe=_recipe(4),
        sparsity=0.9,
        options={"start": 0, "freq": 1, "end": 3},
        sparse_layers="conv_fc",
        seed=0,
        compute=CPU,
    )
    ckpt = load_checkpoint(files.checkpoint)
    assert ckpt.mask.sparsity == pytest.approx(0.9, abs=1e-3)
    per_layer = [1 - float(m.float().mean()) for _, m in ckpt.mask.items()]
    assert max(per_layer) - min(per_layer) > 0.05  # global: the layers end at different sparsities
    assert json.loads((tmp_path / "summary.json").read_text())["method"] == "gmp"
    assert sidecar_parents(files.checkpoint) == expected_parents(("dense", dense.checkpoint))


def test_features_are_the_eval_mode_penultimate_activations_of_every_sample(tmp_path) -> None:  # type: ignore[no-untyped-def]
    files = RunFiles.in_directory(tmp_path / "up")
    lenet_bn = ModelHparams("lenet300_100", {"hidden": [24, 12], "batch_norm": True})  # BN: eval mode matters
    run_training(files, data=DIGITS, model=lenet_bn, recipe=_recipe(1), seed=0, compute=CPU)
    data = DataHparams(source="digits_loops", train_per_class=4)
    run_feature_extraction(
        files.checkpoint, data, tmp_path / "tr.safetensors", tmp_path / "te.safetensors", compute=CPU
    )
    model = load_checkpoint(files.checkpoint).model.eval()
    splits = build_splits(data)
    for path, ds in ((tmp_path / "tr.safetensors", splits.train_eval), (tmp_path / "te.safetensors", splits.test)):
        feats, labels, meta = load_features(path)
        x, y = ds.tensors
        last = max(i for i, m in enumerate(model) if isinstance(m, torch.nn.Linear))
        with torch.no_grad():  # the layers before the classifier, applied by hand in eval mode
            expected = model[:last](x)
        assert torch.equal(labels, y) and torch.allclose(feats, expected, atol=1e-6)
        assert meta["num_classes"] == 3 and meta["samples"] == len(y)
    assert len(load_features(tmp_path / "tr.safetensors")[1]) == 4 * 3


def test_features_refuse_an_upstream_of_another_input_shape(tmp_path) -> None:  # type: ignore[no-untyped-def]
    files = RunFiles.in_directory(tmp_path / "up")
    run_training(files, data=DIGITS, model=LENET, recipe=_recipe(1), seed=0, compute=CPU)
    with pytest.raises(ValueError, match="image_size/channels"):
        run_feature_extraction(
            files.checkpoint,
            DataHparams(source="digits_loops", image_size=16),
            tmp_path / "a.safetensors",
            tmp_path / "b.safetensors",
            compute=CPU,
        )


def test_linear_heads_per_seed_and_records(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sparselab.transfer.features import save_features

    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 6, generator=g) * 3
    y = torch.arange(60) % 3
    x = centres[y] + torch.randn(60, 6, generator=g)
    for name, idx in (("tr", slice(0, 30)), ("te", slice(30, 60))):
        save_features(tmp_path / f"{name}.safetensors", x[idx], y[idx], {"num_classes": 3, "backbone_sparsity": 0.5})
    options = LinearProtocol(seeds=[0, 1], epochs=20, decay_after=[10])
    sgd = run_linear(
        tmp_path / "tr.safetensors",
        tmp_path / "te.safetensors",
        tmp_path / "s.json",
        tmp_path / "h.csv",
        options=options,
    )
    assert set(sgd["seeds"]) == {"0", "1"} and all(v["top1"] > 0.9 for v in sgd["seeds"].values())
    history = pd.read_csv(tmp_path / "h.csv")
    assert len(history) == 2 * 20 and history.groupby("seed")["lr"].last().tolist() == pytest.approx([1e-3, 1e-3])
    lbfgs = run_linear(
        tmp_path / "tr.safetensors",
        tmp_path / "te.safetensors",
        tmp_path / "l.json",
        tmp_path / "lh.csv",
        options=options.replace(solver="lbfgs"),
    )
    assert lbfgs["solver"] == "lbfgs" and all(v["top1"] > 0.9 for v in lbfgs["seeds"].values())
    keys = {
        "upstream_dataset": "digits",
        "model": "lenet",
        "upstream": "gmp",
        "sparsity": 0.5,
        "mode": "linear",
        "dataset": "d",
    }
    rows = records_from_summaries([(keys, tmp_path / "s.json")])
    assert [r["seed"] for r in rows] == [0, 1] and all(r["measured_sparsity"] == 0.5 for r in rows)


def test_backbone_sparsity_leaves_the_head_out() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4, bias=False), torch.nn.ReLU(), torch.nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        model[0].weight[:2] = 0  # half the backbone
        model[2].weight.zero_()  # the head: not counted
    assert backbone_sparsity(model) == 0.5


# ---------------------------------------------------------------------------------- the paper's GMP (issue 15)
def _paper_gmp():  # type: ignore[no-untyped-def]
    """The transfer experiment and the GMP recipe of configs/iofinova22.yaml, validated as the workflow does."""
    raw = yaml.safe_load((REPO / "configs" / "iofinova22.yaml").read_text())
    wf = load_workflow_config(raw, REPO / "schemas" / "config.schema.yaml")
    exp = wf.transfer.experiments[0]
    return exp, wf.recipes[exp.gmp.recipe]


def _sparsity_by_epoch(metrics_csv) -> dict[int, float]:  # type: ignore[no-untyped-def]
    rows = pd.read_csv(metrics_csv).dropna(subset=["sparsity"])
    return {int(e): float(s) for e, s in zip(rows["epoch"], rows["sparsity"])}


def test_paper_gmp_prunes_before_epochs_1_6_to_36_on_the_acdc_ramp(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """IST-DASLab/ACDC (imagenet_resnet50_gmp_sp90.yaml, policies/manager.py + pruners.py): the pruner
    runs in on_epoch_begin of the 0-based epochs range(1, 40, 5), before their training, at
    0.9 - 0.85 (1 - (e - 1)/39)^3. Here a step after e epochs of training is that step: the metrics
    row of epoch e (1-based, written after the step) holds the sparsity epoch e + 1 trains at."""
    exp, _ = _paper_gmp()
    dense = RunFiles.in_directory(tmp_path / "dense")
    run_training(dense, data=DIGITS, model=LENET, recipe=_recipe(1), seed=0, compute=CPU)
    files = RunFiles.in_directory(tmp_path / "gmp")
    few = DataHparams(source="digits", subset_fraction=0.05)  # 37 short epochs, evaluated once
    recipe = TrainHparams.from_dict({**_recipe(37).to_dict(), "eval_every": 37})
    run_gmp(
        files,
        tmp_path / "summary.json",
        dense=dense.checkpoint,
        data=few,
        recipe=recipe,
        sparsity=0.9,
        options=exp.gmp.options(),
        sparse_layers="conv_fc",
        seed=0,
        compute=CPU,
    )
    by_epoch = _sparsity_by_epoch(files.metrics_csv)
    total = sum(m.numel() for _, m in load_checkpoint(files.checkpoint).mask.items())
    expected, level = {}, 0.0
    levels = iter([0.050, 0.337, 0.551, 0.702, 0.802, 0.861, 0.890, 0.899])
    for epoch in range(1, 38):
        if epoch in (1, 6, 11, 16, 21, 26, 31, 36):
            level = next(levels)
        expected[epoch] = level
    assert sorted(by_epoch) == list(range(1, 38))
    assert [by_epoch[e] for e in range(1, 38)] == pytest.approx(
        [expected[e] for e in range(1, 38)], abs=5e-4 + 1 / total
    )


def test_gmp_prunes_before_the_first_epoch_when_the_ramp_starts_at_0(tmp_path) -> None:  # type: ignore[no-untyped-def]
    dense = RunFiles.in_directory(tmp_path / "dense")
    run_training(dense, data=DIGITS, model=LENET, recipe=_recipe(1), seed=0, compute=CPU)
    files = RunFiles.in_directory(tmp_path / "gmp")
    run_gmp(
        files,
        tmp_path / "summary.json",
        dense=dense.checkpoint,
        data=DIGITS,
        recipe=_recipe(1),
        sparsity=0.9,
        options={"start": 0, "freq": 2, "end": 4, "initial_sparsity": 0.3, "final_step": False},
        sparse_layers="conv_fc",
        seed=0,
        compute=CPU,
    )
    ckpt = load_checkpoint(files.checkpoint)
    total = sum(m.numel() for _, m in ckpt.mask.items())
    assert ckpt.mask.sparsity == pytest.approx(0.3, abs=1 / total)  # the step before epoch 0 (its only epoch)


def _acdc_lr_by_epoch(epochs: int) -> list[float]:
    """The lr of every 0-based epoch under the AC/DC repo's GMP trainer: SGD lr 0.005, ExponentialLR(0.6)
    with the trigger epochs [40, 6, 90], stepped by TrainingPolicy.on_epoch_end at the END of epoch e
    when (e - 40) % 6 == 0 and 39 < e < 91 (policies/trainers.py), so the new rate starts at e + 1."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.005, momentum=0.9)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.6)
    start, freq, end = 40, 6, 90
    lrs = []
    for epoch in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()  # the epoch's training (no gradient: nothing moves)
        if (epoch - start) % freq == 0 and epoch < end + 1 and start - 1 < epoch:
            sched.step()
    return lrs


def test_paper_gmp_lr_drops_after_epochs_40_46_to_88() -> None:
    _, recipe = _paper_gmp()
    steps_per_epoch = 7
    factor = lr_factor_fn(recipe.schedule, steps_per_epoch, recipe.epochs)
    original = _acdc_lr_by_epoch(recipe.epochs)
    for epoch in [*range(38, 51), *range(86, recipe.epochs)]:
        first, last = epoch * steps_per_epoch, (epoch + 1) * steps_per_epoch - 1
        assert recipe.optimizer.lr * factor(first) == pytest.approx(original[epoch], rel=1e-12), epoch
        assert recipe.optimizer.lr * factor(last) == pytest.approx(original[epoch], rel=1e-12), epoch
    assert (
        original[40] == 0.005 and original[41] == pytest.approx(0.003) and original[89] == pytest.approx(0.005 * 0.6**9)
    )
