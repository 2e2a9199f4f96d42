"""The dynamic sparse training study runs (sparselab.studies.dst): every method trains, keeps its
sparsity and reloads through the checkpoint format; gradual pruning reaches its target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import expected_parents, sidecar_parents

from sparselab.config import ComputeHparams, DataHparams, ModelHparams, TrainHparams
from sparselab.config.bundles import GrowthHparams, SnfsHparams
from sparselab.dst.densities import layer_densities_for, sparsities
from sparselab.dst.gmp import GradualSpec
from sparselab.dst.layers import active_count
from sparselab.models import build_model
from sparselab.models.checkpoint import load_checkpoint
from sparselab.studies.dst.gradual import run_gradual_pruning
from sparselab.studies.dst.options import DeepRHparams, DstOptions
from sparselab.studies.dst.sparse import METHODS, DSTSpec, run_configured, run_sparse_training, spec_from_options
from sparselab.train.run import RunFiles, run_training

DATA = DataHparams(source="digits", val_fraction=0.0)
MODEL = ModelHparams("lenet300_100", {"hidden": [64, 32], "batch_norm": True})
RECIPE = TrainHparams.from_dict(
    {
        "epochs": 2,
        "batch_size": 100,
        "optimizer": {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4},
        "schedule": {"kind": "constant"},
    }
)
COMPUTE = ComputeHparams(device="cpu", progress="lines")
SIZES = {"1.weight": 64 * 64, "4.weight": 64 * 32, "7.weight": 32 * 10}
DENSE_FLOPS = 2 * sum(SIZES.values())  # batch 1: 2 per weight of each Linear (BatchNorm is not counted)


def initial_counts(kind: str, sparsity: float = 0.9) -> dict[str, int]:
    """Active entries per sparse tensor of RigL/SNFS's initial masks (ERK or uniform; dense ones in full)."""
    net = build_model(MODEL.arch, 10, (1, 8, 8), **MODEL.kwargs)
    per = sparsities(layer_densities_for(net, list(SIZES), 1 - sparsity, kind))  # type: ignore[arg-type]
    return {n: active_count(k, per[n]) if per[n] > 0 else k for n, k in SIZES.items()}


