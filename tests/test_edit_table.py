"""Which rules an edit of each ``lib/`` package replans (issue 14, point 2).

A rule carries a digest of the ``lib`` files its script imports (``code`` param), so editing a file
replans exactly the rules whose scripts reach it (and, through their outputs, what depends on
them). The table below is that map, computed the way the workflow computes it: a plotting edit
never retrains, a measure edit reruns only the pruning jobs that score filters, the engine reruns
training and nothing that only reads its outputs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO

from sparselab.config.code_deps import code_dependencies

TRAINING = {
    "train_dense",
    "prune_finetune_oneshot",
    "prune_finetune_oneshot_nm",
    "srste_oneshot",
    "pathnorm_imp_dense",
    "pathnorm_imp_round",
    "pathnorm_subset",
    "gradflow_prune",
    "gradflow_final",
    "dst_train",
    "dst_gradual",
    "transfer_gmp",
    "transfer_acdc",
    "transfer_rigl",
    "transfer_full",
    "transfer_scratch",
}
# Jobs that read a dataset (training, evaluation, path-norm analysis, feature extraction) ...
DATA = TRAINING | {"evaluate_oneshot", "pathnorm_pretrained", "transfer_features", "ledger_measure"}
# ... and jobs that build a model from a checkpoint or an architecture (records of dense baselines,
# imports, the transfer upstreams' parameters and FLOPs).
MODELS = DATA | {"gradflow_records", "transfer_import", "transfer_upstreams"}
FIGURES = {
    "oneshot_figure",
    "dst_report",
    "gradflow_report",
    "transfer_report",
    "pathnorm_bound",
    "pathnorm_imp_figure",
    "pathnorm_subsets_figure",
    "pathnorm_pretrained_report",
    "ledger_report",
}
PATHNORM_ANALYSIS = {"pathnorm_imp_dense", "pathnorm_imp_round", "pathnorm_subset", "pathnorm_pretrained"}
ALL = set()  # filled in from the rules: job infrastructure and config types reach every job

# One or more files of every package under lib/sparselab -> the rules an edit of it replans.
EDITS: dict[str, set[str]] = {
    # report: plotting never retrains; records apart from figures
    "report/figures.py": FIGURES,
    "studies/oneshot/report.py": {"oneshot_table", "oneshot_nm_table"},
    "studies/oneshot/figure.py": {"oneshot_figure"},
    "studies/oneshot/records.py": {"oneshot_records"},
    "studies/transfer/report.py": {"transfer_report"},
    "studies/transfer/records.py": {"transfer_records", "transfer_report"},
    # structured: the measures only where filters are scored; loading a narrowed model everywhere
    "structured/measures.py": {"gradflow_prune"},
    "structured/ranking.py": {"gradflow_prune"},
    "structured/removal.py": MODELS,  # a build hook of the model registry: loading a narrowed model
    # train: the engine reruns training, and nothing that only reads its outputs
    "train/engine.py": TRAINING,
    "train/run.py": TRAINING - {"gradflow_prune"},  # pruning rounds train with the engine, not train_and_save
    "train/setup.py": TRAINING,
    # metrics
    "metrics/pathnorm.py": PATHNORM_ANALYSIS | {"ledger_measure"},
    "metrics/margin_stats.py": PATHNORM_ANALYSIS | {"ledger_measure"},
    "metrics/bound.py": {"pathnorm_bound", "ledger_measure"},
    "metrics/complexity.py": {
        "gradflow_prune",
        "gradflow_final",
        "gradflow_records",
        "dst_train",
        "dst_gradual",
        "transfer_upstreams",
        "evaluate_oneshot",
        "ledger_measure",
    },
    "metrics/latency.py": {"gradflow_final"},
    "metrics/checkpoint_eval.py": {"evaluate_oneshot"},
    "metrics/classification.py": TRAINING | {"evaluate_oneshot", "pathnorm_pretrained", "ledger_measure"},
    # dst and sparsity mechanisms
    "dst/rewiring.py": {"dst_train", "transfer_rigl"},  # RigL drops with rewiring's selection
    "dst/callbacks.py": {"dst_train", "transfer_rigl"},
    "dst/gradual.py": {"dst_gradual", "transfer_gmp"},
    "dst/gmp.py": {"dst_gradual", "transfer_gmp"},
    "dst/penalties.py": {"dst_train"},
    "dst/layers.py": {"dst_train", "dst_gradual", "transfer_acdc", "transfer_gmp", "transfer_rigl"},
    "dst/tied.py": MODELS,  # a build hook of the model registry: loading a tied model
    "dst/acdc.py": {"transfer_acdc"},
    "dst/rigl.py": {"dst_train", "transfer_rigl"},
    "dst/growth.py": {"dst_train", "transfer_rigl"},
    "dst/densities.py": {"dst_train", "transfer_rigl"},
    "sparsity/magnitude.py": {
        "prune_finetune_oneshot",
        "pathnorm_imp_dense",
        "pathnorm_imp_round",
        "dst_gradual",
        "transfer_gmp",
    },
    "sparsity/mask.py": MODELS,
    # transfer mechanisms
    "transfer/linear.py": {"transfer_linear"},
    "transfer/features.py": {"transfer_features", "transfer_linear"},
    "transfer/imports.py": {"transfer_import"},
    "transfer/full.py": {"transfer_full"},
    # studies: each job module only its own rule
    "studies/oneshot/prune.py": {"prune_finetune_oneshot"},
    # the ledger: measurement apart from the report; the options without the parser
    "studies/ledger/measure.py": {"ledger_measure"},
    "studies/ledger/options.py": {"ledger_measure"},
    "studies/ledger/kendall.py": {"ledger_report"},
    "studies/ledger/report.py": {"ledger_report"},
    "studies/oneshot/nm.py": {"prune_finetune_oneshot_nm", "srste_oneshot"},
    "studies/gradflow/prune.py": {"gradflow_prune"},
    "studies/gradflow/options.py": {"gradflow_prune"},
    "studies/gradflow/final.py": {"gradflow_final"},
    "studies/gradflow/summary.py": {"gradflow_final", "gradflow_records"},
    "studies/gradflow/records.py": {"gradflow_records"},
    "studies/gradflow/report.py": {"gradflow_report"},
    "studies/gradflow/keys.py": {"gradflow_records", "gradflow_report"},
    "studies/pathnorm/imp.py": {"pathnorm_imp_dense", "pathnorm_imp_round"},
    "studies/pathnorm/subsets.py": {"pathnorm_subset"},
    "studies/pathnorm/pretrained.py": {"pathnorm_pretrained"},
    # the path-norm study's tables and figures: the bound's table apart from the figure writers
    "studies/pathnorm/report.py": {
        "pathnorm_bound",
        "pathnorm_imp_figure",
        "pathnorm_subsets_figure",
        "pathnorm_pretrained_report",
    },
    "studies/pathnorm/artefacts.py": {"pathnorm_imp_figure", "pathnorm_subsets_figure", "pathnorm_pretrained_report"},
    "studies/pathnorm/bound.py": {"pathnorm_bound"},
    # its typed options, which jobs read their params with; the section's parser reaches no job
    "studies/pathnorm/options.py": PATHNORM_ANALYSIS | {"pathnorm_bound"},
    "studies/pathnorm/config.py": set(),
    "studies/dst/sparse.py": {"dst_train"},
    "studies/dst/gradual.py": {"dst_gradual"},
    "studies/dst/common.py": {"dst_train", "dst_gradual"},
    "studies/dst/options.py": {"dst_train", "dst_gradual"},
    "studies/dst/records.py": {"dst_records", "dst_report"},
    # the reproduction ledger: its table job only (its plan is read at parse time, by no job)
    "reproduction/compare.py": {"reproduction_table"},
    "reproduction/ledger.py": {"reproduction_table"},
    "reproduction/plan.py": set(),
    "studies/dst/report.py": {"dst_report"},
    "studies/transfer/acdc.py": {"transfer_acdc"},
    "studies/transfer/gmp.py": {"transfer_gmp"},
    "studies/transfer/linear.py": {"transfer_linear"},
    "studies/transfer/rigl.py": {"transfer_rigl"},
    "studies/transfer/upstreams.py": {"transfer_upstreams"},
    # the linear protocol's and RigL's typed options
    "studies/transfer/options.py": {"transfer_linear", "transfer_rigl"},
    "studies/transfer/features.py": {"transfer_features"},
    # data and models: every job that reads data / builds a model, never a table or figure
    "data/sources/cifar.py": DATA,
    "data/loaders.py": DATA,
    "config/roots.py": DATA,
    "models/resnet_cifar.py": MODELS,
    "models/registry.py": MODELS,
    "models/spec.py": MODELS,
    "models/checkpoint.py": MODELS,
    "io/checkpoint.py": MODELS,
    "io/provenance.py": MODELS,  # the sidecar's parents, written and read with every checkpoint
    # device set-up (sparselab.compute): the jobs that place a model on a device, never the linear
    # heads (cached features), records, tables or figures
    "compute.py": DATA,
    # what every job runs: the job wrapper, atomic writes, the config types
    "jobs.py": ALL,
    "io/atomic.py": ALL,
    "config/bundles.py": ALL,
    # plans run at parse time: an edit changes the rules' params (and so replans) only where its output changes
    "studies/base/plan.py": set(),
    # the shared run setup reaches the study jobs that build their own run (the rest through train/run.py)
    "studies/base/setup.py": {
        "dst_train",
        "gradflow_prune",
        "pathnorm_imp_dense",
        "pathnorm_imp_round",
        "pathnorm_subset",
        "transfer_rigl",
        "prune_finetune_oneshot_nm",
        "srste_oneshot",
    },
    # one records writer (pandas only): the records jobs, the reports that read the records modules'
    # keys, and the path-norm artefacts that write their CSVs with it; never a training job
    "studies/base/records.py": {
        "oneshot_records",
        "dst_records",
        "dst_report",
        "gradflow_records",
        "transfer_records",
        "transfer_report",
        "transfer_upstreams",
        "pathnorm_imp_figure",
        "pathnorm_subsets_figure",
        "pathnorm_pretrained_report",
        "ledger_measure",
        "ledger_report",
    },
    # one summary writer: the jobs that end with a summary.json
    "studies/base/summary.py": {
        "dst_train",
        "dst_gradual",
        "gradflow_final",
        "pathnorm_pretrained",
        "transfer_gmp",
        "transfer_acdc",
        "transfer_rigl",
        "transfer_full",
        "transfer_linear",
        "transfer_scratch",
    },
}


def rule_scripts() -> dict[str, str]:
    """rule -> the workflow script its ``code`` param digests, read from rules/*.smk."""
    out: dict[str, str] = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"^(?=rule |checkpoint )", smk.read_text(), flags=re.M)[1:]:
            name = re.match(r"(?:rule|checkpoint) (\w+):", block)
            script = re.search(r'code=code_version\("([\w.]+)"\)', block)
            if name and script:
                out[name.group(1)] = script.group(1)
    return out


@pytest.fixture(scope="module")
def reach() -> dict[str, set[str]]:
    """lib file (relative to lib/sparselab) -> the rules whose code digest covers it."""
    out: dict[str, set[str]] = {}
    for rule, script in rule_scripts().items():
        for path in code_dependencies(REPO / "workflow_scripts" / script, REPO / "lib"):
            out.setdefault(Path(path).relative_to(REPO / "lib" / "sparselab").as_posix(), set()).add(rule)
    return out


def test_every_rule_with_a_script_has_a_code_digest() -> None:
    scripts = rule_scripts()
    assert len(scripts) >= 30 and "train_dense" in scripts and "gradflow_prune" in scripts


@pytest.mark.parametrize("edited", sorted(EDITS))
def test_an_edit_replans_exactly_these_rules(reach: dict[str, set[str]], edited: str) -> None:
    assert (REPO / "lib" / "sparselab" / edited).exists(), edited
    want = EDITS[edited] if EDITS[edited] is not ALL else set(rule_scripts())
    got = reach.get(edited, set())
    assert got == want, f"{edited}: also {sorted(got - want)}, missing {sorted(want - got)}"


def test_the_table_covers_every_package() -> None:
    packages = {
        p.parent.relative_to(REPO / "lib" / "sparselab").as_posix()
        for p in (REPO / "lib" / "sparselab").rglob("*.py")
        if p.name != "__init__.py"
    }
    covered = {str(Path(e).parent) for e in EDITS}
    missing = {p for p in packages if not any(c == p or c.startswith(p + "/") for c in covered)}
    assert not missing, f"no edit of these packages in the table: {sorted(missing)}"


def test_no_figure_or_table_rule_reaches_training_or_scoring_code(reach: dict[str, set[str]]) -> None:
    for module in ("train/engine.py", "structured/measures.py", "dst/rewiring.py", "dst/acdc.py"):
        assert not reach[module] & (
            FIGURES
            | {"oneshot_table", "oneshot_records", "dst_records", "gradflow_records", "transfer_records"}
            | {"reproduction_table"}
        ), module
