"""Tables, headline and figure of the sparse-transfer study, on a small hand-made records frame."""

from __future__ import annotations

import math
import random
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from sparselab.studies.transfer import report as tr  # noqa: E402


def run(
    up: str,
    sparsity: float,
    mode: str,
    dataset: str,
    seed: int,
    top1: float,
    mpc: float | None = None,
    model: str = "resnet18",
) -> dict:
    return {
        "upstream_dataset": "imagenet",
        "model": model,
        "upstream": up,
        "sparsity": sparsity,
        "measured_sparsity": sparsity + 0.001 * (up != "dense" and up != "scratch"),
        "mode": mode,
        "dataset": dataset,
        "seed": seed,
        "top1": top1,
        "mean_per_class": top1 - 0.01 if mpc is None else mpc,
    }


def study_rows() -> list[dict]:
    """Numbers chosen so that every mean and population std is exact (in %)."""
    rows = []
    for seed, (c, p) in enumerate([(0.80, 0.60), (0.82, 0.64)]):  # dense: 81 ± 1, 62 ± 2; seeds' means 70, 73
        rows += [run("dense", 0.0, "linear", "cifar10", seed, c), run("dense", 0.0, "linear", "pets", seed, p)]
    rows += [run("gmp", 0.8, "linear", "cifar10", s, v) for s, v in enumerate([0.70, 0.72, 0.74])]  # 72 ± sqrt(8/3)
    rows += [run("gmp", 0.8, "linear", "pets", 0, 0.50)]  # only seed 0 is complete: (70 + 50) / 2
    rows += [
        run("gmp", 0.9, "linear", "cifar10", 1, 0.66),
        run("gmp", 0.9, "linear", "pets", 0, 0.40),
    ]  # no complete seed
    for seed, (c, p) in enumerate([(0.78, 0.63), (0.80, 0.65)]):
        rows += [run("acdc", 0.9, "linear", "cifar10", seed, c), run("acdc", 0.9, "linear", "pets", seed, p)]
    rows += [
        run("dsr", 0.9, "linear", "cifar10", 0, 0.50),
        run("dsr", 0.9, "linear", "pets", 0, 0.20),
    ]  # loses to scratch
    rows += [run("rigl", 0.8, "linear", "cifar10", 0, 0.75), run("rigl", 0.8, "linear", "pets", 0, 0.55)]
    for seed, (c, p) in enumerate([(0.60, 0.30), (0.62, 0.30)]):  # scratch: 61 ± 1, 30 ± 0, mean 45.5 ± 0.5
        rows += [run("scratch", 0.0, "scratch", "cifar10", seed, c), run("scratch", 0.0, "scratch", "pets", seed, p)]
    rows += [run("dense", 0.0, "full", "cifar10", 0, 0.90), run("dense", 0.0, "full", "pets", 0, 0.70)]
    rows += [run("acdc", 0.9, "full", "cifar10", 0, 0.88), run("acdc", 0.9, "full", "pets", 0, 0.68)]
    rows += [run("gmp", 0.8, "full", "cifar10", 0, 0.605)]  # 60.5 > 45.5 overall, but < 61 on cifar10 alone
    random.Random(0).shuffle(rows)
    return rows


def outputs(tmp_path) -> dict:
    names = {
        "table": "t.csv",
        "table_md": "t.md",
        "headline": "h.csv",
        "headline_md": "h.md",
        "figure_pdf": "f.pdf",
        "figure_png": "f.png",
    }
    return {k: tmp_path / v for k, v in names.items()}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The study's report, written once for the tests that only read it."""
    tmp_path = tmp_path_factory.mktemp("transfer")
    records = tmp_path / "records.csv"
    tr.write_records(study_rows(), records)
    out = outputs(tmp_path)
    tr.write_report(records, out, "Sparse transfer")
    return records, out


def row(table: pd.DataFrame, mode: str, upstream: str, sparsity: float, dataset: str) -> pd.Series:
    hit = table[
        (table["mode"] == mode)
        & (table["upstream"] == upstream)
        & (table["sparsity"] == sparsity)
        & (table["dataset"] == dataset)
    ]
    assert len(hit) == 1, (mode, upstream, sparsity, dataset)
    return hit.iloc[0]


def test_records_are_sorted_with_a_stable_column_order(tmp_path):
    rows = study_rows()
    rows[0] = {"extra_b": 1, **rows[0], "extra_a": 2}
    tr.write_records(rows, tmp_path / "records.csv")
    df = pd.read_csv(tmp_path / "records.csv")
    assert list(df.columns) == [*tr.COLUMNS, "extra_a", "extra_b"]
    assert len(df) == len(rows)
    keys = list(zip(df["model"], df["mode"], df["upstream"], df["sparsity"], df["dataset"], df["seed"]))
    assert keys == sorted(keys)
    assert list(df["mode"].drop_duplicates()) == ["full", "linear", "scratch"]


