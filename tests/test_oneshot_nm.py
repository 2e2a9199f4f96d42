"""The one-shot study's N:M runs (issue 18): the ``nm`` option block, its plan, the two jobs (2:4
one-shot + finetuning, SR-STE from dense) on tiny digits runs, the N:M pattern through every mask
operation (finetuning steps, checkpoint round trip, evaluation), the complexity columns of the
evaluation record and the N:M table."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from conftest import REPO, expected_parents, sidecar_parents, tiny_config

from sparselab.config import ComputeHparams, DataHparams, TrainHparams
from sparselab.config.common import ConfigError
from sparselab.metrics.checkpoint_eval import evaluate_checkpoint
from sparselab.models.checkpoint import load_checkpoint, save_checkpoint
from sparselab.models.spec import ArchSpec
from sparselab.sparsity.nm import is_nm
from sparselab.studies.oneshot.config import NmHparams, SrsteHparams
from sparselab.studies.oneshot.nm import (
    NmViolation,
    check_nm_checkpoint,
    nm_layers,
    nm_prune_checkpoint,
    prune_and_finetune_nm,
    train_srste,
)
from sparselab.studies.oneshot.prune import prune_checkpoint
from sparselab.studies.oneshot.report import NM_NOTE, nm_table, nm_to_markdown
from sparselab.train.callbacks import Callback
from sparselab.train.run import RunFiles
from sparselab.workflow import load_workflow_config

SCHEMA = REPO / "schemas" / "config.schema.yaml"
LAYERS = ["1.weight", "3.weight", "5.weight"]  # 64 -> 64 -> 32 -> 10


def nm_config(**nm) -> dict:
    config = tiny_config()
    config["oneshot"]["experiments"][0]["nm"] = nm
    return config


def plan(config: dict):
    return load_workflow_config(copy.deepcopy(config), SCHEMA).plans()["oneshot"]


def wildcards(**kw) -> SimpleNamespace:
    ns = SimpleNamespace(**kw)
    ns.items = lambda: kw.items()
    return ns


# ----------------------------------------------------------------------------- config and plan
def test_nm_defaults_are_two_four_with_both_methods_and_srste_on_the_finetune_recipe() -> None:
    (exp,) = plan(nm_config()).cfg.experiments
    assert exp.nm == NmHparams(2, 4, ("oneshot", "srste"), SrsteHparams(2e-4, 1, None))
    assert exp.nm.sparsity == 0.5 and exp.srste_recipe == "finetune"
    (plain,) = plan(tiny_config()).cfg.experiments
    assert plain.nm is None  # no N:M runs unless asked


def test_plan_adds_the_nm_runs_their_params_and_the_nm_table() -> None:
    p = plan(nm_config(srste={"decay": 0.0, "period": 5}))
    evaluations = p.evaluations()
    assert len(evaluations) == 10 + 2 * 2  # + 2 methods x 2 seeds
    assert "results/oneshot/digits/lenet/nm_oneshot/s0.5/seed1/eval.json" in evaluations
    assert "results/oneshot/digits/lenet/nm_srste/s0.5/seed0/eval.json" in evaluations
    assert p.targets()[-2:] == [f"results/oneshot/summary/nm_vs_unstructured.{e}" for e in ("csv", "md")]
    w = wildcards(dataset="digits", model="lenet", scope="nm_srste", sparsity="0.5", seed="0")
    assert p.labels(w)["nm"] == "2:4" and p.labels(w)["scope"] == "nm_srste"
    assert p.nm_pattern(w) == {"n": 2, "m": 4}
    assert p.srste_options(w) == {"n": 2, "m": 4, "decay": 0.0, "period": 5}  # no ramp key unless set
    gradual = plan(nm_config(srste={"ramp": 0.5}))
    assert gradual.srste_options(w) == {"n": 2, "m": 4, "decay": 2e-4, "period": 1, "ramp": 0.5}
    assert p.srste_recipe(w)["epochs"] == 3 and p.srste_epochs(w) == 3
    assert "nm" not in p.labels(wildcards(dataset="digits", model="lenet", scope="global", sparsity="0.5", seed="0"))
    with pytest.raises(ValueError, match="live under s0.5, not s0.75"):
        p.nm_pattern(wildcards(dataset="digits", model="lenet", scope="nm_oneshot", sparsity="0.75", seed="0"))
    assert "nm_vs_unstructured.md" not in " ".join(plan(tiny_config()).targets())


@pytest.mark.parametrize(
    ("nm", "recipes", "message"),
    [
        ({"n": 4, "m": 4}, {}, r"oneshot.experiments\[0\].nm: N:M needs 1 <= n < m, got n=4, m=4"),
        ({"srste": {"recipe": "nope"}}, {}, r"oneshot.experiments\[0\].nm.srste.recipe: 'nope' is not defined"),
        (
            {},
            {"select": "best_val"},
            r"oneshot.experiments\[0\].finetune_recipe: SR-STE .* needs a recipe with select: last",
        ),
        ({"methods": ["oneshot"]}, {"select": "best_val"}, None),  # no SR-STE: any recipe
        ({"srste": {"period": None}}, {"select": "best_val"}, None),  # a fixed mask: best_val is fine
        (
            {"srste": {"period": None, "ramp": 0.5}},
            {"select": "best_val"},
            r"oneshot.experiments\[0\].finetune_recipe: gradual SR-STE \(ramp 0.5\) needs a recipe with select: last",
        ),
        ({"srste": {"ramp": 1.5}}, {}, r"oneshot.experiments\[0\].nm.srste.ramp: 1.5 is greater than the maximum of 1"),
    ],
)
def test_bad_nm_options_give_one_line_naming_the_key(nm, recipes, message) -> None:
    config = nm_config(**nm)
    config["recipes"]["finetune"].update(recipes)
    if message is None:
        plan(config)
        return
    with pytest.raises(ConfigError, match=message) as err:
        plan(config)
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- jobs on tiny data
DATA = DataHparams.from_dict({"source": "digits", "val_fraction": 0.1})
RECIPE = TrainHparams.from_dict(
    {"epochs": 2, "batch_size": 128, "optimizer": {"lr": 0.05, "momentum": 0.9}, "schedule": {"kind": "cosine"}}
)
CPU = ComputeHparams.from_dict({"device": "cpu"})


class NmEveryStep(Callback):
    """Records, after every optimizer step (and mask enforcement), whether the listed weights are 2:4."""

    def __init__(self) -> None:
        self.steps: list[bool] = []

    def on_step_end(self, ctx) -> None:
        params = dict(ctx.model.named_parameters())
        self.steps.append(all(is_nm(params[k], 2, 4) for k in LAYERS))


@pytest.fixture(scope="module")
def dense(tmp_path_factory) -> Path:
    """An untrained LeNet (64-32 hidden) on digits, saved as a dense checkpoint."""
    path = tmp_path_factory.mktemp("dense") / "model.safetensors"
    spec = ArchSpec("lenet300_100", 10, (1, 8, 8), {"hidden": [64, 32]})
    torch.manual_seed(0)
    save_checkpoint(path, spec.build(), spec, meta={"method": "dense", "dataset": DATA.to_dict()})
    return path


def test_nm_pruning_makes_every_eligible_layer_two_four_and_leaves_the_rest_dense(dense, tmp_path) -> None:
    meta = nm_prune_checkpoint(dense, tmp_path / "pruned.safetensors", n=2, m=4)
    assert meta["nm"] == {"n": 2, "m": 4, "layers": LAYERS, "dense_layers": []}
    ckpt = load_checkpoint(tmp_path / "pruned.safetensors")  # the round trip keeps the mask, N:M
    params = dict(ckpt.model.named_parameters())
    for k in LAYERS:
        assert is_nm(ckpt.mask[k], 2, 4) and is_nm(params[k], 2, 4)
        assert int(ckpt.mask[k].sum()) == params[k].numel() // 2
    # a ResNet's first conv (1 input channel) cannot be 2:4: it is named as left dense
    resnet = ArchSpec("cifar_resnet20", 10, (1, 8, 8), {"width": 8}).build()
    record = nm_layers(resnet, 2, 4)
    assert record["dense_layers"] == ["conv1.weight"] and "fc.weight" in record["layers"]


def test_nm_oneshot_enforces_the_pattern_every_step_and_in_its_checkpoint(dense, tmp_path) -> None:
    spy = NmEveryStep()
    files = RunFiles.in_directory(tmp_path / "run")
    prune_and_finetune_nm(
        dense,
        tmp_path / "pruned.safetensors",
        files,
        n=2,
        m=4,
        data=DATA,
        recipe=RECIPE,
        seed=0,
        compute=CPU,
        callbacks=(spy,),
    )
    assert len(spy.steps) == pd.read_csv(files.metrics_csv)["step"].iloc[-1] and all(spy.steps)
    check_nm_checkpoint(files.checkpoint, 2, 4, LAYERS)
    ckpt = load_checkpoint(files.checkpoint)
    pruned = load_checkpoint(tmp_path / "pruned.safetensors")
    assert all(torch.equal(ckpt.mask[k], pruned.mask[k]) for k in LAYERS)  # finetuning keeps the one-shot mask
    hparams = json.loads(files.hparams_json.read_text())
    assert hparams["method"] == "nm_oneshot" and hparams["nm"]["layers"] == LAYERS
    # lineage: dense -> pruned (one-shot) -> finetuned
    assert sidecar_parents(tmp_path / "pruned.safetensors") == expected_parents(("dense", dense))
    assert sidecar_parents(files.checkpoint) == expected_parents(("pruned", tmp_path / "pruned.safetensors"))


def test_srste_starts_dense_and_ends_with_a_two_four_checkpoint_mask(dense, tmp_path) -> None:
    spy = NmEveryStep()
    files = RunFiles.in_directory(tmp_path / "run")
    train_srste(
        dense, files, n=2, m=4, decay=2e-4, period=1, data=DATA, recipe=RECIPE, seed=0, compute=CPU, callbacks=(spy,)
    )
    history = pd.read_csv(files.metrics_csv)
    steps = history["step"].iloc[-1]
    assert all(spy.steps) and len(spy.steps) == steps > 0  # the model holds W * E between steps
    check_nm_checkpoint(files.checkpoint, 2, 4, LAYERS)
    assert history["srste_mask_updates"].iloc[-1] == steps  # re-selected every step
    hparams = json.loads(files.hparams_json.read_text())
    assert hparams["method"] == "nm_srste" and hparams["nm"]["decay"] == 2e-4 and hparams["nm"]["period"] == 1
    assert sidecar_parents(files.checkpoint) == expected_parents(("dense", dense))  # SR-STE starts from it

    record = evaluate_checkpoint(files.checkpoint, DATA, tmp_path / "eval.json", compute=CPU)
    assert record["weight_sparsity"] == 0.5 and record["nm_pattern"] == "2:4" and record["nm_dense_layers"] == ""
    assert set(record["layer_sparsity"].values()) == {0.5}
    # every FLOP is a Linear's: 2:4 kernels run exactly half of them, and so does skipping every zero
    assert record["flops"] == 2 * (64 * 64 + 64 * 32 + 32 * 10)
    assert record["flops_nm"] == record["flops_sparse"] == record["flops"] // 2
    assert record["theoretical_speedup"] == 2.0
    weights = 64 * 64 + 64 * 32 + 32 * 10
    assert record["params_alive"] == record["params_total"] - weights // 2


def test_a_checkpoint_that_is_not_nm_fails_the_check(dense, tmp_path) -> None:
    with pytest.raises(NmViolation, match="no mask saved"):
        check_nm_checkpoint(dense, 2, 4, LAYERS)
    prune_checkpoint(dense, tmp_path / "global.safetensors", sparsity=0.5, scope="global")
    with pytest.raises(NmViolation, match="not 2:4 on"):
        check_nm_checkpoint(tmp_path / "global.safetensors", 2, 4, LAYERS)


def test_dense_and_unstructured_records_count_flops_nm_dense(dense, tmp_path) -> None:
    prune_checkpoint(dense, tmp_path / "global.safetensors", sparsity=0.5, scope="global")
    record = evaluate_checkpoint(tmp_path / "global.safetensors", DATA, tmp_path / "eval.json", compute=CPU)
    assert record["flops_nm"] == record["flops"]  # an unstructured mask is not 2:4: no semi-structured kernel
    assert record["theoretical_speedup"] == pytest.approx(2.0, rel=0.05)
    assert "nm_dense_layers" not in record
    plain = evaluate_checkpoint(dense, DATA, tmp_path / "dense.json", compute=CPU)
    assert plain["flops_nm"] == plain["flops_sparse"] == plain["flops"] and plain["theoretical_speedup"] == 1.0


# ----------------------------------------------------------------------------- the N:M table
def _records() -> pd.DataFrame:
    rows = []
    for seed, acc in ((0, 0.90), (1, 0.94)):
        common = {"dataset": "digits", "model": "lenet", "seed": seed, "params_total": 100, "flops": 1000}
        for scope, s, top1, nm, flops_nm, speed in (
            ("dense", 0.0, acc, None, 1000, 1.0),
            ("layerwise", 0.5, acc - 0.01, None, 1000, 2.0),
            ("global", 0.5, acc - 0.02, None, 1000, 2.0),
            ("global", 0.9, acc - 0.1, None, 1000, 10.0),  # another sparsity: not in the N:M table
            ("nm_srste", 0.5, acc - 0.03, "2:4", 500, 2.0),
            ("nm_oneshot", 0.5, acc - 0.04, "2:4", 500, 2.0),
        ):
            rows.append(
                common
                | {"scope": scope, "sparsity": s, "test_top1": top1, "test_loss": 1.5 - top1, "nm": nm}
                | {"flops_nm": flops_nm}
                | {"weight_sparsity": s, "params_alive": 100 - 50 * s, "theoretical_speedup": speed}
                | {"flops_sparse": 1000 / speed, "nm_dense_layers": "" if nm else None}
            )
    rows.append(rows[0] | {"model": "mlp", "seed": 0})  # a model without N:M runs: not in the table
    return pd.DataFrame(rows)


def test_nm_table_compares_dense_unstructured_and_nm_at_the_nm_sparsity(tmp_path) -> None:
    records = _records()
    records.to_csv(tmp_path / "records.csv", index=False)
    table = nm_table(pd.read_csv(tmp_path / "records.csv"))
    assert list(table["scope"]) == ["dense", "layerwise", "global", "nm_oneshot", "nm_srste"]
    assert table["test_top1_mean"].round(6).tolist() == [0.92, 0.91, 0.90, 0.88, 0.89]
    assert table["test_top1_std"].iloc[0] == pytest.approx(0.04 / 2**0.5)
    assert list(table["flops_nm_mean"]) == [1000, 1000, 1000, 500, 500]
    md = nm_to_markdown(table)
    assert "| 2:4 one-shot" in md and "| 2:4 SR-STE" in md and "| unstructured global" in md
    assert "92.00 ± 2.83" in md and "0.5800 ± 0.0283" in md and "FLOPs (2:4 kernels)" in md and "| none" in md
    assert NM_NOTE in md and "no semi-structured kernel in PyTorch" in md and "bench/speedup.py" in md


def test_the_oneshot_table_gains_alive_params_flops_and_theoretical_speedup() -> None:
    from sparselab.studies.oneshot.report import accuracy_vs_sparsity, to_markdown

    md = to_markdown(accuracy_vs_sparsity(_records().assign(params_nonzero=50)))
    header = md.splitlines()[0]
    assert "alive params" in header and "FLOPs" in header and "theoretical speed-up" in header
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in md.splitlines()[2:]]
    global90 = next(dict(zip(header.split("|")[1:-1], r)) for r in rows if r[2] == "global" and r[3] == "90")
    assert [global90[k] for k in global90 if k.strip() in ("alive params", "FLOPs", "theoretical speed-up")] == [
        "55",
        "1,000",
        "10.00×",
    ]
