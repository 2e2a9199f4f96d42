"""Training throughput on a GPU, as ratios against a hand-written loop measured in the same run.

One script for every row of issue 16's table, each part time-boxed (whole run <= ~5 minutes on an H200):

- ``r50``: ResNet-50 224 px, batch 256, bf16 + channels_last. A hand-written loop with the data
  already on the GPU is the baseline; the engine with the data as device tensors, with
  CPU-resident batches through a DataLoader (pinned + prefetched), and with
  ``compute.deterministic: true``.
- ``small``: CIFAR ResNet-20/56, VGG-13, WRN-28-2 (batch 128) and LeNet-300-100 (MNIST shape,
  batch 100): hand-written loop vs the engine, eager and captured (``compute.capture``), the
  capture's one-off seconds per job, and ``deterministic: true``.
- ``cifar``: one CIFAR-10 epoch (50,000 images, augmentation on) through the real file format
  (pickle batches written here, read by the dataset source): ResNet-56 and ResNet-20 seconds
  per epoch (goals <= 2 s and <= 1 s).
- ``folder``: an ImageNet-layout folder of 3,000 500x375 JPEGs, batch 256: sparselab's seeded
  loader vs a plain torchvision ``DataLoader`` with the same transforms (img/s of the loaders
  alone), the GPU JPEG decode path, and ResNet-50 trained through the folder vs the hand loop.
- ``pathnorm``: exact L1/L2 path-norms of ResNet-50 on the device (the torch-version check).

    python bench/gpu.py                 # everything, on CUDA
    python bench/gpu.py --parts small   # some parts
    python bench/gpu.py --smoke         # tiny sizes; runs on CPU too (tests/test_bench_gpu.py runs a part)

Prints one markdown table (``docs/performance.md`` records it).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # fakedata: the real on-disk formats

from sparselab.config import ComputeHparams, DataHparams, SeedHparams, TrainHparams  # noqa: E402
from sparselab.data import DatasetInfo, DatasetSplits, build_splits  # noqa: E402
from sparselab.models.spec import ArchSpec  # noqa: E402
from sparselab.train.engine import train  # noqa: E402
from sparselab.train.run import build_seeded  # noqa: E402

SEEDS = SeedHparams.for_replicate(0)


@dataclasses.dataclass
class Row:
    part: str
    what: str
    rate: float | None = None  # images per second
    ratio: float | None = None  # against the part's baseline
    extra: str = ""
    goal: str = ""
    ok: bool | None = None


ROWS: list[Row] = []


def emit(row: Row) -> None:
    ROWS.append(row)
    rate = f"{row.rate:,.0f}" if row.rate is not None else "-"
    ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
    print(f"  [{row.part}] {row.what}: {rate} img/s, {ratio} {row.extra} {row.goal}".rstrip(), flush=True)


class TimeBox(Exception):
    pass


@contextlib.contextmanager
def time_box(seconds: float) -> Iterator[None]:
    """Stop a part after ``seconds`` (SIGALRM); the rows it printed so far stay."""

    def expire(*_: Any) -> None:
        raise TimeBox()

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------------------------ baselines
def hand_loop_rate(
    spec: ArchSpec, x: torch.Tensor, y: torch.Tensor, batch: int, steps: int, device: torch.device
) -> float:
    """The loop anyone would write: data already on the device, bf16 autocast + channels_last on
    CUDA, SGD with momentum (foreach), no bookkeeping. Images per second over ``steps`` timed steps
    after 5 warm-up steps."""
    cuda = device.type == "cuda"
    model = build_seeded(spec, 0).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    model.train()
    g = torch.Generator(device="cpu").manual_seed(0)
    n = len(y)

    def step() -> None:
        idx = torch.randint(0, n, (batch,), generator=g).to(device, non_blocking=True)
        xb = x[idx]
        if cuda and xb.dim() == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = F.cross_entropy(model(xb).float(), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return batch * steps / (time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------------ engine
def recipe(epochs: int, batch: int, **extra: Any) -> TrainHparams:
    return TrainHparams.from_dict(
        {
            "epochs": epochs,
            "batch_size": batch,
            "eval_batch_size": 2,
            "drop_last": True,
            "optimizer": {"lr": 0.01, "momentum": 0.9, "nesterov": True},
            "schedule": {"kind": "cosine"},
            **extra,
        }
    )


def synthetic_splits(
    shape: tuple[int, ...], n: int, device: torch.device | str = "cpu", classes: int = 10
) -> DatasetSplits:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, *shape, generator=g).to(device)
    y = torch.randint(0, classes, (n,), generator=g).to(device)
    ds = TensorDataset(x, y)
    tiny = TensorDataset(x[:2], y[:2])  # evaluation is not what is timed
    info = DatasetInfo("synthetic", classes, tuple(shape), (0.0,) * shape[0], (1.0,) * shape[0])  # type: ignore[arg-type]
    return DatasetSplits(info=info, train=ds, train_eval=tiny, val=None, test=tiny)


class CpuBatches(Dataset):
    """CPU-resident samples that are not a ``TensorDataset``: the engine takes the DataLoader path
    (pinned memory, prefetch to the device), as for any dataset that is not held on the device."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def engine_run(spec: ArchSpec, splits: DatasetSplits, hp: TrainHparams, compute: dict[str, Any]) -> tuple[float, float]:
    """(steady images per second, first-epoch overhead seconds): epoch 1 warms up (and compiles or
    captures); the later epochs are timed by the engine's own epoch timer."""
    result = train(
        build_seeded(spec, 0),
        splits,
        hp,
        seeds=SEEDS,
        compute=ComputeHparams.from_dict({"progress": "lines", **compute}),
    )
    rows = result.history
    steady = rows[1:]
    per_epoch = sum(r["epoch_time_s"] for r in steady) / len(steady)
    images = hp.batch_size * (rows[-1]["step"] - rows[-2]["step"]) if len(rows) > 1 else 0
    return images / per_epoch, rows[0]["epoch_time_s"] - per_epoch


