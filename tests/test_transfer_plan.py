"""The transfer study's plan without Snakemake: the run grid's summary paths, where each upstream's
checkpoint comes from, the params its rules pass (typed options, defaults stated once) and its targets."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import REPO

from sparselab.config.common import ConfigError
from sparselab.studies.transfer.plan import Plan
from sparselab.workflow import build_workflow_config, load_workflow_config

SCHEMA = REPO / "schemas" / "config.schema.yaml"


def config(**experiment: Any) -> dict:
    recipe = {"batch_size": 32, "schedule": {"kind": "constant"}}
    return {
        "datasets": {
            "digits": {"source": "digits"},
            "loops": {"source": "digits_loops"},
            "clutter": {"source": "digits_clutter"},
        },
        "models": {"lenet": {"arch": "lenet300_100"}},
        "recipes": {
            "dense": {**recipe, "epochs": 3},
            "gmp": {**recipe, "epochs": 4},
            "acdc": {**recipe, "epochs": 10},
            "full": {**recipe, "epochs": 2, "optimizer": {"lr": 0.05}},
            "scratch": {**recipe, "epochs": 5},
        },
        "oneshot": {"enabled": False},
        "transfer": {
            "title": "tiny",
            "experiments": [
                {
                    "dataset": "digits",
                    "model": "lenet",
                    "dense_recipe": "dense",
                    "gmp": {"recipe": "gmp", "sparsities": [0.8, 0.9], "end": 3},
                    "acdc": {"recipe": "acdc", "sparsities": [0.8]},
                    "checkpoints": [
                        {"name": "imp", "sparsity": 0.5, "path": "results/elsewhere/model.safetensors"},
                        {"name": "tv", "sparsity": 0.0, "path": "ext/tv.pth", "import": "torchvision"},
                    ],
                    "downstream": ["loops", "clutter"],
                    "linear": {"seeds": [0, 1], "epochs": 4},
                    "full": {"recipe": "full", "seeds": [0, 1], "lr": {"loops": 0.02}},
                    "scratch": {"recipe": "scratch", "seeds": [3]},
                    **experiment,
                }
            ],
        },
    }


def plan(raw: dict, schema: bool = True) -> Plan:
    raw = copy.deepcopy(raw)
    wf = load_workflow_config(raw, SCHEMA) if schema else build_workflow_config(raw)
    return Plan(wf.shared, wf.studies["transfer"])


class Wildcards(SimpleNamespace):
    def items(self):  # type: ignore[no-untyped-def]
        return vars(self).items()


def wc(**kw: str) -> Wildcards:
    return Wildcards(updataset="digits", model="lenet", **kw)


ROOT = "results/transfer/digits/lenet"


def test_disabled_study_has_no_targets_and_no_runs() -> None:
    raw = config()
    raw["transfer"]["enabled"] = False
    p = plan(raw)
    assert p.cfg is None and p.targets() == [] and p.summaries() == []


def test_targets_are_the_summary_artefacts() -> None:
    targets = plan(config()).targets()
    assert "results/transfer/summary/records.csv" in targets
    assert {t.rsplit("/", 1)[1] for t in targets} >= {"table_transfer.md", "table_headline.csv", "figure_transfer.png"}


def test_every_summary_of_the_grid() -> None:
    p = plan(config())
    ups = ["dense/s0", "gmp/s0.8", "gmp/s0.9", "acdc/s0.8", "imp/s0.5", "tv/s0"]
    want = set()
    for d in ("loops", "clutter"):
        want |= {f"{ROOT}/{u}/linear/{d}/summary.json" for u in ups}
        want |= {f"{ROOT}/{u}/full/{d}/seed{s}/summary.json" for u in ups for s in (0, 1)}
        want.add(f"{ROOT}/scratch/{d}/seed3/summary.json")
    paths = p.summary_paths()
    assert len(paths) == len(want) and set(paths) == want
    keys = {path: k for k, path in p.summaries()}
    assert keys[f"{ROOT}/gmp/s0.9/full/clutter/seed1/summary.json"] == {
        "upstream_dataset": "digits",
        "model": "lenet",
        "upstream": "gmp",
        "sparsity": 0.9,
        "mode": "full",
        "dataset": "clutter",
        "seed": 1,
    }
    assert keys[f"{ROOT}/scratch/loops/seed3/summary.json"]["mode"] == "scratch"


def test_without_full_or_scratch_only_linear_runs() -> None:
    p = plan(config(full=None, scratch=None))
    assert all("/linear/" in path for path in p.summary_paths()) and len(p.summary_paths()) == 6 * 2


def test_where_each_upstream_checkpoint_comes_from() -> None:
    p = plan(config())
    assert (
        p.upstream_checkpoint(wc(upstream="dense", sparsity="0"))
        == "results/train/digits/lenet/dense/seed0/model.safetensors"
    )
    assert p.upstream_checkpoint(wc(upstream="gmp", sparsity="0.9")) == f"{ROOT}/upstream/gmp/s0.9/model.safetensors"
    assert p.upstream_checkpoint(wc(upstream="imp", sparsity="0.5")) == "results/elsewhere/model.safetensors"
    assert p.upstream_checkpoint(wc(upstream="tv", sparsity="0")) == f"{ROOT}/upstream/imported/tv/s0/model.safetensors"
    assert (p.import_source(wc(upstream="tv", sparsity="0")), p.import_kind(wc(upstream="tv", sparsity="0"))) == (
        "ext/tv.pth",
        "torchvision",
    )
    with pytest.raises(KeyError, match="no upstream 'gmp' at sparsity 0.5"):
        p.upstream(wc(upstream="gmp", sparsity="0.5"))


def test_part_recipes_epochs_and_datasets() -> None:
    p = plan(config())
    w = wc(upstream="gmp", sparsity="0.8", dataset="loops", seed="0")
    for part in ("gmp", "acdc", "full", "scratch"):
        assert p.part_recipe(part)(w) == p.shared.recipes[part].to_dict()
        assert p.part_epochs(part)(w) == p.shared.recipes[part].epochs
    assert p.part_dataset("gmp")(w) == p.part_dataset("acdc")(w) == "digits"
    assert p.part_dataset("full")(w) == p.part_dataset("scratch")(w) == "loops"


def test_linear_protocol_is_typed_with_the_papers_defaults() -> None:
    p = plan(config())
    exp = p.cfg.experiments[0]
    assert (exp.linear.seeds, exp.linear.epochs, exp.linear.lr, exp.linear.solver) == ([0, 1], 4, 0.01, "sgd")
    options = p.linear_options(wc(upstream="dense", sparsity="0", dataset="loops"))
    # the rule's params: every key, in the schema's order (Snakemake compares their repr)
    assert list(options) == [
        "seeds",
        "normalize",
        "solver",
        "epochs",
        "lr",
        "momentum",
        "weight_decay",
        "batch_size",
        "decay_after",
        "l2",
        "max_iter",
    ]
    assert options["decay_after"] == [50, 100] and options["epochs"] == 4


def test_gmp_options_are_the_ramp_with_its_defaults() -> None:
    p = plan(config())
    options = p.gmp_options(wc(upstream="gmp", sparsity="0.8"))
    assert options == {
        "recipe": "gmp",
        "sparsities": [0.8, 0.9],
        "start": 0,
        "freq": 1,
        "end": 3,
        "initial_sparsity": 0.0,
        "degree": 3.0,
        "final_step": True,
    }
    assert list(options)[:2] == ["recipe", "sparsities"]
    assert p.cfg.experiments[0].gmp.recipe == "gmp"


def test_defaults_come_from_the_typed_options_not_the_schema() -> None:
    """The schema fills the same defaults the classes state: params are the same either way."""
    with_schema, without = plan(config()), plan(config(), schema=False)
    for method in ("linear_options", "gmp_options", "full_lr", "sparse_layers", "upstream_seed", "feature_data"):
        w = wc(upstream="gmp", sparsity="0.8", dataset="loops")
        assert getattr(with_schema, method)(w) == getattr(without, method)(w), method
    assert with_schema.summaries() == without.summaries()


def test_full_lr_per_downstream_dataset() -> None:
    p = plan(config())
    assert p.full_lr(wc(upstream="dense", sparsity="0", dataset="loops")) == 0.02
    assert p.full_lr(wc(upstream="dense", sparsity="0", dataset="clutter")) is None
    assert plan(config(full=None)).full_lr(wc(upstream="dense", sparsity="0", dataset="loops")) is None


def test_unknown_option_names_its_key() -> None:
    with pytest.raises(ConfigError, match=r"transfer\.experiments\[0\]\.linear.*'epoch'"):
        plan(config(linear={"epoch": 3}), schema=False)
    with pytest.raises(ConfigError, match=r"transfer\.experiments\[0\]\.full.*'lrs'"):
        plan(config(full={"recipe": "full", "seeds": [0], "lrs": {}}), schema=False)


def test_gmp_ramp_must_fit_the_recipe() -> None:
    with pytest.raises(ConfigError, match=r"gmp\.recipe: the last pruning step comes after 9 epochs"):
        plan(config(gmp={"recipe": "gmp", "sparsities": [0.8], "end": 9}))
    with pytest.raises(ConfigError, match=r"gmp\.initial_sparsity: 0\.85 is above the sparsity 0\.8"):
        plan(config(gmp={"recipe": "gmp", "sparsities": [0.8, 0.9], "initial_sparsity": 0.85}))


def test_memory_follows_the_dataset_the_job_reads() -> None:
    p = plan(config())
    assert p.mem_mb(wc(upstream="gmp", sparsity="0.8")) == p.shared.mem_mb("digits")
    assert p.mem_mb(wc(upstream="gmp", sparsity="0.8", dataset="loops")) == p.shared.mem_mb("loops")


RIGL = {"recipe": "acdc", "sparsities": [0.9], "delta_t": 20}


def test_rigl_upstreams_are_named_by_their_densities_and_trained_in_the_pipeline() -> None:
    p = plan(config(rigl=RIGL))
    exp = p.cfg.experiments[0]
    assert [(u.name, u.sparsity, u.kind) for u in exp.upstreams() if u.kind == "rigl"] == [("rigl_erk", 0.9, "rigl")]
    w = wc(upstream="rigl_erk", sparsity="0.9", dataset="loops", seed="0")
    assert p.upstream_checkpoint(w) == f"{ROOT}/upstream/rigl/s0.9/model.safetensors"
    assert f"{ROOT}/rigl_erk/s0.9/linear/loops/summary.json" in p.summary_paths()
    assert f"{ROOT}/rigl_erk/s0.9/full/clutter/seed1/summary.json" in p.summary_paths()
    assert p.part_recipe("rigl")(w) == p.shared.recipes["acdc"].to_dict()
    assert p.part_epochs("rigl")(w) == 10 and p.part_dataset("rigl")(w) == "digits"
    assert p.mem_mb(wc(upstream="rigl_erk", sparsity="0.9")) == p.shared.mem_mb("digits")
    uniform = plan(config(rigl={**RIGL, "densities": "uniform", "sparsities": [0.8, 0.95]})).cfg.experiments[0]
    assert [u.name for u in uniform.upstreams() if u.kind == "rigl"] == ["rigl_uniform"] * 2
    assert plan(config()).rigl_options(w) == {}


def test_rigl_options_are_recipe_sparsities_then_growth_hparams_with_rigls_defaults() -> None:
    with_schema, without = plan(config(rigl=RIGL)), plan(config(rigl=RIGL), schema=False)
    w = wc(upstream="rigl_erk", sparsity="0.9")
    options = with_schema.rigl_options(w)
    assert options == without.rigl_options(w)
    assert options == {
        "recipe": "acdc",
        "sparsities": [0.9],
        "delta_t": 20,
        "stop": 0.75,
        "alpha": 0.3,
        "densities": "erk",
        "dense_first": False,
        "erk_power": 1.0,
    }
    assert list(options)[:2] == ["recipe", "sparsities"]


@pytest.mark.parametrize(
    ("rigl", "schema", "message"),
    [
        ({"recipe": "acdc", "sparsities": [0.9], "dt": 3}, False, r"experiments\[0\]\.rigl.*unknown key.*'dt'"),
        ({"recipe": "nope", "sparsities": [0.9]}, False, r"experiments\[0\]\.rigl\.recipe.*'nope'"),
        ({**RIGL, "densities": "random"}, False, r"experiments\[0\]\.rigl\.densities"),
        ({**RIGL, "alpha": 1.0}, False, r"experiments\[0\]\.rigl\.alpha: 1\.0 must be in \[0, 1\)"),
        ({**RIGL, "delta_t": 0}, False, r"experiments\[0\]\.rigl\.delta_t: 0 must be a positive number"),
        ({**RIGL, "delta_t": "epochs"}, True, r"delta_t"),
        ({"recipe": "acdc"}, True, r"sparsities"),
    ],
)
def test_bad_rigl_blocks_name_their_key(rigl: dict, schema: bool, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        plan(config(rigl=rigl), schema=schema)


def test_rigl_dense_first_needs_a_second_sparse_layer_and_its_names_are_reserved() -> None:
    with pytest.raises(ConfigError, match=r"rigl\.dense_first: .*leaves RigL no sparse tensor"):
        plan(config(rigl={**RIGL, "dense_first": True}, sparse_layers=["fc1.weight"]))
    plan(config(rigl={**RIGL, "dense_first": True}, sparse_layers=["fc1.weight", "fc2.weight"]))
    clash = {"name": "rigl_erk", "sparsity": 0.9, "path": "x.safetensors"}
    with pytest.raises(ConfigError, match=r"checkpoints\[0\]\.name: 'rigl_erk' is reserved"):
        plan(config(checkpoints=[clash]))