def test_records_reject_duplicates_and_inconsistent_rows(tmp_path):
    rows = study_rows()
    with pytest.raises(ValueError, match="same keys"):
        tr.write_records([*rows, dict(rows[0])], tmp_path / "r.csv")
    with pytest.raises(ValueError, match="scratch"):
        tr.write_records([run("dense", 0.0, "scratch", "pets", 0, 0.5)], tmp_path / "r.csv")
    with pytest.raises(ValueError, match="unknown mode"):
        tr.write_records([run("dense", 0.0, "probe", "pets", 0, 0.5)], tmp_path / "r.csv")
    with pytest.raises(ValueError, match="fraction"):
        tr.write_records([run("dense", 0.0, "linear", "pets", 0, 81.0)], tmp_path / "r.csv")
    with pytest.raises(ValueError, match="lack columns"):
        tr.write_records([{"model": "resnet18"}], tmp_path / "r.csv")
    assert not (tmp_path / "r.csv").exists()


def test_table_means_and_population_stds(report):
    _, out = report
    table = pd.read_csv(out["table"])
    assert list(table.columns) == tr.TABLE_COLUMNS
    d = row(table, "linear", "dense", 0.0, "cifar10")
    assert (d["n_seeds"], d["top1_mean"], d["top1_std"]) == (2, pytest.approx(81.0), pytest.approx(1.0))
    assert (d["mpc_mean"], d["mpc_std"]) == (pytest.approx(80.0), pytest.approx(1.0))
    assert row(table, "linear", "dense", 0.0, "pets")["top1_std"] == pytest.approx(2.0)  # ddof=0, not 2.83
    g = row(table, "linear", "gmp", 0.8, "cifar10")
    assert (g["n_seeds"], g["top1_mean"], g["top1_std"]) == (3, pytest.approx(72.0), pytest.approx(math.sqrt(8 / 3)))
    assert g["measured_sparsity"] == pytest.approx(0.801)
    one = row(table, "linear", "gmp", 0.8, "pets")
    assert (one["n_seeds"], one["top1_mean"], one["top1_std"]) == (1, pytest.approx(50.0), 0.0)  # one seed: std 0


def test_dataset_mean_rows_and_their_seed_std(report):
    _, out = report
    table = pd.read_csv(out["table"])
    dense = row(table, "linear", "dense", 0.0, "mean")
    # mean of the dataset means (81, 62); std over the per-seed dataset averages (70, 73), ddof=0
    assert (dense["n_datasets"], dense["n_seeds"]) == (2, 2)
    assert dense["top1_mean"] == pytest.approx(71.5) and dense["top1_std"] == pytest.approx(1.5)
    assert dense["mpc_mean"] == pytest.approx(70.5) and dense["mpc_std"] == pytest.approx(1.5)
    gmp = row(table, "linear", "gmp", 0.8, "mean")  # (72 + 50) / 2, only seed 0 is present for both datasets
    assert (gmp["top1_mean"], gmp["n_seeds"], gmp["top1_std"]) == (pytest.approx(61.0), 1, 0.0)
    none = row(table, "linear", "gmp", 0.9, "mean")  # no seed has both datasets
    assert none["top1_mean"] == pytest.approx(53.0) and none["n_seeds"] == 0 and math.isnan(none["top1_std"])
    partial = row(table, "full", "gmp", 0.8, "mean")
    assert (partial["n_datasets"], partial["top1_mean"]) == (1, pytest.approx(60.5))
    scratch = row(table, "scratch", "scratch", 0.0, "mean")
    assert scratch["top1_mean"] == pytest.approx(45.5) and scratch["top1_std"] == pytest.approx(0.5)
    # order: linear then full then scratch, dense first, each group's datasets then its mean
    assert list(table["mode"].drop_duplicates()) == ["linear", "full", "scratch"]
    assert list(table["dataset"][:3]) == ["cifar10", "pets", "mean"]


