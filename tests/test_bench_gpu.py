"""bench/gpu.py stays runnable without a GPU: it refuses to measure on CPU unless asked for a smoke
run, and a smoke run of its cheapest part prints its row and the summary table."""

from __future__ import annotations

import importlib.util
import sys

from conftest import REPO


def _bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", REPO / "bench" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = module
    spec.loader.exec_module(module)
    return module


def test_without_cuda_it_measures_nothing_unless_asked_for_a_smoke_run(capsys) -> None:
    bench = _bench()
    assert bench.main(["--device", "cpu", "--parts", "pathnorm"]) == 2
    assert "no CUDA device here" in capsys.readouterr().out


def test_a_smoke_run_prints_its_rows_and_the_table(capsys) -> None:
    bench = _bench()
    bench.ROWS.clear()
    assert bench.main(["--device", "cpu", "--smoke", "--parts", "pathnorm"]) == 0
    out = capsys.readouterr().out
    assert "| pathnorm | ResNet-50 path-norms on cpu" in out
    assert [r.part for r in bench.ROWS] == ["pathnorm"]
