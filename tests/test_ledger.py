"""The complexity ledger: Kendall's τ-b, one checkpoint's row against the metric functions it
reuses, Theorem 3.1's constants against the config's digits entry, a refused model, the plan's
rows against the studies' own outputs, and the report on fake rows."""

from __future__ import annotations

import copy
import math
import random

import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO

from sparselab.compute import place
from sparselab.config import ComputeHparams, DataHparams
from sparselab.data import build_splits, make_loader
from sparselab.io.hashing import file_sha256
from sparselab.metrics.bound import BoundConstants, theorem31_first_part
from sparselab.metrics.classification import evaluate
from sparselab.metrics.complexity import complexity, flops_sparse
from sparselab.metrics.margin_stats import logit_statistics, margin_quantiles
from sparselab.metrics.pathnorm import path_norms
from sparselab.models.checkpoint import save_checkpoint
from sparselab.models.spec import ArchSpec
from sparselab.sparsity.magnitude import magnitude_mask
from sparselab.studies.ledger import measure
from sparselab.studies.ledger.kendall import kendall_tau_b
from sparselab.studies.ledger.options import MeasureSpec
from sparselab.studies.ledger.report import kendall_table, write_report
from sparselab.studies.pathnorm.bound import bound_rows
from sparselab.workflow import ConfigError, load_workflow_config

SCHEMA = REPO / "schemas" / "config.schema.yaml"
DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())
DATA = DataHparams(source="digits", val_fraction=0.1)
LENET = ArchSpec("lenet300_100", 10, (1, 8, 8), {"hidden": [32, 16]})


# ---------------------------------------------------------------- Kendall's tau-b
def test_kendall_tau_b_is_scipys_with_ties() -> None:
    from scipy.stats import kendalltau

    rng = random.Random(0)
    for n in (2, 3, 7, 40):
        x = [rng.choice([0.0, 1.0, 2.0, 3.5]) for _ in range(n)]
        y = [rng.choice([0.1, 0.2, 0.3]) if i % 3 else rng.random() for i in range(n)]
        want = kendalltau(x, y).statistic
        got = kendall_tau_b(x, y)
        assert (math.isnan(want) and math.isnan(got)) or got == pytest.approx(want, abs=1e-12), (x, y)