def test_headline_values_and_beats_scratch(report):
    _, out = report
    head = pd.read_csv(out["headline"])
    assert list(head["label"]) == [
        "dense",
        "gmp 80%",
        "gmp 90%",
        "acdc 90%",
        "dsr 90%",
        "rigl 80%",
        "scratch (no upstream)",
    ]
    h = head.set_index("label")
    assert h.loc["dense", "linear_mean"] == pytest.approx(71.5) and h.loc["dense", "linear_std"] == pytest.approx(1.5)
    assert h.loc["dense", "full_mean"] == pytest.approx(80.0) and h.loc["dense", "full_std"] == 0.0
    assert h.loc["acdc 90%", "linear_std"] == pytest.approx(1.0)
    assert h.loc["scratch (no upstream)", "linear_mean"] == pytest.approx(45.5)
    assert h.loc["scratch (no upstream)", "full_mean"] == pytest.approx(45.5)
    assert math.isnan(h.loc["rigl 80%", "full_mean"])

    head = tr.headline_table(tr.transfer_table(pd.read_csv(report[0])))
    flags = {r.label: (r.beats_scratch_linear, r.beats_scratch_full) for r in head.itertuples()}
    assert flags["dense"] == (True, True) and flags["acdc 90%"] == (True, True)
    assert flags["dsr 90%"][0] is False and pd.isna(flags["dsr 90%"][1])  # 35 < 45.5; no full runs
    # gmp 80% full ran on cifar10 only: 60.5 beats the scratch mean 45.5 but not scratch on cifar10 (61)
    assert flags["gmp 80%"] == (True, False)
    assert all(pd.isna(f) for f in flags["scratch (no upstream)"])


def test_table_markdown_order_and_cells(report):
    _, out = report
    md = out["table_md"].read_text()
    assert md.startswith("# Sparse transfer\n")
    assert md.index("### linear finetuning") < md.index("### full finetuning")
    linear, full = md.split("### full finetuning")
    labels = [
        line.split("|")[1].strip()
        for line in linear.splitlines()
        if line.startswith("| ") and not line.startswith("| upstream")
    ]
    assert labels == ["dense", "gmp 80%", "gmp 90%", "acdc 90%", "dsr 90%", "rigl 80%", "scratch (no upstream)"]
    assert "| dense                 |       2 | 81.0 ± 1.0 | 62.0 ± 2.0 | 71.5 ± 1.5 |" in linear
    assert "|     1–3 | 72.0 ± 1.6 | 50.0 ± 0.0 | 61.0 ± 0.0 |" in linear
    assert "| 40.0 ± 0.0 |       53.0 |" in linear  # no complete seed: the mean without a std
    cols = [c.strip() for c in linear.split("\n| upstream")[1].splitlines()[0].split("|")]
    assert cols[1:-1] == ["seeds", "cifar10", "pets", "mean"]
    labels = [
        line.split("|")[1].strip()
        for line in full.splitlines()
        if line.startswith("| ") and not line.startswith("| upstream")
    ]
    assert labels == ["dense", "gmp 80%", "acdc 90%", "scratch (no upstream)"]  # scratch in both sections
    assert "| 60.5 ± 0.0 |          — | 60.5 ± 0.0* |" in full and "fewer datasets" in full
    assert "61.0 ± 1.0 | 30.0 ± 0.0 |  45.5 ± 0.5 |" in full


def test_headline_markdown(report):
    md = report[1]["headline_md"].read_text()
    assert md.startswith("# Sparse transfer\n") and "## resnet18 (upstream: imagenet)" in md
    assert "| dense                 |   71.5 ± 1.5 | 80.0 ± 0.0 |                yes |              yes |" in md
    assert "| gmp 80%               |   61.0 ± 0.0 | 60.5 ± 0.0 |                yes |               no |" in md
    assert "| dsr 90%               |   35.0 ± 0.0 |          — |                 no |                — |" in md
    assert "| scratch (no upstream) |   45.5 ± 0.5 | 45.5 ± 0.5 |                  — |                — |" in md


def test_figure_is_written_with_panels_and_one_legend(report):
    _, out = report
    assert out["figure_pdf"].read_bytes()[:4] == b"%PDF" and out["figure_png"].read_bytes()[:4] == b"\x89PNG"
    assert out["figure_pdf"].stat().st_size > 1000 and out["figure_png"].stat().st_size > 1000
    fig = tr.transfer_figure(tr.transfer_table(pd.read_csv(report[0])), "Sparse transfer")
    axes = fig.axes
    assert len(axes) == 2 * 3  # rows: linear, full; columns: cifar10, pets, mean
    assert [ax.get_title() for ax in axes[:3]] == ["cifar10", "pets", "mean over datasets"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["dense", "gmp", "acdc", "dsr", "rigl", "scratch"]
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in axes)
    scratch = [ln for ln in axes[0].lines if ln.get_label() == "scratch"]
    assert len(scratch) == 1 and scratch[0].get_linestyle() == "--" and scratch[0].get_ydata()[0] == pytest.approx(61.0)
    dense = [ln for ln in axes[0].lines if ln.get_label() == "dense"]
    assert dense[0].get_linestyle() == "-" and dense[0].get_ydata()[0] == pytest.approx(81.0)
    gmp = [c.lines[0] for c in axes[0].containers if c.get_label() == "gmp"]  # errorbar: data line first
    assert list(gmp[0].get_xdata()) == pytest.approx([80.0, 90.0]) and list(gmp[0].get_ydata()) == pytest.approx(
        [72.0, 66.0]
    )
    assert fig._suptitle.get_text() == "Sparse transfer"
    plt.close(fig)


