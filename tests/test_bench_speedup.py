"""bench/speedup.py in quick mode prints one row per model and pruning (dense references,
narrowed filters, unstructured masks), theoretical speed-ups that follow from the FLOPs, measured
ones that are ratios of the paired latencies, and, without a CUDA GPU, one line saying that the
2:4 rows need one (no timing thresholds: the numbers are checked for consistency, not speed)."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
from conftest import REPO

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest


def _bench():
    spec = importlib.util.spec_from_file_location("bench_speedup", REPO / "bench" / "speedup.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_speedup"] = module
    spec.loader.exec_module(module)
    return module


def test_a_quick_run_prints_every_row_and_the_table(capsys) -> None:
    bench = _bench()
    assert bench.main(["--quick", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    rows = {(r.model, r.pruning): r for r in bench.ROWS}
    assert list(rows) == [
        ("ResNet-20", "dense"),
        ("ResNet-20", "filters 50% removed"),
        ("ResNet-20", "unstructured 50% (dense kernels)"),
        ("ResNet-20", "unstructured 90% (dense kernels)"),
        ("VGG-13", "dense"),
        ("VGG-13", "filters 50% removed"),
        ("VGG-13", "unstructured 50% (dense kernels)"),
        ("VGG-13", "unstructured 90% (dense kernels)"),
    ]
    for model in ("ResNet-20", "VGG-13"):
        dense = rows[model, "dense"]
        assert dense.theoretical == 1.0 and dense.measured is None
        for pruning in ("filters 50% removed", "unstructured 50% (dense kernels)", "unstructured 90% (dense kernels)"):
            r = rows[model, pruning]
            assert r.params < dense.params and r.flops < dense.flops
            assert r.theoretical == pytest.approx(dense.flops / r.flops)
            assert r.batch == 8 and r.device == "cpu" and r.dense_ms > 0 and r.pruned_ms > 0 and r.measured > 0
        # unstructured: every masked conv/Linear weight skipped in the theoretical count
        assert rows[model, "unstructured 90% (dense kernels)"].theoretical == pytest.approx(10.0, rel=0.05)
        assert rows[model, "unstructured 50% (dense kernels)"].theoretical == pytest.approx(2.0, rel=0.05)
    assert "| ResNet-20 | filters 50% removed | cpu | float32 | 8 |" in out
    assert out.count("\n| ") == 1 + len(bench.ROWS)  # header + rows (the separator starts with "|---")
    if not torch.cuda.is_available():
        assert "2:4: not measured: these rows need a CUDA GPU" in out


def test_cuda_is_refused_where_there_is_none(capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert _bench().main(["--quick", "--device", "cuda"]) == 2
    assert "no CUDA device here" in capsys.readouterr().out