# ------------------------------------------------------------------------------------------------ parts
def part_r50(args: argparse.Namespace, device: torch.device) -> None:
    size, batch, steps = (32, 8, 3) if args.smoke else (224, 256, 20)
    spec = ArchSpec("resnet50", 1000 if not args.smoke else 10, (3, size, size), {})
    n = batch * steps
    splits = synthetic_splits((3, size, size), n, device, classes=spec.num_classes)
    x, y = splits.train.tensors
    base = hand_loop_rate(spec, x, y, batch, steps, device)
    emit(Row("r50", f"hand-written loop, data on the device (batch {batch}, {size} px)", base, 1.0))
    hp = recipe(3, batch)
    rate, _ = engine_run(spec, splits, hp, {"deterministic": False})
    emit(Row("r50", "engine, data as device tensors", rate, rate / base, goal=">= 0.97x", ok=rate / base >= 0.97))
    cpu = synthetic_splits((3, size, size), n, "cpu", classes=spec.num_classes)
    cpu = dataclasses.replace(cpu, train=CpuBatches(*cpu.train.tensors))
    rate, _ = engine_run(spec, cpu, hp, {"deterministic": False, "num_workers": args.workers})
    emit(Row("r50", "engine, CPU-resident batches (DataLoader, pinned, prefetched)", rate, rate / base))
    rate, _ = engine_run(spec, splits, hp, {"deterministic": True})
    emit(Row("r50", "engine, compute.deterministic: true", rate, rate / base, extra="(determinism's cost)"))


SMALL = {  # model -> (arch, kwargs, input shape, batch)
    "ResNet-20": ("cifar_resnet20", {}, (3, 32, 32), 128),
    "ResNet-56": ("cifar_resnet56", {}, (3, 32, 32), 128),
    "VGG-13": ("vgg13_bn", {}, (3, 32, 32), 128),
    "WRN-28-2": ("wrn", {}, (3, 32, 32), 128),
    "LeNet-300-100": ("lenet300_100", {}, (1, 28, 28), 100),
}


def part_small(args: argparse.Namespace, device: torch.device) -> None:
    steps = 3 if args.smoke else 60
    models = list(SMALL)[:2] if args.smoke else list(SMALL)
    for name in models:
        arch, kwargs, shape, batch = SMALL[name]
        if args.smoke:
            kwargs = {"width": 4} if arch.startswith("cifar_resnet") else kwargs
            batch = 16
        spec = ArchSpec(arch, 10, shape, kwargs)
        splits = synthetic_splits(shape, batch * steps, device)
        x, y = splits.train.tensors
        base = hand_loop_rate(spec, x, y, batch, steps, device)
        emit(Row("small", f"{name}: hand-written loop (batch {batch})", base, 1.0))
        hp = recipe(3, batch)
        rate, _ = engine_run(spec, splits, hp, {"deterministic": False})
        emit(Row("small", f"{name}: engine, eager", rate, rate / base, goal=">= 0.97x", ok=rate / base >= 0.97))
        if device.type == "cuda" or args.smoke:
            rate_c, once = engine_run(spec, splits, hp, {"deterministic": False, **args.capture})
            saved = batch * steps * (1 / rate - 1 / rate_c)  # seconds saved per epoch of this size
            emit(
                Row(
                    "small",
                    f"{name}: engine, captured",
                    rate_c,
                    rate_c / base,
                    extra=f"(one-off {once:.1f} s per job; saves {saved:.2f} s per {steps}-step epoch)",
                    goal=">= 0.97x",
                    ok=rate_c / base >= 0.97,
                )
            )
        rate_d, _ = engine_run(spec, splits, hp, {"deterministic": True})
        emit(Row("small", f"{name}: engine, deterministic: true", rate_d, rate_d / base, extra="(determinism's cost)"))


