"""What a reader needs from every study's figures and Markdown tables (issue 17, item 5): the dense
baseline named in each legend where it is drawn, every method visible in the DST layer-density
figure, log axes with at least two labelled ticks, one unit per quantity with the unit in the
header, and the gradient-flow table saying what its target and compression mean."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from sparselab.report import figures  # noqa: E402
from sparselab.studies.dst import report as dst  # noqa: E402
from sparselab.studies.gradflow import report as gradflow  # noqa: E402
from sparselab.studies.oneshot import figure as oneshot_figure  # noqa: E402
from sparselab.studies.oneshot import report as tables
from sparselab.studies.pathnorm import report as pn  # noqa: E402


def labelled_ticks(ax: plt.Axes, axis: str) -> list[str]:
    """The tick labels a reader sees on ``axis`` (major and minor, inside the limits, non-empty)."""
    ax.figure.canvas.draw()
    target = ax.xaxis if axis == "x" else ax.yaxis
    lo, hi = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    ticks = [*target.get_major_ticks(), *target.get_minor_ticks()]
    return [
        t.label1.get_text() for t in ticks if t.label1.get_visible() and t.label1.get_text() and lo <= t.get_loc() <= hi
    ]


def legend_labels(legend) -> list[str]:  # type: ignore[no-untyped-def]
    return [t.get_text() for t in legend.get_texts()]


@pytest.mark.parametrize(
    "lo, hi", [(2.6e3, 5.5e4), (6.5, 30.0), (0.24, 0.5), (1e15, 1e18), (3.3e-3, 3.77e-3), (3e3, 6e3)]
)
@pytest.mark.parametrize("labels", ["compact", "scientific"])
def test_a_log_axis_has_at_least_two_labelled_ticks(lo, hi, labels) -> None:  # type: ignore[no-untyped-def]
    fig, ax = plt.subplots()
    ax.plot([lo, hi], [lo, hi])
    figures.log_axis(ax, "y", formatter=figures.compact_number if labels == "compact" else None)
    assert ax.get_yscale() == "log" and len(labelled_ticks(ax, "y")) >= 2, labelled_ticks(ax, "y")
    plt.close(fig)


def dst_records() -> pd.DataFrame:
    rows = []
    for method, params in (
        ("dense", 51020),
        ("static", 5840),
        ("set", 5840),
        ("deepr", 5840),
        ("dsr", 5840),
        ("static", 3330),
    ):
        for seed in (0, 1):
            sparsity = 0.0 if method == "dense" else (0.95 if params == 3330 else 0.9)
            rows.append(
                {
                    "dataset": "digits",
                    "model": "lenet_bn",
                    "method": method,
                    "sparsity": sparsity,
                    "seed": seed,
                    "test_top1": 0.9 + 0.01 * seed,
                    "learnable_parameters": params,
                }
            )
    return pd.DataFrame(rows)


def dst_densities() -> pd.DataFrame:
    rows = []
    for method in ("static", "set", "deepr", "dsr"):  # static, SET and DeepR: identical densities
        for seed in (0, 1):
            for i, layer in enumerate(("1.weight", "4.weight", "7.weight")):
                density = 0.1 + (0.02 * (i - 1) if method == "dsr" else 0.0)
                rows.append(
                    {
                        "dataset": "digits",
                        "model": "lenet_bn",
                        "method": method,
                        "sparsity": 0.9,
                        "seed": seed,
                        "layer": layer,
                        "layer_index": i,
                        "density": density,
                    }
                )
    return pd.DataFrame(rows)


def test_dst_accuracy_vs_parameters_labels_its_log_axis_and_names_dense() -> None:
    grid = dst.accuracy_vs_parameters(dst_records())
    ax = grid.axes.flat[0]
    assert ax.get_xscale() == "log" and len(labelled_ticks(ax, "x")) >= 2
    assert "dense" in legend_labels(grid.legend)
    plt.close(grid.figure)


def test_dst_layer_density_names_the_layers_and_shows_every_method_even_when_equal() -> None:
    fig = dst.layer_density_figure(dst_densities())
    ax = fig.axes[0]
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1.weight", "4.weight", "7.weight"]
    assert {"static", "set", "deepr", "dsr"} <= set(legend_labels(fig.legends[0]))
    bars = [p for p in ax.patches if p.get_height() > 0]
    assert len(bars) == 3 * 4  # a bar per layer and method: methods with equal densities sit side by side
    lefts = sorted(round(p.get_x(), 6) for p in bars)
    assert len(set(lefts)) == len(lefts)  # none hidden behind another
    assert "%" in ax.get_ylabel()
    plt.close(fig)


def test_dst_table_states_sparsity_in_percent_in_its_header() -> None:
    md = dst.accuracy_table_markdown(dst.accuracy_table(dst_records()))
    header = md.splitlines()[0]
    assert "sparsity (%)" in header and "test top-1 (%)" in header
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines()[2:] if line.startswith("|")]
    assert {row[3] for row in cells} == {"—", "90", "95"}


def oneshot_records() -> pd.DataFrame:
    rows = [
        {
            "dataset": "digits",
            "model": "lenet",
            "scope": "dense",
            "sparsity": 0.0,
            "seed": s,
            "test_top1": 0.98,
            "start_test_top1": np.nan,
            "weight_sparsity": 0.0,
            "params_nonzero": 1000,
            "params_total": 1000,
        }
        for s in (0, 1)
    ]
    for scope in ("layerwise", "global"):
        for sparsity in (0.5, 0.9):
            for s in (0, 1):
                rows.append(
                    {
                        "dataset": "digits",
                        "model": "lenet",
                        "scope": scope,
                        "sparsity": sparsity,
                        "seed": s,
                        "test_top1": 0.95,
                        "start_test_top1": 0.9,
                        "weight_sparsity": sparsity,
                        "params_nonzero": 1000 * (1 - sparsity),
                        "params_total": 1000,
                    }
                )
    return pd.DataFrame(rows)


def test_oneshot_figure_puts_the_dense_line_in_its_legend_and_sparsity_in_percent() -> None:
    grid = oneshot_figure.accuracy_figure(oneshot_records())
    assert "dense" in legend_labels(grid.legend)
    ax = grid.axes.flat[0]
    assert "%" in ax.get_xlabel() and max(ax.get_xlim()) > 50
    plt.close(grid.figure)


def test_oneshot_figure_names_nm_runs_by_their_pattern() -> None:
    records = oneshot_records()
    nm = records[records["scope"] == "global"].assign(scope="nm_srste", nm="2:4")
    records = pd.concat([records, nm.assign(scope="nm_oneshot")[nm["sparsity"] == 0.5], nm[nm["sparsity"] == 0.5]])
    grid = oneshot_figure.accuracy_figure(records)
    labels = legend_labels(grid.legend)
    assert {"2:4 one-shot", "2:4 SR-STE", "layerwise", "global"} <= set(labels) and "nm_srste" not in labels
    plt.close(grid.figure)


def test_oneshot_table_gives_its_units_in_the_headers() -> None:
    md = tables.to_markdown(tables.accuracy_vs_sparsity(oneshot_records()))
    header = md.splitlines()[0]
    assert (
        "target sparsity (%)" in header and "weight sparsity (%)" in header and "top-1 after finetuning (%)" in header
    )
    assert "| 0.9 " not in md and "90.00" in md


def gradflow_inputs() -> tuple[pd.DataFrame, pd.DataFrame]:
    records, rounds = [], []
    for measure in ("dense", "mag_based", "grasp"):
        for seed in (0, 1):
            target = 0.0 if measure == "dense" else 0.5
            params = 1000 if measure == "dense" else 300
            records.append(
                {
                    "dataset": "digits",
                    "model": "resnet",
                    "measure": measure,
                    "target": target,
                    "seed": seed,
                    "test_top1": 0.97,
                    "params_alive": params,
                    "flops_alive": 2e6,
                    "compression": 1000 / params,
                    "theoretical_speedup": 1.0 if measure == "dense" else 2.5,
                    # dense rows are the latency reference: nothing measured there
                    "latency_b64_pruned_ms": np.nan if measure == "dense" else 4.0,
                    "latency_b64_dense_ms": np.nan if measure == "dense" else 8.0,
                    "latency_b64_speedup": np.nan if measure == "dense" else 2.0,
                    "latency_b1_speedup": np.nan if measure == "dense" else 1.5,
                }
            )
            if measure != "dense":
                for r in (1, 2):
                    rounds.append(
                        {
                            "dataset": "digits",
                            "model": "resnet",
                            "measure": measure,
                            "target": target,
                            "seed": seed,
                            "round": r,
                            "test_top1_before": 0.8 + 0.05 * r,
                            "test_top1_after": 0.6 + 0.1 * r,
                            "kendall_tau_magnitude": 0.3,
                        }
                    )
    return pd.DataFrame(records), pd.DataFrame(rounds)


def test_gradflow_rounds_figure_is_in_percent_and_names_the_dense_baseline(tmp_path) -> None:  # type: ignore[no-untyped-def]
    records, rounds = gradflow_inputs()
    (tmp_path / "records.csv").write_text(records.to_csv(index=False))
    paths = {}
    for key, sub in rounds.groupby(list(gradflow.KEYS)):
        path = tmp_path / f"{'_'.join(map(str, key))}.csv"
        sub.drop(columns=list(gradflow.KEYS)).to_csv(path, index=False)
        paths[key] = path
    captured = {}
    original = gradflow.rounds_figure

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        grid = original(*args, **kwargs)
        captured.setdefault("rounds", grid)
        return grid

    gradflow.rounds_figure = spy
    try:
        out = {k: tmp_path / k for k in ("t.csv", "t.md", "r.pdf", "r.png", "k.pdf", "k.png")}
        gradflow.write_report(
            tmp_path / "records.csv",
            paths,
            table_csv=out["t.csv"],
            table_md=out["t.md"],
            rounds_pdf=out["r.pdf"],
            rounds_png=out["r.png"],
            kendall_pdf=out["k.pdf"],
            kendall_png=out["k.png"],
        )
    finally:
        gradflow.rounds_figure = original
    grid = captured["rounds"]
    ax = grid.axes.flat[0]
    assert "(%)" in ax.get_ylabel()
    ys = np.concatenate([line.get_ydata() for line in ax.get_lines() if len(line.get_ydata())])
    assert ys.max() > 50 and ys.max() <= 100  # percent, as the tables, not fractions
    labels = legend_labels(grid.legend)
    assert any(label.startswith("dense") for label in labels) and "right after pruning" in labels


def test_gradflow_table_explains_target_next_to_compression() -> None:
    records, _ = gradflow_inputs()
    md = gradflow.final_table_markdown(gradflow.final_table(records))
    header = md.splitlines()[0]
    assert "filters pruned (%)" in header and "compression (×)" in header and "dense / alive params" in header
    assert "*target*" in md and "*compression*" in md
    assert "theoretical speed-up (×)" in header and "2.50 ± 0.00" in md  # the pruned rows
    assert "measured speed-up b64 (×)" in header and "2.00 ± 0.00" in md and "1.50 ± 0.00" in md


def test_imp_figure_names_round_zero_as_the_dense_model() -> None:
    assert pn._round_label(0, {0: 0.0, 1: 0.2}) == "0 (dense)" and pn._round_label(1, {0: 0.0, 1: 0.2}) == "1 (20.0%)"
