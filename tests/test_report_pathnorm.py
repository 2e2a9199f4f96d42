"""Tables and figures of the path-norm study, on small synthetic metrics CSVs."""

from __future__ import annotations

import math
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402

from sparselab.studies.pathnorm import report as pn  # noqa: E402

QS = (1, 2, 4, 8, 16)


def metrics_rows(epochs, *, base: float, l1_inf_epoch: int | None = None) -> pd.DataFrame:
    """Per-epoch metrics as the training engine writes them (fractions, path-norm columns)."""
    rows = []
    for e in epochs:
        row = {
            "epoch": e,
            "step": 10 * e,
            "lr": 0.1,
            "train_loss": 2.0 - 0.1 * e,
            "train_top1": 0.3 + 0.01 * e,
            "train_top5": "",
            "val_loss": "",
            "val_top1": "",
            "test_loss": 2.5 - 0.1 * e + base,
            "test_top1": 0.2 + 0.02 * e - base / 10,
            "epoch_time_s": 1.0,
        }
        for q in QS:
            log10 = base + 30.0 / q - 0.5 * e
            row[f"log10_L{q:g}"] = log10
            row[f"L{q:g}"] = 10.0**log10
            row[f"gbrg24_log10_L{q:g}"] = log10 - 1.0  # distinct from the exact values
            row[f"gbrg24_L{q:g}"] = 10.0 ** (log10 - 1.0)
        if e == l1_inf_epoch:
            row["L1"] = float("inf")  # the value overflowed; its log10 is still finite
        for i, k in enumerate(pn.MARGIN_QUANTILES):
            row[k] = 0.5 * i + 0.01 * e
        row["margin_train_top1"] = 0.35 + 0.03 * e - base / 20
        row["margin_train_loss"] = 1.8 - 0.1 * e + base / 5
        row["analysis_time_s"] = 0.5
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture()
def imp_runs(tmp_path):
    """3 IMP rounds, E = 4 epochs, rewind to k = 1: round 0 has epochs 1..4, later ones 2..4."""
    paths = {}
    for r in range(3):
        epochs = range(1, 5) if r == 0 else range(2, 5)
        frame = metrics_rows(epochs, base=0.1 * r, l1_inf_epoch=1 if r == 0 else None)
        paths[r] = tmp_path / f"round{r}.csv"
        frame.to_csv(paths[r], index=False)
    sparsity = {0: 0.0, 1: 0.2, 2: 0.36}
    return paths, sparsity


@pytest.fixture()
def subset_runs(tmp_path):
    paths = {}
    for fraction in (0.125, 0.25, 0.3):
        for seed in (0, 1):
            frame = metrics_rows(range(1, 4), base=fraction + 0.05 * seed)
            paths[(fraction, seed)] = tmp_path / f"f{fraction}_s{seed}.csv"
            frame.to_csv(paths[(fraction, seed)], index=False)
    return paths


def test_load_runs_and_epoch_summary(imp_runs):
    paths, _ = imp_runs
    df = pn.load_runs(paths, ("round",))
    assert len(df) == 4 + 3 + 3
    assert list(df.columns[:1]) == ["round"]
    assert df.groupby("round").size().to_dict() == {0: 4, 1: 3, 2: 3}
    assert df.loc[(df["round"] == 0) & (df["epoch"] == 1), "L1"].item() == math.inf
    assert np.isfinite(df["log10_L1"]).all()
    assert df["val_top1"].isna().all()

    last = pn.epoch_summary(df, ("round",), gap="eval")
    assert list(last["round"]) == [0, 1, 2]
    assert list(last["epoch"]) == [4, 4, 4]
    r1 = last[last["round"] == 1].iloc[0]
    # gap="eval": the eval-mode margin_train_* columns, not the running train_top1/train_loss
    assert r1["top1_gap_pct"] == pytest.approx(100 * ((0.35 + 0.12 - 0.005) - (0.2 + 0.08 - 0.01)))
    assert r1["ce_gap"] == pytest.approx((2.5 - 0.4 + 0.1) - (1.8 - 0.4 + 0.02))
    assert r1["log10_L1"] == pytest.approx(0.1 + 30 - 2)


