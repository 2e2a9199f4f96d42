"""What every training run sets up before it trains: its seeds, its data splits, its architecture
and the hparams record (hparams.json, the sidecar and the resume fingerprint).

Generic, so that :mod:`.run` (the plain training rules) and every study's jobs (through
:mod:`sparselab.studies.base.setup`) build them one way.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import DataHparams, ModelHparams, SeedHparams, TrainHparams
from ..data import DatasetSplits, build_splits
from ..models.checkpoint import Checkpoint, check_fits, load_checkpoint
from ..models.spec import ArchSpec


def build_seeded(spec: ArchSpec, init_seed: int) -> nn.Module:
    """Build ``spec`` with its weights drawn from ``init_seed``, leaving the global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        return spec.build()


def hparams_record(
    method: str,
    seed: int,
    seeds: SeedHparams,
    data: DataHparams,
    model: dict[str, Any],
    recipe: TrainHparams,
    *,
    recipe_key: str = "train",
    **extra: Any,
) -> dict[str, Any]:
    """The resolved description of a run, in its one key order: method, seed, seeds, data, model,
    the recipe (under ``recipe_key``), then the study's ``extra`` fields in the order given."""
    return {
        "method": method,
        "seed": seed,
        "seeds": seeds.to_dict(),
        "data": data.to_dict(),
        "model": model,
        recipe_key: recipe.to_dict(),
        **extra,
    }


def model_record(spec: ArchSpec) -> dict[str, Any]:
    """The ``model`` field of a run that starts from a checkpoint: its architecture and kwargs."""
    return {"arch": spec.arch, "kwargs": spec.kwargs}


@dataclasses.dataclass(frozen=True)
class RunSetup:
    """One run's replicate seeds, splits and architecture (``arch``; None until the caller builds
    the model itself: :meth:`with_spec`), the ``model`` field of its record, and the checkpoint it
    starts from (``start``). ``spec`` and ``checkpoint`` are the two, checked to be there."""

    seed: int
    seeds: SeedHparams
    data: DataHparams
    splits: DatasetSplits
    arch: ArchSpec | None
    model: dict[str, Any] | None
    start: Checkpoint | None = None

    @property
    def spec(self) -> ArchSpec:
        if self.arch is None:
            raise RuntimeError("this run has no architecture yet: build the model and call RunSetup.with_spec")
        return self.arch

    @property
    def checkpoint(self) -> Checkpoint:
        if self.start is None:
            raise RuntimeError("this run starts from no checkpoint (RunSetup.from_checkpoint makes one that does)")
        return self.start

    @classmethod
    def for_data(cls, data: DataHparams, seed: int) -> RunSetup:
        """Seeds and splits only (the caller builds the model: :meth:`with_spec`)."""
        return cls(seed, SeedHparams.for_replicate(seed), data, build_splits(data), None, None)

    @classmethod
    def fresh(cls, data: DataHparams, model: ModelHparams, seed: int) -> RunSetup:
        """A freshly initialised ``model`` on ``data`` (classes and input shape from the data)."""
        splits = build_splits(data)
        spec = ArchSpec(model.arch, splits.info.num_classes, splits.info.input_shape, dict(model.kwargs))
        return cls(seed, SeedHparams.for_replicate(seed), data, splits, spec, model.to_dict())

    @classmethod
    def from_checkpoint(cls, path: str | Path, data: DataHparams, seed: int) -> RunSetup:
        """A run that continues the checkpoint at ``path`` (which must fit ``data``)."""
        ckpt = load_checkpoint(path)
        splits = build_splits(data)
        check_fits(ckpt.spec, splits.info, str(path))
        return cls(seed, SeedHparams.for_replicate(seed), data, splits, ckpt.spec, model_record(ckpt.spec), ckpt)

    def with_spec(self, spec: ArchSpec) -> RunSetup:
        """The same run with the architecture the caller built (``model`` from ``spec``)."""
        return dataclasses.replace(self, arch=spec, model=model_record(spec))

    def build(self) -> nn.Module:
        """A fresh model of ``spec``, its weights drawn from the replicate's init seed."""
        return build_seeded(self.spec, self.seeds.init)

    def parent(self, path: str | Path) -> dict[str, Any]:
        """The ``parent`` field naming the checkpoint this run starts from (path and tensor hash)."""
        return {"path": str(path), "tensors_sha256": self.checkpoint.meta.get("tensors_sha256")}

    def hparams(self, method: str, recipe: TrainHparams, *, recipe_key: str = "train", **extra: Any) -> dict[str, Any]:
        """This run's hparams record (:func:`hparams_record`)."""
        assert self.model is not None, "RunSetup.hparams needs an architecture"
        return hparams_record(
            method, self.seed, self.seeds, self.data, self.model, recipe, recipe_key=recipe_key, **extra
        )
