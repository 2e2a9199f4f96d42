"""Train a small BatchNorm ResNet with masks and pruning; run alone or under torchrun (tests/test_ddp.py).

Usage: ``python ddp_worker.py OUT {acdc|dsr}`` or ``torchrun --nproc-per-node 2 ddp_worker.py OUT {acdc|dsr}``.
Rank 0 writes ``OUT/weights.safetensors`` (weights, BatchNorm buffers and the final mask) and
``OUT/history.json``; every process writes ``OUT/rank{r}.safetensors`` so the test can check the
processes agree.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.utils.data import TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from sparselab.config import ComputeHparams, DataHparams, SeedHparams, TrainHparams  # noqa: E402
from sparselab.data import DatasetSplits, build_splits  # noqa: E402
from sparselab.dst.acdc import ACDC  # noqa: E402
from sparselab.dst.callbacks import DSR, StepSchedule  # noqa: E402
from sparselab.models.spec import ArchSpec  # noqa: E402
from sparselab.sparsity.magnitude import magnitude_mask  # noqa: E402
from sparselab.sparsity.mask import prunable_parameters  # noqa: E402
from sparselab.train import distributed  # noqa: E402
from sparselab.train.engine import train  # noqa: E402
from sparselab.train.run import build_seeded  # noqa: E402

EPOCHS = 10


def in_float64(splits: DatasetSplits) -> DatasetSplits:
    """Float64 images: the only difference between one and two processes is then the order of
    floating-point sums (~1e-16), far too small to flip a magnitude-pruning decision, so the runs
    can be compared mask for mask. (In float32 they agree to ~1e-7 until a near-tie flips.)"""

    def double(ds: TensorDataset | None) -> TensorDataset | None:
        return None if ds is None else TensorDataset(ds.tensors[0].double(), ds.tensors[1])

    return dataclasses.replace(
        splits,
        train=double(splits.train),
        train_eval=double(splits.train_eval),
        val=double(splits.val),
        test=double(splits.test),
    )


def main(out: Path, kind: str) -> None:
    torch.set_num_threads(1)
    data = DataHparams(source="digits", channels=1, val_fraction=0.1, subset_fraction=0.4)
    splits = in_float64(build_splits(data))
    spec = ArchSpec("cifar_resnet20", splits.info.num_classes, splits.info.input_shape, {"width": 4})
    model = build_seeded(spec, 7).double()
    # An odd global batch and a short last batch: slices of unequal size on the two processes.
    recipe = TrainHparams.from_dict(
        {
            "epochs": EPOCHS,
            "batch_size": 51,
            "eval_batch_size": 97,
            "label_smoothing": 0.1,
            "optimizer": {"lr": 0.05, "nesterov": True, "weight_decay": 5e-4},
            "schedule": {"kind": "cosine", "warmup_epochs": 1},
        }
    )
    names = prunable_parameters(model)
    if kind == "acdc":
        callbacks, mask = [ACDC(names, 0.8, EPOCHS)], None
    else:
        mask = magnitude_mask(model, 0.7, "global", names)
        callbacks = [DSR(mask.to_tensors(), StepSchedule({0: 5}), None, seed=3, target=40)]
    result = train(
        model,
        splits,
        recipe,
        seeds=SeedHparams.for_replicate(1),
        compute=ComputeHparams(device="cpu", deterministic=True, progress="lines"),
        mask=mask,
        callbacks=callbacks,
    )
    tensors = {k: v.detach().clone().contiguous() for k, v in result.model.state_dict().items()}
    if result.mask is not None:
        tensors.update({f"mask/{k}": v.clone().contiguous() for k, v in result.mask.to_tensors().items()})
    world = distributed.current_world()
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / f"rank{world.rank}.safetensors"))
    if world.main:
        save_file(tensors, str(out / "weights.safetensors"))
        (out / "history.json").write_text(json.dumps(result.history))
        types = sorted({type(m).__name__ for m in result.model.modules()})
        (out / "modules.json").write_text(json.dumps(types))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
