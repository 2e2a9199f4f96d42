"""The reproduction ledger: the data files (a source for every number, configs and runs that exist),
the comparison on small fake result sets (a value inside and one outside the seeds' spread), and the
default run's plain message."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, run_snakemake

from sparselab.reproduction.compare import NO, NOT_PLANNED, ONE_SEED, YES, compare, read_source, write_table
from sparselab.reproduction.ledger import COLUMNS, SOURCES, LedgerError, read_ledger
from sparselab.reproduction.plan import ReproductionPlan
from sparselab.workflow import load_workflow_config

SCHEMA = REPO / "schemas" / "config.schema.yaml"
LEDGER = sorted((REPO / "published").glob("*.csv"))


def _plans(config: str) -> dict:
    return load_workflow_config(yaml.safe_load((REPO / config).read_text()), SCHEMA).plans()


def _ledger(tmp_path: Path, rows: list[dict], name: str = "paper.csv") -> Path:
    path = tmp_path / name
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in COLUMNS})
    return path


def _row(**over: str) -> dict:
    base = {
        "paper": "P",
        "config": "configs/mostafa19.yaml",
        "study": "dst",
        "dataset": "cifar10",
        "model": "wrn28_2",
        "method": "dsr",
        "sparsity": "0.9",
        "metric": "test_top1",
        "value": "93.59",
        "spread": "0.17",
        "n": "5",
        "unit": "%",
        "source": "a table",
        "section": "notes §1",
    }
    return {**base, **over}


# ---------------------------------------------------------------- the data files
def test_every_ledger_row_cites_a_source_and_names_a_config_that_exists() -> None:
    rows = read_ledger(LEDGER, REPO)  # raises on an empty source/section, an unknown metric, a missing config
    assert {p.name for p in LEDGER} == {"mostafa19.csv", "iofinova22.csv", "acdc.csv"}
    assert len(rows) == 50 + 264 + 4
    assert all(r.source and r.section and r.paper for r in rows)
    assert all(r.metric in r.record_source.metrics for r in rows)


@pytest.mark.parametrize("config", sorted({r.config for r in read_ledger(LEDGER)}))
def test_every_ledger_row_is_a_run_its_config_plans(config: str) -> None:
    plan = ReproductionPlan(REPO, [REPO / config], _plans(config))
    missing = [r.origin for r in plan.rows if r not in plan.compared()]
    assert plan.rows and not missing, f"rows whose run {config} does not plan: {missing[:5]}"


def test_ledger_values_read_back_as_published() -> None:
    """Spot checks against the reference notes (dsr.md §5.2/§5.3, transfer.md §7.2, the AC/DC README)."""
    rows = {(r.config, *r.key()): r for r in read_ledger(LEDGER)}
    m, t = "configs/mostafa19.yaml", "configs/iofinova22.yaml"
    assert rows[(m, "dst", "", "cifar10", "wrn28_2", "static", 0.9, "test_top1")].value == 92.04
    assert rows[(m, "dst", "", "cifar10", "wrn28_2", "static", 0.9, "test_top1")].spread == 0.31
    assert rows[(m, "dst", "", "mnist", "lenet", "dsr", 0.99, "test_top1")].value == 97.75
    assert rows[(t, "transfer", "full", "sun397", "resnet50", "woodfisher", 0.9, "top1")].value == 62.3
    assert rows[(t, "transfer", "linear", "aircraft", "resnet50", "acdc", 0.95, "top1")].value == 56.6
    assert rows[(t, "transfer", "upstream", "imagenet", "resnet50", "acdc", 0.98, "test_top1")].value == 68.48
    assert rows[(t, "transfer", "full", "food101", "resnet50", "acdc", 0.8, "top1")].n == 4


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"source": ""}, "column 'source' is empty"),
        ({"section": " "}, "column 'section' is empty"),
        ({"metric": "test_top5"}, "metric 'test_top5' is not in dst's records"),
        ({"study": "transfer", "setting": "probe"}, "study/setting transfer/probe has no records here"),
        ({"config": "configs/nope.yaml"}, "config 'configs/nope.yaml' does not exist"),
        ({"value": "9x"}, "value '9x' is not a number"),
        ({"sparsity": "90"}, "sparsity 90 is a fraction"),
        ({"unit": "fraction"}, "unit 'fraction'"),
    ],
)
def test_a_bad_ledger_row_is_one_clear_error(tmp_path: Path, over: dict, message: str) -> None:
    path = _ledger(tmp_path, [_row(**over)])
    with pytest.raises(LedgerError, match=f"paper.csv:2: .*{message}".replace("(", r"\(").replace(")", r"\)")):
        read_ledger([path], REPO)


def test_a_value_published_twice_for_one_run_is_an_error(tmp_path: Path) -> None:
    path = _ledger(tmp_path, [_row(), _row(value="93.6")])
    with pytest.raises(LedgerError, match="paper.csv:3: the same published value as .*paper.csv:2"):
        read_ledger([path])


# ---------------------------------------------------------------- the comparison
def _dst_records(tmp_path: Path, runs: dict[tuple[str, float], list[float]]) -> Path:
    rows = [
        {"dataset": "cifar10", "model": "wrn28_2", "method": m, "sparsity": s, "seed": i, "test_top1": v}
        for (m, s), values in runs.items()
        for i, v in enumerate(values)
    ]
    path = tmp_path / "records.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_a_value_inside_and_one_outside_the_seeds_spread(tmp_path: Path) -> None:
    ledger = read_ledger(
        [
            _ledger(
                tmp_path,
                [
                    _row(method="dsr", sparsity="0.9", value="93.59"),  # ours 93.70 ± 0.10: 0.11 <= 0.2 + 0.005
                    _row(method="set", sparsity="0.9", value="93.28"),  # ours 93.60 ± 0.10: 0.32 > 0.205
                    _row(method="dsr", sparsity="0.8", value="94.4"),  # ours 94.21 ± 0.05: 0.19 > 0.1 + 0.05
                    _row(method="deepr", sparsity="0.9", value="91.41"),  # one seed
                    _row(method="static", sparsity="0.9", value="92.04"),  # no run
                ],
            )
        ]
    )
    records = _dst_records(
        tmp_path,
        {
            ("dsr", 0.9): [0.936, 0.937, 0.938],
            ("set", 0.9): [0.935, 0.936, 0.937],
            ("dsr", 0.8): [0.9416, 0.9421, 0.9426],
            ("deepr", 0.9): [0.914],
        },
    )
    table = write_table(
        ledger, ["configs/mostafa19.yaml"], 2.0, {"dst": str(records)}, {}, tmp_path / "t.csv", tmp_path / "t.md"
    ).set_index(["method", "sparsity"])
    dsr = table.loc[("dsr", 0.9)]
    assert dsr["seeds"] == 3
    assert dsr["mean"] == pytest.approx(93.7) and dsr["std"] == pytest.approx(0.1)
    assert dsr["difference"] == pytest.approx(0.11) and dsr["tolerance"] == pytest.approx(0.205)
    assert dsr["within"] == YES
    assert table.loc[("set", 0.9), "difference"] == pytest.approx(0.32)
    assert table.loc[("set", 0.9), "within"] == NO
    # std 0.05: 2 std = 0.10, plus 0.05 for a value printed with one decimal; |94.21 - 94.4| = 0.19 > 0.15
    assert table.loc[("dsr", 0.8), "tolerance"] == pytest.approx(0.15)
    assert table.loc[("dsr", 0.8), "within"] == NO
    assert table.loc[("deepr", 0.9), "within"] == ONE_SEED
    assert table.loc[("deepr", 0.9), "difference"] == pytest.approx(-0.01)
    assert table.loc[("static", 0.9), "within"] == NOT_PLANNED
    csv_table = pd.read_csv(tmp_path / "t.csv")
    assert csv_table["published"].tolist()[:2] == pytest.approx([0.9359, 0.9328])  # fractions, as the records
    md = (tmp_path / "t.md").read_text()
    assert "| P | dst | cifar10 | wrn28_2 | set | 90 | test_top1 | 93.28 ± 0.17 | 93.60 ± 0.10 (3) | 0.32 | no |" in md
    assert "5 published values: 1 yes, 2 no, 1 one seed: no spread, 1 not planned by this config." in md


def test_k_decides_what_lies_within(tmp_path: Path) -> None:
    """The same runs: 1.5 std away is within 2 std, not within 1."""
    ledger = read_ledger([_ledger(tmp_path, [_row(value="93.55")])])  # ours 93.70 ± 0.10
    runs = {"dst": read_source("dst", records=_dst_records(tmp_path, {("dsr", 0.9): [0.936, 0.937, 0.938]}))}
    assert compare(ledger, runs, 2.0)["within"].item() == YES
    assert compare(ledger, runs, 1.0)["within"].item() == NO


def test_transfer_rows_match_their_mode_and_upstream(tmp_path: Path) -> None:
    keys = {"upstream_dataset": "imagenet", "model": "resnet50", "sparsity": 0.9, "dataset": "cifar10"}
    records = pd.DataFrame(
        [
            {**keys, "upstream": "acdc", "mode": "linear", "seed": 0, "top1": 0.91, "mean_per_class": 0.9},
            {**keys, "upstream": "acdc", "mode": "linear", "seed": 1, "top1": 0.91, "mean_per_class": 0.9},
            {**keys, "upstream": "acdc", "mode": "full", "seed": 0, "top1": 0.5, "mean_per_class": 0.5},
            {**keys, "upstream": "acdc_pub", "mode": "linear", "seed": 0, "top1": 0.2, "mean_per_class": 0.2},
        ]
    )
    path = tmp_path / "records.csv"
    records.to_csv(path, index=False)
    linear = read_source("transfer/linear", records=path)
    assert len(linear) == 3 and set(linear["method"]) == {"acdc", "acdc_pub"}
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"method": "acdc", "test_top1": 0.7503}))
    up_keys = {"upstream_dataset": "imagenet", "model": "resnet50", "upstream": "acdc", "sparsity": 0.9, "seed": 0}
    upstream = read_source("transfer/upstream", summaries=[[up_keys, str(summary)]])
    assert upstream.to_dict("records") == [
        {"dataset": "imagenet", "model": "resnet50", "method": "acdc", "sparsity": 0.9, "test_top1": 0.7503}
    ]
    t = "configs/iofinova22.yaml"
    common = {"config": t, "study": "transfer", "model": "resnet50", "sparsity": "0.9"}
    ledger = read_ledger(
        [
            _ledger(
                tmp_path,
                [
                    _row(**common, setting="linear", dataset="cifar10", method="acdc", metric="top1", value="91.0"),
                    _row(
                        **common,
                        setting="upstream",
                        dataset="imagenet",
                        method="acdc",
                        metric="test_top1",
                        value="75.03",
                    ),
                ],
            )
        ]
    )
    table = compare(ledger, {"transfer/linear": linear, "transfer/upstream": upstream}, 2.0)
    assert table["seeds"].tolist() == [2, 1]  # the full run and the other upstream are not counted
    assert table["mean"].tolist() == pytest.approx([91.0, 75.03])
    assert table["within"].tolist() == [YES, ONE_SEED]  # two equal seeds: std 0, within the rounding


# ---------------------------------------------------------------- the plan and the default run
def test_the_default_run_compares_nothing_and_says_so(tmp_path: Path) -> None:
    plan = ReproductionPlan(REPO, [REPO / "config.yaml"], _plans("config.yaml"))
    assert plan.configs == ["config.yaml"] and plan.rows == [] and plan.inputs() == []
    # a config the ledger does not name is not in the params: renaming or editing it never reruns the table
    assert plan.params() == {"configs": [], "k": 2.0, "records": {}, "summaries": {}}
    table = write_table(plan.ledger, plan.configs, plan.k, {}, {}, tmp_path / "t.csv", tmp_path / "t.md")
    assert table.empty and pd.read_csv(tmp_path / "t.csv").empty
    md = " ".join((tmp_path / "t.md").read_text().split())
    assert "nothing paper-scale was run" in md
    assert "This run's config is none of the paper configs the ledger names: no published number is compared" in md
    assert (
        "| configs/mostafa19.yaml | Mostafa & Wang 2019 (ICML) | dst | 50 | cifar10, imagenet, mnist | test_top1 |"
        in md
    )
    assert "| configs/iofinova22.yaml | Iofinova et al. 2022 (CVPR) | transfer/full | 132 |" in md


def test_a_moved_workflow_plans_the_same_job(tmp_path: Path) -> None:
    """The ledger files reach the job by name and content digest, not by absolute path: a copy of a
    finished workflow elsewhere (a clone, a moved directory) must not rerun the table."""
    import hashlib
    import shutil

    copy = tmp_path / "elsewhere"
    shutil.copytree(REPO / "published", copy / "published")
    here = ReproductionPlan(REPO, [REPO / "config.yaml"], _plans("config.yaml"))
    there = ReproductionPlan(copy, [copy / "config.yaml"], _plans("config.yaml"))
    assert (
        here.published()
        == there.published()
        == {
            f"published/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((REPO / "published").glob("*.csv"))
        }
    )
    assert here.params() == there.params() and here.inputs() == there.inputs() == []


def test_a_paper_config_reads_its_studies_records() -> None:
    plan = ReproductionPlan(REPO, [REPO / "configs" / "iofinova22.yaml"], _plans("configs/iofinova22.yaml"))
    assert plan.records() == {
        "transfer/full": "results/transfer/summary/records.csv",
        "transfer/linear": "results/transfer/summary/records.csv",
    }
    upstream = plan.summaries()["transfer/upstream"]
    assert [path for _, path in upstream] == [
        f"results/transfer/imagenet/resnet50/upstream/acdc/s{s}/summary.json" for s in ("0.8", "0.9", "0.95", "0.98")
    ]
    assert plan.inputs()[0] == "results/transfer/summary/records.csv" and len(plan.inputs()) == 5


def test_record_sources_are_the_studies_records() -> None:
    """The records paths the ledger names are the ones the studies' plans produce."""
    for source in SOURCES.values():
        if source.records is not None:
            plans = _plans({"dst": "configs/mostafa19.yaml", "transfer": "configs/iofinova22.yaml"}[source.study])
            assert source.records in plans[source.study].targets()


@pytest.mark.workflow
def test_default_workflow_writes_the_nothing_compared_table(tmp_path: Path) -> None:
    run_snakemake(tmp_path, "results/reproduction/table.md", "--cores", "1", "--configfile", str(REPO / "config.yaml"))
    assert "nothing paper-scale was run" in (tmp_path / "results" / "reproduction" / "table.md").read_text()