def test_load_runs_tuple_keys_and_seed_average(subset_runs):
    df = pn.load_runs(subset_runs, ("fraction", "seed"))
    assert list(df.columns[:2]) == ["fraction", "seed"]
    assert len(df) == 3 * 2 * 3
    last = pn.epoch_summary(df, ("fraction", "seed"))
    assert len(last) == 6 and (last["epoch"] == 3).all()
    avg = pn.epoch_summary(df, ("fraction", "seed"), average_over=("seed",))
    assert list(avg["fraction"]) == [0.125, 0.25, 0.3]
    assert (avg["n_runs"] == 2).all()
    expected = last[last["fraction"] == 0.25]["top1_gap_pct"].mean()
    assert avg.loc[avg["fraction"] == 0.25, "top1_gap_pct"].item() == pytest.approx(expected)
    # path-norms: the arithmetic mean of the values (what the figure plots), kept in log10
    seeds = last[last["fraction"] == 0.3]["log10_L1"]
    assert avg.loc[avg["fraction"] == 0.3, "log10_L1"].item() == pytest.approx(math.log10((10.0**seeds).mean()))
    md = pn.summary_markdown(avg, ("fraction",))
    assert " 1/8 |" in md and " 0.3 |" in md and f"{(10.0**seeds).mean():.3e}" in md

    with pytest.raises(ValueError):
        pn.load_runs({0: next(iter(subset_runs.values()))}, ("fraction", "seed"))


def test_imp_figure_panels_lines_and_log_axes(imp_runs):
    paths, sparsity = imp_runs
    df = pn.load_runs(paths, ("round",))
    fig = pn.imp_figure(df, sparsity, title="IMP", conventions=("exact",), gap="eval")
    panels, colourbar = fig.axes[:6], fig.axes[6:]
    assert len(fig.axes) == 7 and len(colourbar) == 1
    labels = [t.get_text() for t in colourbar[0].get_yticklabels()]
    assert labels == ["0 (dense)", "1 (20.0%)", "2 (36.0%)"]
    for ax, q in zip(panels[:3], (1, 2, 4)):
        assert len(ax.lines) == 3  # one line per round
        assert ax.get_yscale() == "log" and not pn.pathnorm_panel_is_log10(ax)
        assert f"L{q}" in ax.get_ylabel()
    # the inf L1 at round 0, epoch 1 is plotted from its finite log10
    l1_round0 = panels[0].lines[0]
    assert list(l1_round0.get_xdata()) == [1, 2, 3, 4]
    assert l1_round0.get_ydata()[0] == pytest.approx(10 ** (30 - 0.5))
    assert np.isfinite(l1_round0.get_ydata()).all()
    # later rounds start at the rewind epoch
    assert list(panels[0].lines[2].get_xdata()) == [2, 3, 4]
    gap, train, test = panels[3:]
    for ax in (gap, train, test):
        assert ax.get_yscale() == "linear"
        assert len([ln for ln in ax.lines if ln.get_label() in {"0 (dense)", "1 (20.0%)", "2 (36.0%)"}]) == 3
    row = df[(df["round"] == 2) & (df["epoch"] == 3)].iloc[0]
    assert gap.lines[2].get_ydata()[1] == pytest.approx(100 * (row["margin_train_top1"] - row["test_top1"]))
    assert test.lines[2].get_ydata()[1] == pytest.approx(100 * row["test_top1"])
    assert train.lines[2].get_ydata()[1] == pytest.approx(100 * row["margin_train_top1"])
    pn.plt.close(fig)

    gb = pn.imp_figure(df, sparsity, qs_panels=(1,), conventions=("gbrg24",))
    assert len(gb.axes) == 4 + 1
    assert gb.axes[0].lines[0].get_ydata()[0] == pytest.approx(10 ** (30 - 0.5 - 1.0))
    pn.plt.close(gb)


