"""One compute path (issue 16, point 7): every job moves models and batches through
``sparselab.compute`` and honours ``compute`` (device, determinism, bf16 autocast, channels_last).

The CUDA-only speed-ups are switched on here on CPU (bf16 autocast and channels_last both run
there), so a job that sets its device up by hand shows on any machine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from conftest import REPO

from sparselab import compute
from sparselab.config import ComputeHparams, DataHparams
from sparselab.models.checkpoint import save_checkpoint
from sparselab.models.spec import ArchSpec

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny models

LIB = REPO / "lib" / "sparselab"
# Hand-made device set-ups: choosing a device, switching determinism, moving a model or batch.
# (``.to(device=t.device)`` and the like follow a tensor's own device: not a set-up.)
SETUP = re.compile(
    r"select_device\(|configure_determinism\(|uses_cuda_features\(|prepare_model\(|\.cuda\(|"
    r"\.to\(device\s*[,)]|torch\.device\("
)
# Low-level helpers that follow a device they are given (or their model's), never choose one.
ALLOWED = {
    "compute.py": "the one place that chooses devices and moves models and batches",
    "train/distributed.py": "this process's CUDA device under data parallelism (passed to compute.place)",
    "models/checkpoint.py": "loads a checkpoint's model where the caller asks (map_location)",
    "metrics/classification.py": "evaluates on the device its caller's Placement gives",
    "metrics/margin_stats.py": "margins on the device its caller gives, else the model's",
    "metrics/pathnorm.py": "the walk runs on the model's own device",
    "metrics/complexity.py": "counts FLOPs with a zero input on the model's own device",
    "structured/dependency.py": "traces shapes with a zero input on the model's own device",
    "structured/measures.py": "scores on the model's own device (exact: no autocast)",
    "sparsity/mask.py": "Mask.to_device: masks follow their model",
    "data/loaders.py": "in-memory datasets batched on the device its caller's Placement gives (loader_options)",
    "data/tensor_images.py": "images held on the device the loader asks for",
    "data/device_decode.py": "decodes image bytes on the device its caller (the engine's Placement) gives",
    "train/prefetch.py": "copies batches to the device its caller (the engine's Placement) gives",
    "models/semi_structured.py": "asks which 2:4 kernels the model's own device offers; converts in place, never moves",
}


def test_no_job_sets_a_device_up_by_hand() -> None:
    found = []
    for path in sorted(LIB.rglob("*.py")):
        rel = path.relative_to(LIB).as_posix()
        if rel in ALLOWED:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if SETUP.search(code):
                found.append(f"{rel}:{number}: {line.strip()}")
    assert not found, "set up through sparselab.compute (place / Placement) instead:\n" + "\n".join(found)


def test_the_allowed_helpers_exist() -> None:
    assert all((LIB / rel).exists() for rel in ALLOWED), [rel for rel in ALLOWED if not (LIB / rel).exists()]


def test_place_sets_determinism_and_keeps_the_cuda_speedups_off_on_cpu() -> None:
    before = torch.are_deterministic_algorithms_enabled()
    try:
        p = compute.place(ComputeHparams(device="cpu", deterministic=True))
        assert p == compute.Placement(torch.device("cpu"), amp=False, channels_last=False, num_workers="auto")
        assert p.loader_options() == {
            "device": torch.device("cpu"),
            "num_workers": "auto",
            "pin_memory": False,
            "decode_device": None,
        }
        decoding = compute.place(ComputeHparams(device="cpu", decode="device", num_workers=3))
        assert decoding.loader_options()["decode_device"] == torch.device("cpu")
        assert decoding.loader_options()["num_workers"] == 3
        assert torch.are_deterministic_algorithms_enabled()
        compute.place(ComputeHparams(device="cpu", deterministic=False))
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.set_deterministic_debug_mode("error" if before else "default")


def test_a_placement_moves_models_and_batches_in_its_memory_format() -> None:
    p = compute.Placement(torch.device("cpu"), amp=True, channels_last=True)
    model = p.model(torch.nn.Conv2d(3, 4, 3))
    assert model.weight.is_contiguous(memory_format=torch.channels_last)
    x = p.batch(torch.randn(2, 3, 5, 5))
    assert x.is_contiguous(memory_format=torch.channels_last)
    with p.autocast():
        assert model(x).dtype == torch.bfloat16
    with compute.Placement().autocast():
        assert model(x).dtype == torch.float32


# ---------------------------------------------------------------- jobs honour compute on any device
@pytest.fixture()
def speedups(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """bf16 autocast and channels_last as asked, on CPU too (:func:`sparselab.compute.place` asks
    ``uses_cuda_features`` at call time); returns the dtype of every autocast region entered."""
    monkeypatch.setattr(compute, "uses_cuda_features", lambda device, c: (c.amp, c.channels_last))
    entered: list[torch.dtype] = []
    real = torch.autocast

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        region = real(*args, **kwargs)
        entered.append(region.fast_dtype)
        return region

    monkeypatch.setattr(torch, "autocast", spy)
    return entered


FAST = ComputeHparams(device="cpu", amp=True, channels_last=True, progress="none")
SPEC = ArchSpec("cifar_resnet20", 6, (3, 8, 8), {"width": 2})
GRATINGS = DataHparams(source="gratings", channels=3)


def checkpoint(path: Path, spec: ArchSpec = SPEC) -> Path:
    torch.manual_seed(0)
    save_checkpoint(path, spec.build(), spec, meta={"method": "test"})
    return path


def test_feature_extraction_runs_under_the_jobs_autocast(tmp_path: Path, speedups: list[torch.dtype]) -> None:
    from safetensors.torch import load_file

    from sparselab.studies.transfer.features import run_feature_extraction

    up = checkpoint(tmp_path / "up.safetensors")
    run_feature_extraction(up, GRATINGS, tmp_path / "tr.safetensors", tmp_path / "te.safetensors", compute=FAST)
    assert speedups and set(speedups) == {torch.bfloat16}
    assert load_file(str(tmp_path / "tr.safetensors"))["features"].dtype == torch.float32


def test_checkpoint_evaluation_runs_under_the_jobs_autocast(tmp_path: Path, speedups: list[torch.dtype]) -> None:
    from sparselab.metrics.checkpoint_eval import evaluate_checkpoint

    record = evaluate_checkpoint(checkpoint(tmp_path / "m.safetensors"), GRATINGS, tmp_path / "e.json", compute=FAST)
    assert speedups and set(speedups) == {torch.bfloat16} and 0 <= record["test_top1"] <= 1


def test_gradflow_evaluates_rounds_on_the_jobs_placement(
    tmp_path: Path, speedups: list[torch.dtype], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sparselab.config import ModelHparams, TrainHparams
    from sparselab.studies.gradflow import prune as gradflow

    seen = []
    real = gradflow.evaluate

    def spy(model, loader, device="cpu", **kwargs):  # type: ignore[no-untyped-def]
        seen.append((torch.device(device), kwargs.get("amp", False), kwargs.get("channels_last", False)))
        return real(model, loader, device, **kwargs)

    monkeypatch.setattr(gradflow, "evaluate", spy)
    recipe = TrainHparams.from_dict({"epochs": 1, "batch_size": 256, "optimizer": {"lr": 0.05}})
    files = gradflow.RoundFiles(tmp_path / "m.safetensors", tmp_path / "r.csv", tmp_path / "h.json", tmp_path / "s")
    gradflow.run_prune_rounds(
        files,
        data=GRATINGS,
        model=ModelHparams("cifar_resnet20", {"width": 2}),
        recipe=recipe,
        prune=gradflow.PruneSpec("l1", target=0.2, rounds=1, protect=("conv1",)),
        seed=0,
        compute=FAST,
    )
    assert seen and all(s == (torch.device("cpu"), True, True) for s in seen), seen


def test_margins_of_pretrained_models_never_run_under_autocast(tmp_path: Path, speedups: list[torch.dtype]) -> None:
    """Margins are exact quantities (float32 logits): bf16 autocast stays off even where it is on."""
    from sparselab.studies.pathnorm.pretrained import analyse_pretrained

    summary = analyse_pretrained(
        tmp_path / "s.json",
        tmp_path / "m.safetensors",
        name="r20",
        data=GRATINGS,
        checkpoint=checkpoint(tmp_path / "up.safetensors"),
        qs=(1.0,),
        compute=FAST,
    )
    assert not speedups and summary["n"] > 0
