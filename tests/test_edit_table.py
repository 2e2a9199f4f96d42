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
    "train_dense", "prune_finetune_oneshot", "pathnorm_imp_dense", "pathnorm_imp_round", "pathnorm_subset",
    "gradflow_prune", "gradflow_final", "dst_train", "dst_gradual", "transfer_gmp", "transfer_acdc", "transfer_full",
    "transfer_scratch",
}  # fmt: skip
FIGURES = {
    "oneshot_figure", "dst_report", "gradflow_report", "transfer_report", "pathnorm_bound", "pathnorm_imp_figure",
    "pathnorm_subsets_figure", "pathnorm_pretrained_report",
}  # fmt: skip
PATHNORM_ANALYSIS = {"pathnorm_imp_dense", "pathnorm_imp_round", "pathnorm_subset", "pathnorm_pretrained"}

EDITS: dict[str, set[str]] = {
    "report/figures.py": FIGURES,
    "report/tables.py": {"oneshot_table"},
    "structured/measures.py": {"gradflow_prune"},
    "train/engine.py": TRAINING,
    "metrics/pathnorm.py": PATHNORM_ANALYSIS,
    "dst/rewiring.py": {"dst_train"},
    "sparsity/acdc.py": {"transfer_acdc"},
    "transfer/linear.py": {"transfer_linear"},
    "transfer/imports.py": {"transfer_import"},
    "metrics/complexity.py": {"gradflow_prune", "gradflow_final", "gradflow_records"},
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
    got = reach.get(edited, set())
    assert got == EDITS[edited], f"{edited}: also {sorted(got - EDITS[edited])}, missing {sorted(EDITS[edited] - got)}"