def test_pathnorm_panel_falls_back_to_log10_when_values_overflow(imp_runs):
    paths, sparsity = imp_runs
    df = pn.load_runs(paths, ("round",))
    df.loc[df["round"] == 0, "log10_L1"] += 400.0  # 1e430: not a float64
    df.loc[df["round"] == 0, "L1"] = math.inf
    fig = pn.imp_figure(df, sparsity, conventions=("exact",))
    ax = fig.axes[0]
    assert pn.pathnorm_panel_is_log10(ax) and ax.get_yscale() == "linear"
    assert ax.get_ylabel().startswith("log10 ")
    assert ax.lines[0].get_ydata()[0] == pytest.approx(430 - 0.5)
    assert fig.axes[1].get_yscale() == "log"  # other panels are unaffected
    pn.plt.close(fig)


def test_subsets_figure_averages_seeds(subset_runs):
    df = pn.load_runs(subset_runs, ("fraction", "seed"))
    fig = pn.subsets_figure(df, title="subsets", conventions=("exact",), gap="eval")
    assert len(fig.axes) == 3
    top1, ce, l1 = fig.axes
    for ax in fig.axes:
        assert [ln.get_label() for ln in ax.lines if not ln.get_label().startswith("_")] == ["1/8", "1/4", "0.3"]
    assert l1.get_yscale() == "log" and top1.get_yscale() == "linear"
    assert [t.get_text() for t in top1.get_legend().get_texts()] == ["1/8", "1/4", "0.3"]

    at = df[(df["fraction"] == 0.25) & (df["epoch"] == 2)]
    assert len(at) == 2  # two seeds
    gap = 100 * (at["margin_train_top1"] - at["test_top1"])
    assert gap.iloc[0] != pytest.approx(gap.iloc[1])
    line = next(ln for ln in top1.lines if ln.get_label() == "1/4")
    assert line.get_ydata()[list(line.get_xdata()).index(2)] == pytest.approx(gap.mean())
    line = next(ln for ln in ce.lines if ln.get_label() == "1/4")
    assert line.get_ydata()[1] == pytest.approx((at["test_loss"] - at["margin_train_loss"]).mean())
    line = next(ln for ln in l1.lines if ln.get_label() == "1/4")
    assert line.get_ydata()[1] == pytest.approx((10.0 ** at["log10_L1"]).mean())  # arithmetic mean of values
    pn.plt.close(fig)


def test_fraction_label():
    assert [pn.fraction_label(f) for f in (0.5, 1 / 32, 1.0, 0.3, 0.75)] == ["1/2", "1/32", "1", "0.3", "0.75"]


SUMMARIES = [
    {
        "name": "resnet18",
        "source": "torchvision:ResNet18_Weights.IMAGENET1K_V1",
        "dataset": "imagenet",
        "n": 1268355,
        "train_top1": 0.78,
        "quantiles": {"margin_q0": 0.0, "margin_q1_3": 1.5, "margin_q1_2": 3.25, "margin_q2_3": 5.0, "margin_q1": 30.0},
        "pathnorms": [
            {"q": 1.0, "convention": "exact", "value": 1.3297e30, "log10": math.log10(1.3297e30)},
            {"q": 2.0, "convention": "exact", "value": 2436.0, "log10": math.log10(2436.0)},
            {"q": 1.0, "convention": "gbrg24", "value": 1.322474e30, "log10": math.log10(1.322474e30)},
            {"q": 2.0, "convention": "gbrg24", "value": 245.7014, "log10": math.log10(245.7014)},
        ],
    },
    {
        "name": "big",
        "source": "synthetic",
        "dataset": "imagenet",
        "n": 10,
        "train_top1": 0.5,
        "quantiles": {"margin_q0": -0.1, "margin_q1_3": 0.2, "margin_q1_2": 0.4, "margin_q2_3": 0.6, "margin_q1": 1.0},
        "pathnorms": [
            {"q": 1.0, "convention": "exact", "value": None, "log10": 400.5},  # beyond float range
            {"q": 2.0, "convention": "exact", "value": 3.0, "log10": math.log10(3.0)},
            {"q": 1.0, "convention": "gbrg24", "value": 7.0, "log10": math.log10(7.0)},
            {"q": 2.0, "convention": "gbrg24", "value": 8.0, "log10": math.log10(8.0)},
        ],
    },
]