def test_edge_cases_linear_only_no_scratch_one_dataset_one_sparsity_one_seed(tmp_path):
    rows = [run("dense", 0.0, "linear", "pets", 0, 0.70), run("acdc", 0.9, "linear", "pets", 0, 0.72)]
    tr.write_records(rows, tmp_path / "records.csv")
    out = outputs(tmp_path)
    frames = tr.write_report(tmp_path / "records.csv", out, "edge")
    table = frames["table"]
    assert list(table["dataset"]) == ["pets", "mean", "pets", "mean"]
    assert (table["top1_std"] == 0).all() and (table["n_seeds"] == 1).all()
    head = pd.read_csv(out["headline"])
    assert list(head["label"]) == ["dense", "acdc 90%"]
    assert head["beats_scratch_linear"].isna().all() and head["full_mean"].isna().all()
    md = out["headline_md"].read_text()
    assert "scratch" not in md and "full" not in md and "72.0 ± 0.0" in md
    table_md = out["table_md"].read_text()
    assert "### linear finetuning" in table_md and "### full" not in table_md and "scratch" not in table_md
    assert out["figure_png"].stat().st_size > 0 and out["figure_pdf"].stat().st_size > 0
    fig = tr.transfer_figure(table)
    assert len(fig.axes) == 2 and [t.get_text() for t in fig.legends[0].get_texts()] == ["dense", "acdc"]
    plt.close(fig)


def test_several_models_and_scratch_only(tmp_path):
    rows = [run("dense", 0.0, "full", "pets", 0, 0.7, model=m) for m in ("resnet18", "mobilenet")]
    rows += [run("scratch", 0.0, "scratch", "pets", 0, 0.4, model="vgg")]  # an experiment with only a baseline
    tr.write_records(rows, tmp_path / "records.csv")
    out = {k: v for k, v in outputs(tmp_path).items() if not k.startswith("figure")}  # a subset of the outputs
    frames = tr.write_report(tmp_path / "records.csv", out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.csv", "h.md", "records.csv", "t.csv", "t.md"]
    md = out["table_md"].read_text()
    assert md.index("## mobilenet") < md.index("## resnet18") < md.index("## vgg")
    assert "### from scratch only" in md and not md.startswith("#  ")
    assert frames["headline"]["label"].tolist() == ["dense", "dense", "scratch (no upstream)"]
    fig = tr.transfer_figure(frames["table"])
    assert len(fig.axes) == 3 * 2  # a row per model x mode
    assert [ax.get_ylabel().split("\n")[0] for ax in fig.axes[::2]] == [
        "mobilenet · full",
        "resnet18 · full",
        "vgg · scratch",
    ]
    plt.close(fig)


def test_empty_records_and_output_keys(tmp_path):
    tr.write_records([], tmp_path / "records.csv")
    out = outputs(tmp_path)
    tr.write_report(tmp_path / "records.csv", out, "none")
    assert "No transfer runs" in out["table_md"].read_text() and out["figure_png"].stat().st_size > 0
    with pytest.raises(ValueError, match="unknown outputs"):
        tr.write_report(tmp_path / "records.csv", {"tabel": tmp_path / "x.csv"})
    with pytest.raises(ValueError, match="together"):
        tr.write_report(tmp_path / "records.csv", {"figure_png": tmp_path / "x.png"})


def test_upstream_labels():
    assert tr.upstream_label("dense", 0.0) == "dense"
    assert tr.upstream_label("gmp", 0.8) == "gmp 80%" and tr.upstream_label("acdc", 0.975) == "acdc 97.5%"
    assert tr.upstream_label("torchvision", 0.0) == "torchvision"
    assert tr.upstream_label("scratch", 0.0) == "scratch (no upstream)"


def test_module_does_not_import_torch():
    code = "import sys, sparselab.studies.transfer.report; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