def write_cifar10(root: Path, n_train: int, n_test: int) -> None:
    """CIFAR-10 in the release's format (five pickled train batches, test_batch, batches.meta) with
    random pixels: what the dataset source reads, at full size."""
    from fakedata import CIFAR10_LABEL_NAMES, _dump_py2

    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    per = n_train // 5
    for i in range(5):
        _dump_py2(
            base / f"data_batch_{i + 1}",
            {
                b"batch_label": b"training",
                b"labels": rng.integers(0, 10, per).tolist(),
                b"data": rng.integers(0, 256, (per, 3072), dtype=np.uint8),
            },
        )
    _dump_py2(
        base / "test_batch",
        {
            b"batch_label": b"testing",
            b"labels": rng.integers(0, 10, n_test).tolist(),
            b"data": rng.integers(0, 256, (n_test, 3072), dtype=np.uint8),
        },
    )
    _dump_py2(base / "batches.meta", {b"label_names": [c.encode() for c in CIFAR10_LABEL_NAMES]})


def part_cifar(args: argparse.Namespace, device: torch.device) -> None:
    n = 640 if args.smoke else 50_000
    with tempfile.TemporaryDirectory() as tmp:
        write_cifar10(Path(tmp), n, 100)
        splits = build_splits(
            DataHparams.from_dict({"source": "cifar10", "root": tmp, "augment": True, "verify_checksums": False})
        )
        for name, goal_s in (("ResNet-56", 2.0), ("ResNet-20", 1.0)):
            arch = SMALL[name][0]
            spec = ArchSpec(arch, 10, (3, 32, 32), {"width": 4} if args.smoke else {})
            hp = recipe(2, 128, drop_last=False)
            for label, extra in (("eager", {}), ("captured", args.capture)):
                if label == "captured" and device.type != "cuda" and not args.smoke:
                    continue
                rate, once = engine_run(spec, splits, hp, {"deterministic": False, **extra})
                seconds = n / rate
                emit(
                    Row(
                        "cifar",
                        f"{name}, one CIFAR-10 epoch (real format, augmentation on), {label}",
                        rate,
                        extra=f"{seconds:.2f} s per epoch (first epoch +{once:.1f} s)",
                        goal=f"<= {goal_s:g} s",
                        ok=seconds <= goal_s,
                    )
                )


def write_jpeg_folder(root: Path, n: int, size: tuple[int, int], classes: int = 10) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    w, h = size
    base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    for i in range(n):
        folder = root / "train" / f"n{1440764 + 1000 * (i % classes):08d}"
        folder.mkdir(parents=True, exist_ok=True)
        img = np.roll(base, shift=(i * 7) % h, axis=0)  # different pixels, realistic JPEG sizes
        Image.fromarray(img).save(folder / f"img_{i:05d}.JPEG", quality=90)
    for k in range(classes):  # the source wants a val split with the same classes
        src = next((root / "train" / f"n{1440764 + 1000 * k:08d}").iterdir())
        (root / "val" / src.parent.name).mkdir(parents=True, exist_ok=True)
        (root / "val" / src.parent.name / src.name).write_bytes(src.read_bytes())


def loader_rate(loader: Any, limit: int) -> float:
    seen, t0 = 0, time.perf_counter()
    for i, (x, _) in enumerate(loader):
        seen += len(x)
        if i + 1 >= limit:
            break
    return seen / (time.perf_counter() - t0)


