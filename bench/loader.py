"""Image-folder loading speed: sparselab's seeded loader vs a plain torchvision ``DataLoader``, in one run.

A fake ImageNet-layout folder of ``--images`` JPEGs of about 500x375 px (smooth random content,
written with PIL into a temporary directory) is read with the ImageNet source's training transforms
(``RandomResizedCrop(224)`` + flip + normalise, built by ``imagenet_transforms``; ``--transforms
transfer`` takes the transfer sets' PIL-geometric ones instead), batch ``--batch``, for each of
``--workers``:

* ``plain``: ``DataLoader(ImageFolder(root, transform=same), shuffle=True)``, the baseline;
* ``seeded``: ``sparselab.data.make_loader`` (per-sample seeds: the augmentation is a pure function
  of (seed, epoch, sample));
* ``forked``: the seeding of earlier releases (``fork_rng`` + ``torch.manual_seed`` per sample), kept
  here for the before/after comparison;
* ``device``: ``make_loader(..., decode_device=cpu)``: workers read file bytes, the main process
  decodes (torchvision) and transforms the tensors (on a GPU machine the same path decodes with
  nvJPEG; here it shows the CPU cost of that path).

Each trial reads one epoch with every loader back to back (rotated order), so the ratios to
``plain`` are paired and slow drift of a shared machine cancels out; medians over ``--trials``
after one untimed warm-up epoch each. The main process uses ``--threads`` torch threads (default 1,
as DataLoader workers do: on a busy 2-core machine, 2 OpenMP threads made small tensor ops 100x slower). Goal: ``seeded`` >= 0.95x ``plain``.

    python bench/loader.py [--images 500] [--batch 64] [--workers 0 2] [--trials 3] [--transforms imagenet] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets import ImageFolder

from sparselab.data.loaders import SamplerLoader, SeededBatchSampler, make_loader
from sparselab.data.sources.imagenet import imagenet_transforms
from sparselab.data.sources.transfer import transfer_transforms

GOAL = 0.95


def write_folder(root: Path, images: int, classes: int = 10, size: tuple[int, int] = (500, 375)) -> None:
    """``root/<class>/<i>.JPEG``: smooth random images (upsampled noise), JPEG quality 90, sizes jittered."""
    rng = np.random.default_rng(0)
    for i in range(images):
        w, h = size[0] + int(rng.integers(-20, 21)), size[1] + int(rng.integers(-20, 21))
        small = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((w, h), Image.BILINEAR)
        folder = root / f"n{i % classes:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{i:06d}.JPEG", format="JPEG", quality=90)


class ForkedPerSampleSeeded(Dataset):
    """The per-sample seeding of earlier releases: fork the global RNG and ``torch.manual_seed`` each sample."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]):
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


def forked_loader(dataset: Dataset, batch: int, workers: int) -> SamplerLoader:
    sampler = SeededBatchSampler(len(dataset), batch, shuffle=True, order_seed=1, aug_seed=2)  # type: ignore[arg-type]
    loader = SamplerLoader(dataset, sampler, workers, pin_memory=False)
    loader.loader = DataLoader(ForkedPerSampleSeeded(dataset), batch_sampler=sampler, num_workers=workers)
    return loader


def epoch_seconds(loader: Iterable) -> tuple[float, int]:
    start, n = time.perf_counter(), 0
    for x, _ in loader:
        n += len(x)
    return time.perf_counter() - start, n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=500)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--transforms", choices=["imagenet", "transfer"], default="imagenet")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the main process (workers use 1)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    train_tf = (imagenet_transforms(224, 256, True) if args.transforms == "imagenet" else transfer_transforms())[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_folder(root, args.images)
        dataset = ImageFolder(str(root), transform=train_tf)
        print(
            f"{len(dataset)} JPEGs ~500x375, {args.transforms} train transforms, batch {args.batch}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads"
        )
        for workers in args.workers:
            loaders = {
                "plain": DataLoader(dataset, args.batch, shuffle=True, num_workers=workers),
                "seeded": make_loader(dataset, args.batch, shuffle=True, order_seed=1, aug_seed=2, num_workers=workers),
                "forked": forked_loader(dataset, args.batch, workers),
                "device": make_loader(
                    dataset,
                    args.batch,
                    shuffle=True,
                    order_seed=1,
                    aug_seed=2,
                    num_workers=workers,
                    decode_device=torch.device("cpu"),
                ),
            }
            for loader in loaders.values():  # warm-up: page cache, allocators, worker start-up code paths
                epoch_seconds(loader)
            times: dict[str, list[float]] = {name: [] for name in loaders}
            names = list(loaders)
            for trial in range(args.trials):
                for name in names[trial % len(names) :] + names[: trial % len(names)]:
                    if hasattr(loaders[name], "set_epoch"):  # new crops every trial, as the plain loader draws
                        loaders[name].set_epoch(trial + 1)
                    seconds, n = epoch_seconds(loaders[name])
                    times[name].append(seconds)
            base = statistics.median(times["plain"])
            print(f"\nnum_workers={workers}")
            for name in names:
                ratios = [b / t for b, t in zip(times["plain"], times[name])]
                rate = len(dataset) / statistics.median(times[name])
                print(f"  {name:7s} {rate:8.1f} img/s   {statistics.median(ratios):.3f}x plain")
            seeded = statistics.median(b / t for b, t in zip(times["plain"], times["seeded"]))
            print(
                f"  goal seeded >= {GOAL}x plain: {'met' if seeded >= GOAL else 'NOT met'} ({base:.2f} s/epoch plain)"
            )


if __name__ == "__main__":
    main()