def test_kendall_tau_b_hand_cases_and_missing_values() -> None:
    assert kendall_tau_b([1, 2, 3], [10, 20, 30]) == 1.0
    assert kendall_tau_b([1, 2, 3], [3, 2, 1]) == -1.0
    # pairs (1,2) +, (1,3) +, (2,3) -: (2 - 1) / 3
    assert kendall_tau_b([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    # NaN pairs are dropped: the rest is the first case
    assert kendall_tau_b([1, 2, float("nan"), 3], [10, 20, 5, 30]) == 1.0
    assert math.isnan(kendall_tau_b([1, 1, 1], [1, 2, 3]))  # a constant measure ranks nothing
    assert math.isnan(kendall_tau_b([1], [2]))


# ---------------------------------------------------------------- one checkpoint
@pytest.fixture(scope="module")
def splits():
    return build_splits(DATA)


@pytest.fixture(scope="module")
def pruned_lenet(tmp_path_factory: pytest.TempPathFactory):
    torch.manual_seed(0)
    model = LENET.build()
    mask = magnitude_mask(model, 0.5)
    mask.apply_(model)
    path = tmp_path_factory.mktemp("ledger") / "model.safetensors"
    save_checkpoint(path, model, LENET, mask=mask)
    return path, model.eval(), mask


def _row(path, **kw):
    return {
        "path": str(path),
        "study": "s",
        "method": "m",
        "dataset": "digits",
        "model": "lenet",
        "sparsity": 0.5,
        "seed": 0,
        "parent": "p",
        "parent_role": "dense",
        "detail": "",
        "data": {},
        "also_in": "",
        **kw,
    }


def test_a_row_is_the_metric_functions_of_its_checkpoint(pruned_lenet, splits) -> None:
    path, model, mask = pruned_lenet
    placement = place(ComputeHparams(device="cpu"))
    row = measure.measure_checkpoint(_row(path), splits, MeasureSpec(), placement)
    assert row["sha256"] == file_sha256(path) and row["parents"] == "unknown"  # a sidecar without parents
    assert row["parent"] == "p" and row["study"] == "s"
    cost = complexity(model, LENET.input_shape, mask)
    assert (row["params"], row["params_alive"], row["flops"]) == (cost.params, cost.params_alive, cost.flops)
    assert row["flops_sparse"] == flops_sparse(model, LENET.input_shape, mask)
    assert row["measured_sparsity"] == pytest.approx(0.5, abs=1e-3)
    for pn in path_norms(model, (1.0, 2.0, 4.0), LENET.input_shape):
        assert row[f"L{pn.q:g}"] == pytest.approx(pn.value, rel=1e-6)
    stats = logit_statistics(model, make_loader(splits.train_eval, 512, shuffle=False))
    for key, value in margin_quantiles(stats.margins).items():
        assert row[key] == pytest.approx(value, rel=1e-5, abs=1e-6)
    test = evaluate(model, make_loader(splits.test, 512, shuffle=False))
    assert row["train_top1"] == stats.top1 and row["test_top1"] == test["top1"]
    assert row["gap"] == pytest.approx(stats.top1 - test["top1"])
    assert row["train_samples"] == len(splits.train_eval)
    assert row["bound"] == pytest.approx(row["bound_factor"] * row["L1"])
    assert row["bound_margin"] == pytest.approx(row["bound"] / row["margin_q1_2"])
    assert row["pathnorm_error"] == ""


def test_a_tied_network_is_measured_through_its_effective_weights(splits, tmp_path) -> None:
    """DST's tied networks have no ``<layer>.weight`` parameter (the first ledger run failed on one)."""
    from sparselab.metrics.path_graph import effective_weight
    from sparselab.sparsity.mask import Mask, prunable_parameters

    spec = ArchSpec(
        "lenet300_100", 10, (1, 8, 8), {"hidden": [32, 16]}, tied={"modules": ["1", "3"], "sparsity": 0.9, "seed": 0}
    )
    model = spec.build()
    path = tmp_path / "tied.safetensors"
    save_checkpoint(path, model, spec)
    row = measure.measure_checkpoint(_row(path), splits, MeasureSpec(), place(ComputeHparams(device="cpu")))
    assert row["pathnorm_error"] == "" and row["L1"] > 0
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    zeros = sum(int((effective_weight(m) == 0).sum()) for m in linears)
    assert row["measured_sparsity"] == zeros / sum(m.weight.numel() for m in linears)
    # an untied model: the same as the zeros of its prunable weights
    plain = LENET.build()
    torch.nn.init.zeros_(plain.get_submodule("1").weight)
    assert measure.weight_sparsity(plain) == Mask.from_zeros(plain, prunable_parameters(plain)).sparsity


def test_margin_samples_take_a_seeded_subset(pruned_lenet, splits) -> None:
    path, _, _ = pruned_lenet
    placement = place(ComputeHparams(device="cpu"))
    a = measure.measure_checkpoint(_row(path), splits, MeasureSpec(margin_samples=100, seed=3), placement)
    b = measure.measure_checkpoint(_row(path), splits, MeasureSpec(margin_samples=100, seed=3), placement)
    assert a["train_samples"] == 100 and a["margin_q1_2"] == b["margin_q1_2"]


def test_bound_constants_are_the_configs_digits_entry(splits) -> None:
    """Computed from the model and the data, the constants reproduce the hand-written
    ``pathnorm.bound`` digits row of config.yaml for both default models."""
    rows = {r["arch"]: r for r in bound_rows(DEFAULT["pathnorm"]["bound"]) if r["setting"] == "digits"}
    models = {
        "lenet": ArchSpec("lenet300_100", 10, (1, 8, 8)),
        "resnet20": ArchSpec("cifar_resnet20", 10, (1, 8, 8), {"width": 8}),
    }
    for name, spec in models.items():
        c = measure.bound_constants(spec.build(), splits.info, len(splits.train_eval))
        want = rows[name]
        assert (c.D, c.K, c.P, c.d_in, c.d_out, c.n) == (want["D"], want["K"], want["P"], 64, 10, want["n"]), name
        assert c.B == pytest.approx(want["B"], rel=1e-9)
        assert theorem31_first_part(c) == pytest.approx(want["bound"], rel=1e-9)


def test_depth_counts_weighted_layers_on_the_longest_path() -> None:
    class Skip(torch.nn.Module):  # conv -> (conv -> conv) + identity -> linear: 4 on the long path
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.c = (torch.nn.Conv2d(1, 1, 1) for _ in range(3))
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x):
            x = self.a(x)
            return self.fc(torch.flatten(self.c(self.b(x)) + x, 1))

    assert measure.weighted_depth(Skip()) == 4
    c = measure.bound_constants(Skip(), build_splits(DATA).info, 10)
    assert isinstance(c, BoundConstants) and (c.K, c.P) == (1, 0)


def test_a_model_the_path_norm_refuses_keeps_its_other_cells(pruned_lenet, splits, monkeypatch) -> None:
    from sparselab.metrics.path_graph import UnsupportedModelError

    def refuse(*args, **kwargs):
        raise UnsupportedModelError("path-norm is not defined for Foo\nmore")

    monkeypatch.setattr(measure, "path_norms", refuse)
    path, _, _ = pruned_lenet
    row = measure.measure_checkpoint(_row(path), splits, MeasureSpec(), place(ComputeHparams(device="cpu")))
    assert row["pathnorm_error"] == "path-norm is not defined for Foo"
    assert "L1" not in row and "bound" not in row and row["test_top1"] > 0 and row["params"] > 0


def test_measure_part_writes_one_row_per_checkpoint_and_reads_the_rows_data(pruned_lenet, tmp_path) -> None:
    path, _, _ = pruned_lenet
    rows = [_row(path), _row(path, method="subset", data={"subset_fraction": 0.5, "subset_seed": 1})]
    out = tmp_path / "part.csv"
    measure.measure_part(rows, {"digits": DATA.to_dict()}, {"qs": [1, 2]}, out)
    frame = pd.read_csv(out)
    assert list(frame["method"]) == ["m", "subset"] and list(frame.columns[:3]) == ["study", "method", "dataset"]
    assert frame["train_samples"][1] < frame["train_samples"][0]  # the subset it trained on
    assert "L2" in frame and "L4" not in frame


# ---------------------------------------------------------------- the plan
def _plans(config: dict):
    return load_workflow_config(copy.deepcopy(config), SCHEMA).plans()


def test_the_plan_lists_every_final_checkpoint_of_the_default_run() -> None:
    plans = _plans(DEFAULT)
    ledger = plans["ledger"]
    rows = ledger.rows()
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths))
    # what the studies themselves read or write
    oneshot = {p.replace("eval.json", "model.safetensors") for p in plans["oneshot"].evaluations()}
    oneshot = {p for p in oneshot if "/dense/" not in p}
    oneshot |= {
        plans["oneshot"].dense_model("digits", m, r, s)
        for m, r, s in [("lenet", "mlp_dense", 0), ("lenet", "mlp_dense", 1), ("resnet20", "conv_dense", 0)]
    }
    imp = {p.replace("metrics.csv", "model.safetensors") for p in plans["pathnorm"].imp_metric_paths()}
    subsets = {p.replace("metrics.csv", "model.safetensors") for p in plans["pathnorm"].subset_metric_paths()}
    gradflow = {p.replace("summary.json", "model.safetensors") for p in plans["gradflow"].summary_paths()}
    gradflow |= set(plans["gradflow"].dense_paths())
    dst = {p.replace("summary.json", "model.safetensors") for p in plans["dst"].summary_paths()}
    transfer = {
        p.replace("summary.json", "model.safetensors") for p in plans["transfer"].summary_paths() if "/linear/" not in p
    }
    transfer |= set(plans["transfer"].upstream_paths())
    want = oneshot | imp | subsets | gradflow | dst | transfer
    assert set(paths) == want, (sorted(set(paths) - want), sorted(want - set(paths)))
    by_path = {r["path"]: r for r in rows}
    assert len(imp) == 4 and len(subsets) == 6 and len(dst) == 38 and len(gradflow) == 12
    # a checkpoint several studies list belongs to the first, the others are named
    shared = by_path["results/train/digits/resnet20/conv_dense/seed0/model.safetensors"]
    assert shared["study"] == "oneshot" and shared["also_in"] == "transfer"
    round3 = by_path["results/pathnorm/imp/digits/resnet20/imp_conv/seed0/round3/model.safetensors"]
    assert round3["study"] == "pathnorm" and round3["also_in"] == "transfer"
    assert round3["parent"].endswith("round2/model.safetensors") and round3["parent_role"] == "previous_round"
    # one measurement job per study, then the report
    assert ledger.studies() == ["oneshot", "pathnorm", "gradflow", "dst", "transfer"]
    assert ledger.targets()[0] == "results/ledger/checkpoints.csv"