def part_folder(args: argparse.Namespace, device: torch.device) -> None:
    from torchvision.datasets import ImageFolder

    from sparselab.data import make_loader

    n, batch = (64, 16) if args.smoke else (3000, 256)
    workers = args.workers
    with tempfile.TemporaryDirectory() as tmp:
        write_jpeg_folder(Path(tmp), n, (500, 375))
        splits = build_splits(DataHparams.from_dict({"source": "imagenet", "root": tmp}))
        train_tf = splits.train.transform  # type: ignore[attr-defined]
        plain = DataLoader(
            ImageFolder(os.path.join(tmp, "train"), transform=train_tf),
            batch_size=batch,
            shuffle=True,
            num_workers=workers,
            pin_memory=device.type == "cuda",
        )
        steps = n // batch
        base = loader_rate(plain, steps)
        emit(Row("folder", f"plain torchvision DataLoader, {workers} workers, batch {batch}", base, 1.0))
        ours = make_loader(splits.train, batch, shuffle=True, num_workers=workers, pin_memory=device.type == "cuda")
        ours.set_epoch(1)
        rate = loader_rate(ours, steps)
        emit(
            Row(
                "folder",
                "sparselab's seeded loader, same transforms",
                rate,
                rate / base,
                goal=">= 0.95x",
                ok=rate / base >= 0.95,
            )
        )
        decoded = make_loader(splits.train, batch, shuffle=True, num_workers=workers, decode_device=device)
        decoded.set_epoch(1)
        rate = loader_rate(decoded, steps)
        emit(Row("folder", f"compute.decode: device (JPEGs decoded and augmented on {device.type})", rate, rate / base))
        size = 32 if args.smoke else 224
        spec = ArchSpec("resnet50", 10, (3, size, size), {})
        hand = synthetic_splits((3, size, size), batch * 4, device)
        x, y = hand.train.tensors
        base_r50 = hand_loop_rate(spec, x, y, batch, 4 if args.smoke else 20, device)
        hp = recipe(2, batch)
        rate, _ = engine_run(spec, splits, hp, {"deterministic": False, "num_workers": workers})
        emit(
            Row(
                "folder",
                "ResNet-50 through the image folder (CPU decode) vs hand loop on device data",
                rate,
                rate / base_r50,
                goal=">= 0.9x",
                ok=rate / base_r50 >= 0.9,
            )
        )
        rate, _ = engine_run(spec, splits, hp, {"deterministic": False, "num_workers": workers, "decode": "device"})
        emit(
            Row(
                "folder",
                "ResNet-50 through the image folder (decode: device) vs hand loop on device data",
                rate,
                rate / base_r50,
                goal=">= 0.9x",
                ok=rate / base_r50 >= 0.9,
            )
        )


def part_pathnorm(args: argparse.Namespace, device: torch.device) -> None:
    from sparselab.metrics.pathnorm import path_norms

    size = 32 if args.smoke else 224
    model = build_seeded(ArchSpec("resnet50", 10, (3, size, size), {}), 0).to(device).eval()
    t0 = time.perf_counter()
    norms = [pn.log10 for pn in path_norms(model, qs=(1.0, 2.0), input_shape=(3, size, size))]
    norms += [pn.log10 for pn in path_norms(model, qs=(1.0,), input_shape=(3, size, size), convention="gbrg24")]
    sync(device)
    emit(
        Row(
            "pathnorm",
            f"ResNet-50 path-norms on {device.type} (log10: exact L1, L2; gbrg24 L1): "
            + ", ".join(f"{v:.2f}" for v in norms),
            extra=f"{time.perf_counter() - t0:.2f} s",
            ok=True,
        )
    )


PARTS: dict[str, tuple[Callable[[argparse.Namespace, torch.device], None], float]] = {
    "r50": (part_r50, 70.0),
    "small": (part_small, 100.0),
    "cifar": (part_cifar, 50.0),
    "folder": (part_folder, 60.0),
    "pathnorm": (part_pathnorm, 15.0),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, any device (keeps the script working)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=min(15, max(0, (os.cpu_count() or 1) - 1)))
    args = parser.parse_args(argv)
    args.capture = {"capture": "graphs"}
    device = torch.device(args.device)
    if device.type != "cuda" and not args.smoke:
        print("bench/gpu.py measures a GPU: no CUDA device here (use --smoke to check the script on CPU)")
        return 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"# bench/gpu.py on {name}, torch {torch.__version__}, {os.cpu_count()} CPUs{' (smoke)' if args.smoke else ''}"
    )
    for part in args.parts:
        fn, seconds = PARTS[part]
        t0 = time.perf_counter()
        try:
            with time_box(seconds * (10 if args.smoke else 1)):
                fn(args, device)
        except TimeBox:
            emit(Row(part, f"stopped by its {seconds:.0f} s time box", ok=False))
        print(f"  ({part}: {time.perf_counter() - t0:.1f} s)", flush=True)
    print("\n| part | what | img/s | vs baseline | note | goal |")
    print("|---|---|---|---|---|---|")
    for r in ROWS:
        rate = f"{r.rate:,.0f}" if r.rate is not None else ""
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
        goal = f"{r.goal} {'met' if r.ok else 'MISSED'}" if r.goal else ""
        print(f"| {r.part} | {r.what} | {rate} | {ratio} | {r.extra} | {goal} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