def test_pretrained_table_keeps_conventions_apart():
    table = pn.pretrained_table(SUMMARIES)
    assert list(table["name"]) == ["resnet18", "big"]
    assert list(table.columns) == [
        "name",
        "source",
        "dataset",
        "L1",
        "L2",
        "log10_L1",
        "log10_L2",
        "gbrg24_L1",
        "gbrg24_L2",
        "gbrg24_log10_L1",
        "gbrg24_log10_L2",
    ]
    r18 = table.iloc[0]
    assert r18["L2"] == 2436.0 and r18["gbrg24_L2"] == pytest.approx(245.7014)
    assert r18["L1"] == 1.3297e30 and r18["gbrg24_L1"] == 1.322474e30
    assert r18["log10_L2"] == pytest.approx(math.log10(2436.0))
    big = table.iloc[1]
    assert big["L1"] == math.inf and big["log10_L1"] == 400.5
    md = pn.pretrained_markdown(table)
    assert "1.330e+30" in md and "2.436e+03" in md and "3.162e+400" in md and "2.457e+02" not in md
    md_g = pn.pretrained_markdown(table, "gbrg24")
    assert "1.322e+30" in md_g and "2.457e+02" in md_g and "2.436e+03" not in md_g


def test_margin_and_bound_tables(tmp_path):
    margins = pn.margin_table(SUMMARIES)
    assert list(margins.columns) == ["name", "n", "train_top1", *pn.MARGIN_QUANTILES]
    assert margins.loc[0, "margin_q1_2"] == 3.25 and margins.loc[1, "margin_q0"] == -0.1
    assert margins.loc[0, "n"] == 1268355
    md = pn.margin_markdown(margins)
    assert "78.00" in md and "1,268,355" in md and "-0.100" in md

    rows = [
        {
            "setting": "imagenet",
            "arch": a,
            "D": d,
            "B": 2.640000104904175,
            "K": 9,
            "P": 1,
            "d_in": 150528,
            "d_out": 1000,
            "n": 1268355,
            "bound": b,
            "sharpened": s,
        }
        for a, d, b, s in [
            ("resnet18", 18, 0.08809270689612651, 0.059894063776311394),
            ("resnet152", 152, 0.229363502366329, 0.128570365836841),
        ]
    ]
    bounds = pn.bound_table(rows)
    assert list(bounds.columns) == list(pn.BOUND_COLUMNS) and list(bounds["arch"]) == ["resnet18", "resnet152"]
    md = pn.bound_markdown(bounds)
    assert "0.0881" in md and "0.1286" in md and "150,528" in md and "2.6400" in md
    pn.write_table(bounds, tmp_path / "t2.csv", tmp_path / "t2.md", md)
    assert pd.read_csv(tmp_path / "t2.csv")["D"].tolist() == [18, 152]
    assert (tmp_path / "t2.md").read_text() == md


def test_margin_histograms_and_save_figure(tmp_path):
    rng = np.random.default_rng(0)
    margins = {"resnet18": rng.normal(3, 2, 1000), "resnet50": rng.normal(4, 2, 500).astype(np.float32)}
    fig = pn.margin_histograms(margins, title="margins", train_top1={"resnet18": 0.78})
    ax = fig.axes[0]
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == 2 and all(len(b) == 100 for b in bars)
    assert sum(p.get_height() for p in bars[0]) == 1000
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["resnet18, train top-1 = 78.00%", "resnet50"]
    assert any(list(ln.get_xdata()) == [0.0, 0.0] for ln in ax.lines)  # vertical line at 0
    pdf, png = tmp_path / "fig3.pdf", tmp_path / "fig3.png"
    pn.save_figure(fig, pdf, png)
    assert pdf.stat().st_size > 0 and png.stat().st_size > 0
    assert pdf.read_bytes()[:4] == b"%PDF" and png.read_bytes()[:4] == b"\x89PNG"