def test_part_params_are_the_studys_rows_and_its_datasets() -> None:
    from types import SimpleNamespace

    ledger = _plans(DEFAULT)["ledger"]
    w = SimpleNamespace(study="transfer")
    rows = ledger.part_rows(w)
    assert {r["study"] for r in rows} == {"transfer"} and set(ledger.part_checkpoints(w)) == {r["path"] for r in rows}
    assert set(ledger.part_data(w)) == {"digits", "digits_clutter", "digits_loops"}
    full = [r for r in rows if r["method"] == "full"]
    assert all(r["parent_role"] == "upstream" and r["parent"] for r in full)
    assert ledger.measure_options() == {"qs": [1.0, 2.0, 4.0], "margin_samples": None, "seed": 0, "batch_size": 512}


def test_absent_section_is_off_and_bad_measures_name_the_key() -> None:
    config = copy.deepcopy(DEFAULT)
    del config["ledger"]
    assert _plans(config)["ledger"].targets() == []
    config["ledger"] = {"measures": ["L3"]}
    with pytest.raises(ConfigError, match=r"ledger\.measures: unknown \['L3'\]"):
        _plans(config)
    config["ledger"] = {"qs": [2]}
    with pytest.raises(ConfigError, match=r"ledger\.qs"):
        _plans(config)


