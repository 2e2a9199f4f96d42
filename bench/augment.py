"""CIFAR augmentation throughput: the batched tensor path vs the per-sample PIL path, same run.

Both produce one shuffled epoch of CIFAR-shaped training batches (pad-4 random crop, horizontal
flip, normalisation; ``--n`` random uint8 images of 3x32x32, batch 128) through ``make_loader``:

* tensor: :class:`~sparselab.data.tensor_images.TensorImages` on the CPU (one gather per batch);
* PIL: what CIFAR used before issue 16: torchvision's ``CIFAR10.__getitem__`` (``Image.fromarray``
  + ``cifar_transforms``' train transform) under ``PerSampleSeeded``, collated by a ``DataLoader``
  with 0 and with 2 workers (workers start afresh each epoch, as in the engine).

Each trial times one epoch of every variant back to back (in rotated order); the median images/s
and the median of the paired ratios are reported, so slow drift of a shared machine cancels out.
Goal (issue 16): tensor >= 20x PIL on 2 cores.

    python bench/augment.py [--n 10000] [--batch 128] [--trials 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from PIL import Image
from torch.utils.data import Dataset

from sparselab.data import make_loader
from sparselab.data.sources.cifar import cifar_tensor_transforms, cifar_transforms
from sparselab.data.tensor_images import TensorImages


class PilCifar(Dataset):
    """torchvision's ``CIFAR10.__getitem__`` on in-memory HWC uint8 arrays (what the source did)."""

    def __init__(self, hwc: torch.Tensor, labels: torch.Tensor, transform) -> None:
        self.data, self.targets, self.transform = hwc.numpy(), labels.tolist(), transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.data[i])), self.targets[i]


def epoch_seconds(dataset: Dataset, batch: int, epoch: int, workers: int = 0) -> float:
    loader = make_loader(dataset, batch, shuffle=True, order_seed=1, aug_seed=2, drop_last=False, num_workers=workers)
    loader.set_epoch(epoch)
    t0 = time.perf_counter()
    n = sum(len(y) for _, y in loader)
    elapsed = time.perf_counter() - t0
    assert n == len(dataset)  # type: ignore[arg-type]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="torch intra-op threads (jobs: their rule's threads)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.n, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (args.n,), generator=g)
    train_tf, _ = cifar_tensor_transforms("cifar10", augment=True)
    pil_tf, _ = cifar_transforms("cifar10", augment=True)
    variants = {
        "tensor (batched)": lambda e: epoch_seconds(TensorImages.from_tensors(images, labels, train_tf), args.batch, e),
        "PIL, 0 workers": lambda e: epoch_seconds(PilCifar(images.permute(0, 2, 3, 1), labels, pil_tf), args.batch, e),
        "PIL, 2 workers": lambda e: epoch_seconds(
            PilCifar(images.permute(0, 2, 3, 1), labels, pil_tf), args.batch, e, 2
        ),
    }
    names = list(variants)
    variants[names[0]](0)  # warm-up: allocator, first kernels
    seconds: dict[str, list[float]] = {k: [] for k in names}
    for trial in range(args.trials):
        for k in names[trial % 3 :] + names[: trial % 3]:
            seconds[k].append(variants[k](trial + 1))
    rate = {k: args.n / statistics.median(v) for k, v in seconds.items()}
    print(
        f"CIFAR-shaped augmentation, {args.n} images, batch {args.batch}, {args.trials} trials, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs"
    )
    print(f"{'path':<18} {'images/s':>10} {'tensor / this (paired median)':>31}")
    for k in names:
        paired = statistics.median(b / a for a, b in zip(seconds[names[0]], seconds[k]))
        print(f"{k:<18} {rate[k]:>10,.0f} {paired:>30.1f}x")


if __name__ == "__main__":
    main()