def test_sci_from_log10():
    assert pn.sci_from_log10(math.log10(1.322474e30)) == "1.322e+30"
    assert pn.sci_from_log10(math.log10(7.246446e-06)) == "7.246e-06"
    assert pn.sci_from_log10(2.99999999) == "1.000e+03"  # mantissa rounding carries into the exponent
    assert pn.sci_from_log10(float("nan")) == ""


def test_module_does_not_import_torch():
    code = "import sys, sparselab.studies.pathnorm.report; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- the paper's convention and gap (issue 15, 6-7)
# The original (pathnorm_toolkit plot_imp.py / plot_increasing_dataset.py) plots its own path-norm numbers
# (our gbrg24) and gaps from "train/acc1", "train/loss": the running average over the epoch's augmented
# batches in train mode (our train_top1/train_loss): top-1 gap = train top-1 - test top-1 (points),
# CE gap = test loss - train loss.


def test_gaps_record_both_train_measures(imp_runs):
    paths, _ = imp_runs
    last = pn.epoch_summary(pn.load_runs(paths, ("round",)), ("round",))
    r1 = last[last["round"] == 1].iloc[0]
    running = 100 * ((0.3 + 0.04) - (0.2 + 0.08 - 0.01))
    evalmode = 100 * ((0.35 + 0.12 - 0.005) - (0.2 + 0.08 - 0.01))
    assert r1["top1_gap_running_pct"] == pytest.approx(running) and r1["top1_gap_eval_pct"] == pytest.approx(evalmode)
    assert r1["ce_gap_running"] == pytest.approx((2.5 - 0.4 + 0.1) - (2.0 - 0.4))
    assert r1["ce_gap_eval"] == pytest.approx((2.5 - 0.4 + 0.1) - (1.8 - 0.4 + 0.02))
    assert r1["top1_gap_pct"] == pytest.approx(running) and r1["train_top1_pct"] == pytest.approx(100 * 0.34)  # default
    ev = pn.epoch_summary(pn.load_runs(paths, ("round",)), ("round",), gap="eval").iloc[1]
    assert ev["top1_gap_pct"] == pytest.approx(evalmode) and ev["ce_gap"] == pytest.approx(r1["ce_gap_eval"])


def test_imp_frame_plots_the_papers_convention_and_gap_by_default(imp_runs):
    paths, _ = imp_runs
    df = pn.load_runs(paths, ("round",))
    frame, panels = pn.imp_frame(df)
    assert [p.name for p in panels] == [
        "gbrg24_L1",
        "gbrg24_L2",
        "gbrg24_L4",
        "L1",
        "L2",
        "L4",
        "top1_gap_pct",
        "train_top1_pct",
        "test_top1_pct",
    ]
    assert all("gbrg24" in p.ylabel for p in panels[:3]) and all("exact" in p.ylabel for p in panels[3:6])
    row = df[(df["round"] == 2) & (df["epoch"] == 3)].iloc[0]
    at = frame[(frame["round"] == 2) & (frame["epoch"] == 3)].set_index("panel")["value"]
    assert at["gbrg24_L2"] == pytest.approx(10 ** row["gbrg24_log10_L2"])
    assert at["L2"] == pytest.approx(10 ** row["log10_L2"])
    assert at["top1_gap_pct"] == pytest.approx(100 * (row["train_top1"] - row["test_top1"]))
    assert at["train_top1_pct"] == pytest.approx(100 * row["train_top1"])
    assert at["test_top1_pct"] == pytest.approx(100 * row["test_top1"])
    frame_eval, _ = pn.imp_frame(df, gap="eval")
    at = frame_eval[(frame_eval["round"] == 2) & (frame_eval["epoch"] == 3)].set_index("panel")["value"]
    assert at["top1_gap_pct"] == pytest.approx(100 * (row["margin_train_top1"] - row["test_top1"]))
    # runs that logged only the exact convention get only its panels
    exact_only = df.drop(columns=[c for c in df.columns if c.startswith("gbrg24_")])
    assert [p.name for p in pn.imp_frame(exact_only)[1]][:3] == ["L1", "L2", "L4"]


