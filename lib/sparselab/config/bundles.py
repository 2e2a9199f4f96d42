"""The concrete hyperparameter bundles: data, model, optimizer, schedule, training, compute, seeds.

A config ``recipe`` is a :class:`TrainHparams`; a config ``datasets`` entry is a
:class:`DataHparams`; a ``models`` entry is a :class:`ModelHparams`. They are validated at
workflow parse time (no torch import here), so a typo fails before any job starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from .hparams import Hparams, HparamsError, derive_seed

# The ten downstream datasets of the sparse-transfer study (Iofinova et al., CVPR 2022) besides
# CIFAR-10/100; read by data/sources/transfer.py with the paper's splits and 224 px preprocessing.
TRANSFER_SOURCES = (
    "aircraft",
    "birdsnap",
    "caltech101",
    "caltech256",
    "cars",
    "dtd",
    "flowers",
    "food101",
    "pets",
    "sun397",
)
PROCEDURAL_SOURCES = ("shapes", "gratings")  # generated, no root (sparselab.data.sources.procedural)
# built from the digits test split a digits upstream never trained on, no root (...sources.heldout)
HELDOUT_SOURCES = ("digits_clutter", "digits_loops")
DATA_SOURCES = (
    "digits",
    "mnist",
    "cifar10",
    "cifar100",
    "imagenet",
    *TRANSFER_SOURCES,
    *PROCEDURAL_SOURCES,
    *HELDOUT_SOURCES,
)


@dataclasses.dataclass(frozen=True)
class DataHparams(Hparams):
    """Which dataset, where it lives, and how it is split (all splits seeded, never global RNG)."""

    source: Literal[
        "digits",
        "mnist",
        "cifar10",
        "cifar100",
        "imagenet",
        "aircraft",
        "birdsnap",
        "caltech101",
        "caltech256",
        "cars",
        "dtd",
        "flowers",
        "food101",
        "pets",
        "sun397",
        "shapes",
        "gratings",
        "digits_clutter",
        "digits_loops",
    ] = "digits"
    root: str | None = None  # directory holding the real on-disk layout (not used by digits)
    image_size: int | None = None  # digits/mnist: resize to this; imagenet: crop size (224)
    resize_size: int | None = None  # imagenet eval: resize before the centre crop (256)
    # transfer sources: resampling of every resize/crop (bicubic for RigL upstreams, which TF trained)
    interpolation: Literal["bilinear", "bicubic"] = "bilinear"
    channels: int | None = None  # digits/mnist: 1 or 3 (replicated grey) for conv nets
    augment: bool = True  # standard train augmentation of the source (digits has none)
    # cifar only: per-channel mean/std of the dataset, or 0.5/0.5 (Lubana & Dick's code)
    # cifar, transfer sources: the dataset's own mean/std, ImageNet's (the paper's pre-extracted
    # linear protocol) or 0.5/0.5 (cifar at 32 px: Lubana & Dick's code)
    normalize: Literal["dataset", "imagenet", "half"] = "dataset"
    # md5 of the official files (CIFAR, Flowers) when loaded, official CIFAR sizes at start-up; never what
    # makes unpickling safe (CIFAR files always go through a restricted unpickler)
    verify_checksums: bool = True
    # digits and the held-out digits tasks (whose images are digits' test split): stratified train/test split
    test_fraction: float = 0.25
    split_seed: int = 0  # seed of that split (shapes/gratings: seed of the generated images)
    train_per_class: int | None = None  # held-out digits tasks: labelled training images per class (default 10)
    val_fraction: float = 0.0  # hold-out taken from the train split (eval transform)
    val_seed: int = 0
    subset_fraction: float = 1.0  # train on a seeded fraction of the (remaining) train split
    subset_seed: int = 0

    def validate(self, path: str) -> None:
        for name in ("test_fraction", "val_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise HparamsError(f"{path}.{name}: {v} must be in [0, 1)")
        if not 0.0 < self.subset_fraction <= 1.0:
            raise HparamsError(f"{path}.subset_fraction: {self.subset_fraction} must be in (0, 1]")
        if self.normalize not in ("dataset", "imagenet", "half"):
            raise HparamsError(f"{path}.normalize: {self.normalize!r} must be 'dataset', 'imagenet' or 'half'")
        if self.normalize == "half" and (self.source not in ("cifar10", "cifar100") or self.image_size):
            raise HparamsError(
                f"{path}.normalize: 'half' (mean = std = 0.5) is offered for cifar10/cifar100 at 32 px only"
            )
        if self.normalize == "imagenet" and self.source not in (*TRANSFER_SOURCES, "cifar10", "cifar100"):
            raise HparamsError(
                f"{path}.normalize: 'imagenet' is offered for cifar10/cifar100 and the transfer datasets only"
            )
        if self.channels not in (None, 1, 3):
            raise HparamsError(f"{path}.channels: {self.channels} must be 1 or 3")
        if self.source in ("cifar10", "cifar100") and self.channels:
            raise HparamsError(f"{path}: channels is not an option of {self.source}")
        if self.interpolation not in ("bilinear", "bicubic"):
            raise HparamsError(f"{path}.interpolation: {self.interpolation!r} must be 'bilinear' or 'bicubic'")
        if self.interpolation != "bilinear" and self.source not in (*TRANSFER_SOURCES, "cifar10", "cifar100"):
            raise HparamsError(f"{path}.interpolation: {self.source} always resizes bilinearly")
        if self.source in TRANSFER_SOURCES and self.channels:
            raise HparamsError(f"{path}: channels is not an option of {self.source} (always RGB)")
        if self.source not in ("digits", *HELDOUT_SOURCES) and self.test_fraction != 0.25:
            held = ", ".join(HELDOUT_SOURCES)
            raise HparamsError(
                f"{path}.test_fraction: only digits and {held} (its held-out images) have no fixed test split"
            )
        if self.source in HELDOUT_SOURCES and self.test_fraction <= 0:
            raise HparamsError(
                f"{path}.test_fraction: {self.source} is built from digits' test split, which must not be empty"
            )
        if self.train_per_class is not None:
            if self.source not in HELDOUT_SOURCES:
                raise HparamsError(f"{path}.train_per_class: only for {', '.join(HELDOUT_SOURCES)}, not {self.source}")
            if self.train_per_class < 1:
                raise HparamsError(f"{path}.train_per_class: {self.train_per_class} must be >= 1")


@dataclasses.dataclass(frozen=True)
class ModelHparams(Hparams):
    """An architecture from the model registry and its keyword arguments (width knobs...)."""

    arch: str = "lenet300_100"
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class OptimizerHparams(Hparams):
    """SGD with momentum; weight decay on every parameter unless ``decay_norm_and_bias`` is off."""

    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    decay_norm_and_bias: bool = True

    def validate(self, path: str) -> None:
        if self.lr <= 0:
            raise HparamsError(f"{path}.lr: {self.lr} must be > 0")
        if not 0 <= self.momentum < 1:
            raise HparamsError(f"{path}.momentum: {self.momentum} must be in [0, 1)")
        if self.nesterov and self.momentum == 0:
            raise HparamsError(f"{path}.nesterov: needs momentum > 0")
        if self.weight_decay < 0:
            raise HparamsError(f"{path}.weight_decay: must be >= 0")


@dataclasses.dataclass(frozen=True)
class ScheduleHparams(Hparams):
    """Learning-rate schedule, stepped every iteration (large-batch recipes) or once per epoch.

    ``warmup_epochs`` ramps linearly from ``warmup_start`` x lr to lr; then ``multistep``
    multiplies by ``gamma`` at each milestone (in epochs, fractional allowed per iteration),
    ``cosine`` anneals to ``final_lr_factor`` x lr at the end, ``constant`` keeps lr.
    ``step_every: epoch`` gives every iteration of an epoch one lr, as epoch-stepped schedulers
    (AC/DC's and STR's cosine) do; see :func:`sparselab.train.optim.epoch_factor_fn`.
    """

    kind: Literal["constant", "multistep", "cosine"] = "multistep"
    warmup_epochs: float = 0.0
    warmup_start: float = 0.0
    milestones: list[float] = dataclasses.field(default_factory=list)
    gamma: float = 0.1
    final_lr_factor: float = 0.0
    step_every: Literal["iteration", "epoch"] = "iteration"

    def validate(self, path: str) -> None:
        if self.warmup_epochs < 0:
            raise HparamsError(f"{path}.warmup_epochs: must be >= 0")
        if self.step_every not in ("iteration", "epoch"):
            raise HparamsError(f"{path}.step_every: {self.step_every!r} must be 'iteration' or 'epoch'")
        if self.step_every == "epoch" and any(float(x) != int(x) for x in (self.warmup_epochs, *self.milestones)):
            raise HparamsError(
                f"{path}: a schedule stepped per epoch needs whole epochs in warmup_epochs and milestones"
            )
        if list(self.milestones) != sorted(self.milestones):
            raise HparamsError(f"{path}.milestones: {self.milestones} must be increasing")
        if self.kind != "multistep" and self.milestones:
            raise HparamsError(f"{path}.milestones: only used by kind 'multistep'")


@dataclasses.dataclass(frozen=True)
class GmpRamp(Hparams):
    """The GMP upstreams' ramp: the AC/DC repo's polynomial schedule with its own parameters.

    Pruning steps come before the 0-based epochs ``start, start + freq, … < end`` (after that many
    epochs of training; the original's ``epochs: [start, freq, end]``), each to
    ``s_f − (s_f − initial_sparsity)·(1 − (e − start)/(end − start))^degree`` under one global
    threshold (``sparselab.dst.gradual.ramp_sparsity``). ``final_step`` adds a step at ``end`` that
    reaches the target; the original has none and stops short of it (89.9% for [1, 5, 40] at 90%).
    The defaults are the offline default's short ramp: steps after epochs 0–3, cubic from 0 to the target.
    """

    start: int = 0
    freq: int = 1
    end: int = 4
    initial_sparsity: float = 0.0
    degree: float = 3.0
    final_step: bool = True

    @classmethod
    def from_options(cls, options: Mapping[str, Any], path: str = "gmp") -> GmpRamp:
        """The ramp of a transfer experiment's ``gmp`` block (its other keys: recipe, sparsities)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls.from_dict({k: v for k, v in options.items() if k in names}, path=path)

    def validate(self, path: str) -> None:
        if self.start < 0:
            raise HparamsError(f"{path}.start: {self.start} must be >= 0 (epochs trained before the first step)")
        if self.freq < 1:
            raise HparamsError(f"{path}.freq: {self.freq} must be >= 1")
        if self.end <= self.start:
            raise HparamsError(
                f"{path}.end: {self.end} must come after start {self.start} (progress 1 is reached at end)"
            )
        if not 0.0 <= self.initial_sparsity < 1.0:
            raise HparamsError(f"{path}.initial_sparsity: {self.initial_sparsity} must be in [0, 1)")
        if not self.degree > 0:
            raise HparamsError(f"{path}.degree: {self.degree} must be > 0")

    @property
    def last_step(self) -> int:
        """Epochs trained before the last pruning step (the recipe must train at least that many)."""
        return self.end if self.final_step else self.start + self.freq * ((self.end - 1 - self.start) // self.freq)


@dataclasses.dataclass(frozen=True)
class TrainHparams(Hparams):
    """A training recipe: everything that defines the optimisation of one run except its seed."""

    epochs: int = 10
    batch_size: int = 128
    eval_batch_size: int = 512
    optimizer: OptimizerHparams = dataclasses.field(default_factory=OptimizerHparams)
    schedule: ScheduleHparams = dataclasses.field(default_factory=ScheduleHparams)
    label_smoothing: float = 0.0
    temperature: float = 1.0  # logits are divided by T in the loss (and in eval loss)
    drop_last: bool = False
    eval_every: int = 1  # evaluate val/test every k epochs (and always after the last)
    eval_train: bool = False  # also evaluate the non-augmented train split in eval mode
    # which weights the run ends with: the last epoch's, or those of the epoch with the best
    # validation top-1 (needs data.val_fraction > 0; the test set is never used to select)
    select: Literal["last", "best_val"] = "last"

    def validate(self, path: str) -> None:
        if self.epochs < 0:
            raise HparamsError(f"{path}.epochs: must be >= 0")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise HparamsError(f"{path}.batch_size: must be >= 1")
        if not 0 <= self.label_smoothing < 1:
            raise HparamsError(f"{path}.label_smoothing: must be in [0, 1)")
        if self.temperature <= 0:
            raise HparamsError(f"{path}.temperature: must be > 0")
        if self.eval_every < 1:
            raise HparamsError(f"{path}.eval_every: must be >= 1")
        if self.select not in ("last", "best_val"):
            raise HparamsError(f"{path}.select: {self.select!r} must be 'last' or 'best_val'")
        last = self.schedule.milestones[-1] if self.schedule.milestones else 0
        if self.epochs and last > self.epochs:
            raise HparamsError(f"{path}.schedule.milestones: {last} is past epochs={self.epochs}")


@dataclasses.dataclass(frozen=True)
class ComputeHparams(Hparams):
    """Where and how to compute; none of these change the maths except ``deterministic``/``amp``/``decode``."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N
    deterministic: bool = True  # torch.use_deterministic_algorithms + no cuDNN autotuning
    amp: bool = True  # bf16 autocast, on CUDA only
    channels_last: bool = True  # on CUDA only
    compile: bool = False  # torch.compile the model
    # CUDA graphs for the training forward+backward (torch.compile mode="reduce-overhead"):
    # none | auto (on CUDA, one process) | graphs (also on CPU: plain inductor, for tests)
    capture: Literal["none", "auto", "graphs"] = "none"
    # DataLoader worker processes per training process for image folders (in-memory datasets never use
    # any); auto: from the job's CPUs when its loaders are built (sparselab.data.workers)
    num_workers: int | Literal["auto"] = "auto"
    # image folders: decode (and augment) in the DataLoader workers, or on the training device
    # (workers read file bytes; nvJPEG on CUDA; sparselab.data.device_decode)
    decode: Literal["workers", "device"] = "workers"
    progress: Literal["auto", "bar", "lines"] = "auto"  # tqdm when interactive, lines in logs
    sync_batchnorm: bool = True  # multi-process training: BatchNorm statistics over the global batch

    def validate(self, path: str) -> None:
        if self.num_workers != "auto" and self.num_workers < 0:
            raise HparamsError(f"{path}.num_workers: {self.num_workers} must be 'auto' or >= 0")


@dataclasses.dataclass(frozen=True)
class SeedHparams(Hparams):
    """Separate seeds for weight init, data order and augmentation (open_lth-style)."""

    init: int = 0
    data_order: int = 0
    augmentation: int = 0

    @classmethod
    def for_replicate(cls, seed: int) -> SeedHparams:
        """Independent streams derived from one replicate number."""
        return cls(
            init=derive_seed(seed, "init"),
            data_order=derive_seed(seed, "data_order"),
            augmentation=derive_seed(seed, "augmentation"),
        )


@dataclasses.dataclass(frozen=True)
class StudySection(Hparams):
    """A study section's own keys: whether it runs, and its report's title (each study restates
    ``title`` with its default)."""

    enabled: bool = True
    title: str = ""


@dataclasses.dataclass(frozen=True)
class GrowthHparams(Hparams):
    """Drop-and-grow sparse training (RigL, SNFS: ``sparselab.dst.rigl``): when masks change, how
    much, and how the density is spread over layers. The defaults are RigL's (Evci et al. 2020):
    an update every 100 steps until 75% of the run, initial drop fraction 0.3, ERK densities."""

    delta_t: int | Literal["epoch"] = 100  # steps between mask updates; "epoch": after every epoch
    stop: float = 0.75  # no update from this fraction of the run's optimizer steps on
    alpha: float = 0.3  # the drop fraction at step 0, decayed with a cosine to 0 at ``stop``
    densities: Literal["uniform", "erk"] = "erk"  # per-layer densities at the global one
    dense_first: bool = False  # the first sparse tensor dense, outside the budget (RigL's ImageNet recipe)
    erk_power: float = 1.0  # ERK's scale exponent (1: the paper)

    def validate(self, path: str) -> None:
        if self.delta_t != "epoch" and not (isinstance(self.delta_t, int) and self.delta_t >= 1):
            raise HparamsError(f"{path}.delta_t: {self.delta_t!r} must be a positive number of steps or 'epoch'")
        if not 0.0 < self.stop <= 1.0:
            raise HparamsError(f"{path}.stop: {self.stop} must be in (0, 1] (a fraction of the run's steps)")
        if not 0.0 <= self.alpha < 1.0:
            raise HparamsError(f"{path}.alpha: {self.alpha} must be in [0, 1)")
        if not self.erk_power > 0:
            raise HparamsError(f"{path}.erk_power: {self.erk_power} must be > 0")


@dataclasses.dataclass(frozen=True)
class SnfsHparams(GrowthHparams):
    """Sparse momentum's defaults (Dettmers & Zettlemoyer 2019, sparse_learning): an update after
    every epoch, prune rate 0.5 decayed with a cosine over the whole run, every layer at the global
    density (sparse_learning's ``enforce_density_per_layer``)."""

    delta_t: int | Literal["epoch"] = "epoch"
    stop: float = 1.0
    alpha: float = 0.5
    densities: Literal["uniform", "erk"] = "uniform"
