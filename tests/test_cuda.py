"""What holds on a CUDA device (skipped without one): the same config trains to the same weights,
a diverging run fails naming its epoch and step there too, and CPU and CUDA agree to rounding at
the start of training (docs: README, "What determinism holds")."""

from __future__ import annotations

import math

import pytest
import torch
from test_divergence import Poison

from sparselab.config import ComputeHparams, DataHparams, SeedHparams, TrainHparams
from sparselab.data import build_splits
from sparselab.divergence import DivergenceError
from sparselab.models.spec import ArchSpec
from sparselab.train.engine import train
from sparselab.train.run import build_seeded

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

SEEDS = SeedHparams.for_replicate(0)
SPEC = ArchSpec("cifar_resnet20", 10, (3, 8, 8), {"width": 2})


@pytest.fixture(scope="module")
def digits():
    return build_splits(DataHparams(val_fraction=0.1, channels=3))


def recipe(epochs: int = 2, lr: float = 0.05) -> TrainHparams:
    return TrainHparams.from_dict(
        {"epochs": epochs, "batch_size": 64, "optimizer": {"lr": lr, "momentum": 0.9}, "schedule": {"kind": "cosine"}}
    )


def weights(digits, compute: ComputeHparams, epochs: int = 2) -> dict[str, torch.Tensor]:
    result = train(build_seeded(SPEC, SEEDS.init), digits, recipe(epochs), seeds=SEEDS, compute=compute)
    return {k: v.detach().double().cpu() for k, v in result.model.state_dict().items() if v.is_floating_point()}


def test_the_same_config_trains_to_the_same_weights_on_cuda(digits) -> None:
    compute = ComputeHparams(device="cuda", deterministic=True, progress="lines")
    a, b = weights(digits, compute), weights(digits, compute)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.xfail(
    reason="on an H200 (torch 2.11) one tensor differed by 4.7x its scale after one epoch, where 1 vs "
    "2 CPU threads differ by 9e-6: not yet explained (cuDNN's TF32 convolutions are a candidate)",
    strict=False,
)
def test_cpu_and_cuda_agree_to_rounding_after_one_epoch(digits) -> None:
    """float32 on both (bf16 autocast off): the same batches and augmentation, reductions summed in
    another order; after one epoch the weights should differ by rounding carried through its steps
    (1 vs 2 CPU threads: at most 9e-6 of a tensor's scale)."""
    cpu = weights(digits, ComputeHparams(device="cpu", progress="lines"), epochs=1)
    gpu = weights(digits, ComputeHparams(device="cuda", amp=False, channels_last=False, progress="lines"), epochs=1)
    gap = {k: float((cpu[k] - gpu[k]).abs().max() / (cpu[k].abs().max() + 1e-12)) for k in cpu}
    worst = max(gap, key=gap.get)
    assert gap[worst] < 1e-3, (worst, gap[worst])


def test_divergence_on_cuda_names_the_epoch_and_step(digits) -> None:
    """bf16 autocast and channels_last on: the first non-finite loss is found on the device."""
    n = math.ceil(len(digits.train) / 64)
    compute = ComputeHparams(device="cuda", progress="lines")
    with pytest.raises(DivergenceError, match=rf"diverged at epoch 2, step {n + 6} \(step 6 of {n} in the epoch\)"):
        train(
            build_seeded(SPEC, SEEDS.init), digits, recipe(3), seeds=SEEDS, compute=compute, callbacks=(Poison(n + 5),)
        )