def test_imp_figure_draws_the_papers_convention_above_the_exact_one(imp_runs):
    paths, sparsity = imp_runs
    df = pn.load_runs(paths, ("round",))
    fig = pn.imp_figure(df, sparsity)
    assert len(fig.axes) == 9 + 1  # 3 x 3 panels and the colourbar
    paper, exact, rest = fig.axes[0:3], fig.axes[3:6], fig.axes[6:9]
    assert [ax.get_ylabel() for ax in paper] == [f"L{q} path-norm (gbrg24, as the paper)" for q in (1, 2, 4)]
    assert [ax.get_ylabel() for ax in exact] == [f"L{q} path-norm (exact)" for q in (1, 2, 4)]
    r0 = df[df["round"] == 0]
    assert paper[1].lines[0].get_ydata() == pytest.approx(10.0 ** r0["gbrg24_log10_L2"].to_numpy())
    assert exact[1].lines[0].get_ydata() == pytest.approx(10.0 ** r0["log10_L2"].to_numpy())
    assert rest[0].lines[0].get_ydata() == pytest.approx(100 * (r0["train_top1"] - r0["test_top1"]).to_numpy())
    assert "running" in rest[1].get_ylabel()
    pn.plt.close(fig)


def test_subsets_frame_plots_the_papers_convention_and_gap_by_default(subset_runs):
    df = pn.load_runs(subset_runs, ("fraction", "seed"))
    frame, panels = pn.subsets_frame(df)
    assert [p.name for p in panels] == ["top1_gap_pct", "ce_gap", "gbrg24_L1", "L1"]
    row = df[(df["fraction"] == 0.25) & (df["seed"] == 1) & (df["epoch"] == 2)].iloc[0]
    at = frame[(frame["fraction"] == 0.25) & (frame["seed"] == 1) & (frame["epoch"] == 2)].set_index("panel")["value"]
    assert at["top1_gap_pct"] == pytest.approx(100 * (row["train_top1"] - row["test_top1"]))
    assert at["ce_gap"] == pytest.approx(row["test_loss"] - row["train_loss"])
    assert at["gbrg24_L1"] == pytest.approx(10 ** row["gbrg24_log10_L1"]) and at["L1"] == pytest.approx(
        10 ** row["log10_L1"]
    )
    at = pn.subsets_frame(df, gap="eval")[0]
    at = at[(at["fraction"] == 0.25) & (at["seed"] == 1) & (at["epoch"] == 2)].set_index("panel")["value"]
    assert at["ce_gap"] == pytest.approx(row["test_loss"] - row["margin_train_loss"])

    fig = pn.subsets_figure(df)
    assert len(fig.axes) == 4 and fig.axes[2].get_ylabel() == "L1 path-norm (gbrg24, as the paper)"
    pn.plt.close(fig)


def test_artefacts_follow_the_gap_option(imp_runs, subset_runs, tmp_path):
    from sparselab.studies.pathnorm.artefacts import write_imp_figure, write_subsets_figure

    paths, sparsity = imp_runs
    runs = [[r, 0, str(p)] for r, p in paths.items()]
    for gap, col in (("running", "train_top1"), ("eval", "margin_train_top1")):
        out = tmp_path / gap
        out.mkdir()
        write_imp_figure(runs, sparsity, out / "f4.csv", out / "f4.pdf", out / "f4.png", gap=gap)
        summary = pd.read_csv(out / "f4.csv")
        last = pd.read_csv(paths[1]).iloc[-1]
        assert summary.loc[1, "top1_gap_pct"] == pytest.approx(100 * (last[col] - last["test_top1"]))
        write_subsets_figure(
            [[f, s, str(p)] for (f, s), p in subset_runs.items()],
            out / "f5.csv",
            out / "f5.pdf",
            out / "f5.png",
            gap=gap,
        )
        assert {"top1_gap_running_pct", "top1_gap_eval_pct"} <= set(pd.read_csv(out / "f5.csv").columns)