def spec(method: str) -> DSTSpec:
    options = DstOptions(
        period={0: 4},
        np_target=30,
        set_fraction={0.9: 0.1},
        deepr=DeepRHparams(temperature={0: 1e-5}),
        rigl=GrowthHparams(delta_t=4),
        snfs=SnfsHparams(delta_t=4),
    )
    return spec_from_options(method, 0.9, options)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_keeps_its_sparsity_and_reloads(method: str, tmp_path: Path) -> None:
    files = RunFiles.in_directory(tmp_path)
    result = run_sparse_training(
        files,
        tmp_path / "summary.json",
        data=DATA,
        model=MODEL,
        recipe=RECIPE,
        spec=spec(method),
        seed=0,
        compute=COMPUTE,
    )
    assert sidecar_parents(files.checkpoint) == []  # sparse training from scratch: a root
    ckpt = load_checkpoint(files.checkpoint)
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(ckpt.model.eval()(x), result.model.cpu().eval()(x), atol=1e-6)
    summary = json.loads((tmp_path / "summary.json").read_text())
    dense_total = 64 * 64 + 64 * 32 + 32 * 10 + 2 * (64 + 32 + 10)
    assert summary["dense_parameters"] == dense_total
    assert summary["flops_dense"] == DENSE_FLOPS
    if method == "dense":
        assert ckpt.mask is None and summary["learnable_parameters"] == dense_total
        assert summary["flops"] == summary["flops_sparse"] == DENSE_FLOPS and summary["theoretical_speedup"] == 1.0
    elif method == "tied":
        assert ckpt.mask is None and ckpt.spec.tied is not None
        banks = sum(max(1, round(0.1 * n)) for n in SIZES.values())
        assert summary["learnable_parameters"] == banks + 2 * (64 + 32 + 10)
        assert summary["flops_sparse"] == DENSE_FLOPS and summary["theoretical_speedup"] == 1.0  # all computed
    else:
        active = sum(int(ckpt.mask[n].sum()) for n in ckpt.mask)
        if method in ("rigl", "snfs"):  # conserved from their own initial masks (ERK / uniform)
            counts = initial_counts("erk" if method == "rigl" else "uniform")
            dense_here = [n for n in SIZES if n not in ckpt.mask]
            active += sum(SIZES[n] for n in dense_here)
            assert active == sum(counts.values()) and summary["dropped_total"] > 0
            assert summary["initial_layer_density"] == pytest.approx({n: counts[n] / k for n, k in SIZES.items()})
            assert list(summary["layer_density"]) == list(SIZES)  # every sparse tensor, dense ones at 1
            if method == "rigl":  # per tensor too
                assert summary["layer_density"] == summary["initial_layer_density"]
        else:
            assert active == sum(active_count(n, 0.9) for n in SIZES.values())  # conserved, total and for static
            assert "dropped_total" not in summary and "initial_layer_density" not in summary
        # ShrinkBench's closed form: each active weight costs 2 FLOPs at batch 1
        assert summary["flops"] == DENSE_FLOPS and summary["flops_sparse"] == 2 * active
        assert summary["theoretical_speedup"] == pytest.approx(DENSE_FLOPS / (2 * active))
        assert summary["learnable_parameters"] == dense_total - sum(SIZES.values()) + active
        assert summary["sparse_tensor_density"] == pytest.approx(active / sum(SIZES.values()))
        params = dict(ckpt.model.named_parameters())
        assert all((params[n][~ckpt.mask[n]] == 0).all() for n in ckpt.mask)
        if method == "set":  # per layer too
            assert {n: int(ckpt.mask[n].sum()) for n in ckpt.mask} == {
                n: active_count(k, 0.9) for n, k in SIZES.items()
            }


def test_gradual_pruning_of_a_dense_checkpoint_reaches_its_target(tmp_path: Path) -> None:
    dense = RunFiles.in_directory(tmp_path / "dense")
    run_training(dense, data=DATA, model=MODEL, recipe=RECIPE, seed=0, compute=COMPUTE)
    files = RunFiles.in_directory(tmp_path / "gradual")
    recipe = TrainHparams.from_dict({**RECIPE.to_dict(), "epochs": 5})
    g = GradualSpec(target=0.8, start=0, freq=1, iterations=4, schedule="cubic")
    run_gradual_pruning(
        files,
        tmp_path / "summary.json",
        dense=dense.checkpoint,
        data=DATA,
        recipe=recipe,
        spec=g,
        seed=0,
        compute=COMPUTE,
    )
    ckpt = load_checkpoint(files.checkpoint)
    for n, k in SIZES.items():
        sparsity = 1 - int(ckpt.mask[n].sum()) / k
        assert 0.8 <= sparsity < 0.8 + 4 / k + 1e-9, (n, sparsity)  # the +1 per event can overshoot by a few
    history = (files.metrics_csv).read_text().splitlines()
    assert len(history) == 1 + 6  # epoch 0 (before pruning) and 5 epochs
    assert sidecar_parents(dense.checkpoint) == []
    assert sidecar_parents(files.checkpoint) == expected_parents(("dense", dense.checkpoint))


def test_gradual_pruning_by_one_global_threshold_reaches_the_total_target(tmp_path: Path) -> None:
    dense = RunFiles.in_directory(tmp_path / "dense")
    run_training(dense, data=DATA, model=MODEL, recipe=RECIPE, seed=0, compute=COMPUTE)
    files = RunFiles.in_directory(tmp_path / "gradual")
    recipe = TrainHparams.from_dict({**RECIPE.to_dict(), "epochs": 4})
    g = GradualSpec(target=0.8, start=0, freq=1, iterations=3, schedule="exponential", by="threshold")
    run_gradual_pruning(
        files,
        tmp_path / "summary.json",
        dense=dense.checkpoint,
        data=DATA,
        recipe=recipe,
        spec=g,
        seed=0,
        compute=COMPUTE,
    )
    ckpt = load_checkpoint(files.checkpoint)
    active = sum(int(ckpt.mask[n].sum()) for n in SIZES)
    assert active == round(0.2 * sum(SIZES.values()))  # the total is exact; layers differ (one threshold)
    densities = [int(ckpt.mask[n].sum()) / k for n, k in SIZES.items()]
    assert max(densities) - min(densities) > 0.01


