"""The transfer study's typed options: one class per block of a ``transfer:`` section, the one place
their defaults are stated (the schema repeats them for users; ``tests/test_study_configs.py`` keeps
the two equal through ``config.SCHEMA_BINDINGS``).

Apart from the config parser (:mod:`.config`) because the linear job reads its protocol from here:
editing the parser's checks never reruns a linear head. Standard library only (parse time).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from ...config.bundles import GmpRamp, GrowthHparams, StudySection
from ...config.hparams import Hparams, HparamsError

__all__ = [
    "SectionOptions",
    "ExperimentOptions",
    "GmpUpstreams",
    "AcdcUpstreams",
    "RiglUpstreams",
    "LinearProtocol",
    "FullFinetuning",
    "ScratchBaseline",
]


@dataclasses.dataclass(frozen=True)
class SectionOptions(StudySection):
    """The section's own keys (its experiments are parsed one by one)."""

    title: str = "Sparse transfer"


@dataclasses.dataclass(frozen=True)
class ExperimentOptions(Hparams):
    """An experiment's scalar keys (its dataset, model, upstreams and protocols are parsed apart)."""

    seed: int = 0  # of the dense upstream and of the GMP / AC/DC / RigL runs
    dense_recipe: str | None = None  # the dense upstream (rules/train.smk); None: none
    # the tensors GMP and AC/DC prune under one global threshold (RigL: its sparse tensors): every
    # conv and Linear weight, or names
    sparse_layers: Literal["conv_fc"] | list[str] = "conv_fc"


@dataclasses.dataclass(frozen=True, kw_only=True)
class GmpUpstreams(GmpRamp):
    """GMP of the dense upstream at each of ``sparsities``: the ramp (:class:`GmpRamp`, its defaults)
    and the pruning run's recipe."""

    recipe: str
    sparsities: list[float]

    def validate(self, path: str) -> None:
        super().validate(path)
        if self.initial_sparsity > min(self.sparsities):
            raise HparamsError(
                f"{path}.initial_sparsity: {self.initial_sparsity} is above the sparsity {min(self.sparsities)}; "
                "the ramp only prunes, so it must start at or below every target"
            )

    def ramp(self) -> GmpRamp:
        return GmpRamp(**{f.name: getattr(self, f.name) for f in dataclasses.fields(GmpRamp)})

    def options(self) -> dict[str, Any]:
        """The GMP rule's ``options`` param: recipe and sparsities first, then the ramp's keys."""
        return {"recipe": self.recipe, "sparsities": list(self.sparsities), **self.ramp().to_dict()}


@dataclasses.dataclass(frozen=True)
class AcdcUpstreams(Hparams):
    """AC/DC from scratch at each of ``sparsities`` over the recipe's epochs."""

    recipe: str
    sparsities: list[float]


@dataclasses.dataclass(frozen=True, kw_only=True)
class RiglUpstreams(GrowthHparams):
    """RigL from scratch at each of ``sparsities`` over the recipe's steps: the drop-and-grow
    schedule and layer densities (:class:`GrowthHparams`, RigL's defaults) and the run's recipe."""

    recipe: str
    sparsities: list[float]

    @property
    def name(self) -> str:
        """The upstream's name in paths, tables and figures: ``rigl_erk`` or ``rigl_uniform``."""
        return f"rigl_{self.densities}"

    def growth(self) -> GrowthHparams:
        return GrowthHparams(**{f.name: getattr(self, f.name) for f in dataclasses.fields(GrowthHparams)})

    def options(self) -> dict[str, Any]:
        """The RigL rule's ``options`` param: recipe and sparsities first, then the growth keys."""
        return {"recipe": self.recipe, "sparsities": list(self.sparsities), **self.growth().to_dict()}


@dataclasses.dataclass(frozen=True)
class LinearProtocol(Hparams):
    """Linear finetuning on cached features: a head per seed, SGD with the paper's protocol (150
    epochs, lr 0.01 decayed after 50 and 100) or L2-regularised L-BFGS logistic regression."""

    seeds: list[int] = dataclasses.field(default_factory=lambda: [0, 1, 2, 3, 4])
    normalize: Literal["imagenet", "dataset"] = "imagenet"  # features of sources with a choice
    solver: Literal["sgd", "lbfgs"] = "sgd"
    epochs: int = 150
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    decay_after: list[int] = dataclasses.field(default_factory=lambda: [50, 100])
    l2: float = 1e-4  # lbfgs
    max_iter: int = 200  # lbfgs


@dataclasses.dataclass(frozen=True)
class FullFinetuning(Hparams):
    """Full finetuning (backbone masks kept), one run per seed; ``lr`` per downstream dataset where
    it differs from the recipe's."""

    recipe: str
    seeds: list[int]
    lr: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ScratchBaseline(Hparams):
    """The upstream's architecture trained from scratch on each downstream dataset, one run per seed."""

    recipe: str
    seeds: list[int]
