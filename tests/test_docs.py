"""The docs state what the code and the default config do (issue 14, point 9): numbers a user reads
in README.md and docs/*.md are checked against their source, so they cannot drift silently."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import REPO, run_snakemake


def test_transfer_doc_states_the_default_protocol_epochs() -> None:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    experiment = config["transfer"]["experiments"][0]
    linear = experiment["linear"]
    recipes = config["recipes"]
    full, scratch = recipes[experiment["full"]["recipe"]], recipes[experiment["scratch"]["recipe"]]
    text = " ".join((REPO / "docs" / "transfer.md").read_text().split())
    after = " and ".join(str(e) for e in linear["decay_after"])
    assert f"Linear heads train for {linear['epochs']} epochs (÷10 after {after}" in text
    assert f"with {len(linear['seeds'])} seeds" in text
    assert full["epochs"] == scratch["epochs"]
    assert f"Full finetuning and scratch run {full['epochs']} epochs (evaluated every {full['eval_every']})" in text
    assert f"with {len(experiment['full']['seeds'])} seeds" in text


def test_readme_says_how_to_recover_from_a_killed_snakemake() -> None:
    text = " ".join((REPO / "README.md").read_text().split())
    assert "LockException" in text and "snakemake --unlock" in text and "rerun-incomplete" in text


@pytest.mark.workflow
def test_readme_job_count_is_the_default_plan(tmp_path) -> None:
    out = run_snakemake(tmp_path, "-n", "--configfile", str(REPO / "config.yaml")).stdout
    total = int(re.search(r"^total\s+(\d+)$", out, flags=re.M).group(1))
    readme = " ".join((REPO / "README.md").read_text().split())
    assert f"the default run ({total} jobs)" in readme


def test_every_report_caption_a_rule_names_exists() -> None:
    """`snakemake --report` loads each caption file only after the whole run; a missing one fails
    the report of a finished run, so check every rule's caption path here."""
    captions = [
        (smk.name, m.group(1))
        for smk in sorted((REPO / "rules").glob("*.smk"))
        for m in re.finditer(r'caption="([^"]+)"', smk.read_text())
    ]
    assert len(captions) >= 15
    missing = [(rules, path) for rules, path in captions if not (REPO / "rules" / path).resolve().is_file()]
    assert not missing, f"caption files that do not exist: {missing}"