def test_the_dsr_regrowth_option_reaches_the_callback() -> None:
    from sparselab.studies.dst.sparse import _callback

    spec = spec_from_options("dsr", 0.9, DstOptions(dsr_regrowth="per_layer"))
    masks = {"w": torch.ones(4, dtype=torch.bool)}
    assert spec.dsr_regrowth == "per_layer" and _callback(spec, masks, 0).regrowth == "per_layer"
    assert spec_from_options("dsr", 0.9, DstOptions()).dsr_regrowth == "proportional"


@pytest.mark.parametrize("method", ["rigl", "snfs"])
def test_rigl_and_snfs_run_configured_from_their_blocks_with_erk_dense_layers_counted(
    method: str, tmp_path: Path
) -> None:
    """Through the job's entry point at sparsity 0.5: ERK makes the 32x10 output layer dense
    (eps * (32 + 10) / 320 > 1), so it gets no mask but counts at density 1 in the summary; the
    active count is conserved; hparams.json records the block only for these methods."""
    block = {"delta_t": 3, "densities": "erk"}
    options = DstOptions.from_dict({method: block})
    files = RunFiles.in_directory(tmp_path / method)
    common = dict(options=options, data=DATA, model=MODEL, recipe=RECIPE, seed=0, compute=COMPUTE)
    result = run_configured(files, tmp_path / "summary.json", method=method, sparsity=0.5, **common)  # type: ignore[arg-type]
    summary = json.loads((tmp_path / "summary.json").read_text())
    counts = initial_counts("erk", 0.5)
    assert result.mask is not None and "7.weight" not in result.mask and counts["7.weight"] == SIZES["7.weight"]
    assert summary["initial_layer_density"]["7.weight"] == summary["layer_density"]["7.weight"] == 1.0
    active = sum(int(result.mask[n].sum()) for n in result.mask) + SIZES["7.weight"]
    assert active == sum(counts.values()) and summary["dropped_total"] == result.history[-1]["dropped_total"] > 0
    assert summary["flops_sparse"] == 2 * active and summary["theoretical_speedup"] == pytest.approx(
        DENSE_FLOPS / (2 * active)
    )
    record = json.loads(files.hparams_json.read_text())["dst"]
    assert record["method"] == method and record["growth"]["delta_t"] == 3 and record["growth"]["densities"] == "erk"
    dsr = RunFiles.in_directory(tmp_path / "dsr")
    run_configured(dsr, tmp_path / "dsr.json", method="dsr", sparsity=0.5, **common)  # type: ignore[arg-type]
    assert "growth" not in json.loads(dsr.hparams_json.read_text())["dst"]  # the other methods' records as before


def test_thin_dense_speedup_is_over_the_full_width_network(tmp_path: Path) -> None:
    summary_json = tmp_path / "summary.json"
    run_configured(
        RunFiles.in_directory(tmp_path),
        summary_json,
        method="thin_dense",
        sparsity=0.9,
        options=DstOptions(),
        data=DATA,
        model=MODEL,
        recipe=RECIPE,
        seed=0,
        compute=COMPUTE,
    )
    summary = json.loads(summary_json.read_text())
    thin = load_checkpoint(tmp_path / "model.safetensors").model
    weights = sum(m.weight.numel() for m in thin.modules() if isinstance(m, torch.nn.Linear))
    assert summary["flops"] == summary["flops_sparse"] == 2 * weights < DENSE_FLOPS == summary["flops_dense"]
    assert summary["theoretical_speedup"] == pytest.approx(DENSE_FLOPS / (2 * weights))