# ---------------------------------------------------------------- report on fake rows
def test_report_writes_the_ledger_the_tau_table_and_the_figure(tmp_path) -> None:
    rng = random.Random(1)
    parts = []
    for study in ("a", "b"):
        rows = [
            {
                "measured_sparsity": rng.random(),
                "study": study,
                "method": "m",
                "L1": 10.0**i,
                "sparsity": rng.random(),
                "gap": 0.01 * i + rng.random() / 100,
            }
            for i in range(1, 7)
        ]
        rows[0]["L1"] = None  # a refused model
        parts.append(tmp_path / f"{study}.csv")
        pd.DataFrame(rows).to_csv(parts[-1], index=False)
    out = {
        k: tmp_path / f"{k}.{ext}"
        for k, ext in [
            ("ledger_csv", "csv"),
            ("kendall_csv", "csv"),
            ("kendall_md", "md"),
            ("figure_pdf", "pdf"),
            ("figure_png", "png"),
        ]
    }
    ledger = write_report(parts, ["L1", "sparsity"], "t", **out)
    assert len(ledger) == 12 and all(p.exists() for p in out.values())
    table = pd.read_csv(out["kendall_csv"])
    overall = table[(table.measure == "L1") & (table.scope == "all")].iloc[0]
    keep = ledger["L1"].notna()
    assert overall.n == 10 and overall.tau == pytest.approx(kendall_tau_b(ledger["L1"][keep], ledger["gap"][keep]))
    assert set(table.scope) == {"all", "a", "b"}
    assert "| L1 |" in out["kendall_md"].read_text()
    assert kendall_table(ledger, ["absent"]).n.eq(0).all()
    # the sparsity measure is the measured one, not the plan's nominal column
    sparsity = table[(table.measure == "sparsity") & (table.scope == "all")].iloc[0]
    assert sparsity.tau == pytest.approx(kendall_tau_b(ledger["measured_sparsity"], ledger["gap"]))
