"""What each transfer upstream costs (sparselab.studies.transfer.upstreams) against closed forms, and
the report's upstream table (order, labels, Markdown)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from sparselab.models.checkpoint import save_checkpoint
from sparselab.models.spec import ArchSpec
from sparselab.sparsity.mask import Mask
from sparselab.studies.transfer import report as tr
from sparselab.studies.transfer.upstreams import UPSTREAM_COLUMNS, upstream_cost, write_upstreams

LENET = ArchSpec("lenet300_100", 10, (1, 8, 8), {"hidden": [4, 3]})
# Flatten, Linear(64, 4), ReLU, Linear(4, 3), ReLU, Linear(3, 10): weights 256 + 12 + 30, biases 4 + 3 + 10
PARAMS = 256 + 12 + 30 + 4 + 3 + 10
FLOPS = 2 * (64 * 4 + 4 * 3 + 3 * 10)  # a multiply-add counts 2; batch 1


def _save(path: Path, spec: ArchSpec, zeros: dict[str, int] | None) -> Path:
    torch.manual_seed(0)
    model = spec.build()
    mask = None
    if zeros is not None:
        params = dict(model.named_parameters())
        tensors = {}
        for name, k in zeros.items():
            m = torch.ones(params[name].numel(), dtype=torch.bool)
            m[:k] = False
            tensors[name] = m.view(params[name].shape)
        mask = Mask(tensors)
        mask.apply_(model)
    save_checkpoint(path, model, spec, mask=mask)
    return path


def test_a_dense_upstream_costs_its_full_count_and_speeds_nothing_up(tmp_path: Path) -> None:
    cost = upstream_cost(_save(tmp_path / "dense.safetensors", LENET, None))
    assert (cost["params"], cost["params_alive"], cost["flops"], cost["flops_sparse"]) == (PARAMS, PARAMS, FLOPS, FLOPS)
    assert cost["theoretical_speedup"] == 1.0 and cost["measured_sparsity"] == 0.0 and cost["input_shape"] == "1x8x8"


def test_masked_linear_weights_are_left_out_once_each(tmp_path: Path) -> None:
    cost = upstream_cost(_save(tmp_path / "s.safetensors", LENET, {"1.weight": 200, "3.weight": 6, "5.weight": 5}))
    assert cost["params"] == PARAMS and cost["params_alive"] == PARAMS - 211
    assert cost["flops"] == FLOPS and cost["flops_sparse"] == FLOPS - 2 * 211
    assert cost["theoretical_speedup"] == pytest.approx(FLOPS / (FLOPS - 422))
    assert cost["measured_sparsity"] == pytest.approx(206 / 268)  # the classifier (5.weight) left out


def test_masked_conv_weights_are_left_out_at_every_output_position(tmp_path: Path) -> None:
    spec = ArchSpec("cifar_resnet20", 10, (3, 8, 8), {"width": 4})
    dense = upstream_cost(_save(tmp_path / "d.safetensors", spec, None))
    cost = upstream_cost(_save(tmp_path / "c.safetensors", spec, {"conv1.weight": 7}))
    assert cost["flops"] == dense["flops"] and cost["flops_sparse"] == dense["flops"] - 2 * 7 * 8 * 8
    assert cost["params_alive"] == dense["params"] - 7


def test_the_upstreams_csv_has_a_row_per_upstream_in_the_plans_order(tmp_path: Path) -> None:
    dense = _save(tmp_path / "dense.safetensors", LENET, None)
    sparse = _save(tmp_path / "rigl.safetensors", LENET, {"1.weight": 128})
    keys = {"upstream_dataset": "digits", "model": "lenet"}
    rows = [
        ({**keys, "upstream": "rigl_erk", "sparsity": 0.5}, str(sparse)),
        ({**keys, "upstream": "dense", "sparsity": 0.0}, str(dense)),
    ]
    frame = write_upstreams(rows, tmp_path / "upstreams.csv")
    assert list(frame.columns) == list(UPSTREAM_COLUMNS) and list(frame["upstream"]) == ["rigl_erk", "dense"]
    assert list(pd.read_csv(tmp_path / "upstreams.csv")["params_alive"]) == [PARAMS - 128, PARAMS]


def _upstreams() -> pd.DataFrame:
    rows = []
    for up, s in [("imp", 0.488), ("rigl_erk", 0.9), ("acdc", 0.9), ("dense", 0.0), ("gmp", 0.8), ("acdc", 0.8)]:
        alive = round(1000 * (1 - s))
        rows.append(
            {
                "upstream_dataset": "digits",
                "model": "resnet20",
                "upstream": up,
                "sparsity": s,
                "measured_sparsity": s,
                "params": 1000,
                "params_alive": alive,
                "flops": 4_110_000,
                "flops_sparse": 4_110_000 - 4000 * (1000 - alive),
                "theoretical_speedup": 4_110_000 / (4_110_000 - 4000 * (1000 - alive)),
                "input_shape": "1x8x8",
                "checkpoint": f"{up}.safetensors",
            }
        )
    return pd.DataFrame(rows)


def test_the_upstream_table_orders_dense_gmp_acdc_rigl_then_checkpoints() -> None:
    table = tr.upstream_table(_upstreams())
    assert list(table["label"]) == ["dense", "gmp 80%", "acdc 80%", "acdc 90%", "rigl_erk 90%", "imp 48.8%"]
    assert list(table.columns) == tr.UPSTREAM_TABLE_COLUMNS
    md = tr.upstream_table_markdown(table, "T")
    assert md.startswith("# T\n") and "## resnet20 (upstream: digits)" in md
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines() if line.startswith("| ")]
    assert rows[0] == ["upstream", "sparsity (%)", "params", "alive", "FLOPs", "sparse FLOPs", "speed-up"]
    # 100 alive of 1000, 4.11M FLOPs less 3.6M: 510k left, 8.06x
    assert ["rigl_erk 90%", "90.0", "1k", "100", "4.11M", "510k", "8.06×"] in rows
    assert "No upstreams." in tr.upstream_table_markdown(tr.upstream_table(_upstreams().iloc[:0]))


def test_the_report_writes_the_upstream_table_only_from_upstreams_csv(tmp_path: Path) -> None:
    records = pd.DataFrame(
        [
            {
                "upstream_dataset": "digits",
                "model": "resnet20",
                "upstream": "dense",
                "sparsity": 0.0,
                "measured_sparsity": 0.0,
                "mode": "linear",
                "dataset": "loops",
                "seed": 0,
                "top1": 0.9,
                "mean_per_class": 0.9,
            }
        ]
    )
    records.to_csv(tmp_path / "records.csv", index=False)
    _upstreams().to_csv(tmp_path / "upstreams.csv", index=False)
    out = {"upstream_table": tmp_path / "t.csv", "upstream_table_md": tmp_path / "t.md"}
    with pytest.raises(ValueError, match="needs upstreams_csv"):
        tr.write_report(tmp_path / "records.csv", out)
    frames = tr.write_report(tmp_path / "records.csv", out, "", tmp_path / "upstreams.csv")
    assert len(frames["upstreams"]) == 6 and pd.read_csv(out["upstream_table"])["label"].iloc[0] == "dense"
    assert "theoretical speed-up" in out["upstream_table_md"].read_text()
