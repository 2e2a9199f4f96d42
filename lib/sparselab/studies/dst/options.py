"""The dynamic sparse training study's options, typed: the one place their defaults are stated.

An experiment of the ``dst`` section is its grid (dataset, model, recipes, methods, sparsities,
seeds: :mod:`.config`) plus these options, read by the jobs (:mod:`.sparse`, :mod:`.gradual`) through
:meth:`DstOptions.from_dict`. The JSON schema repeats the defaults for users and Snakemake;
``tests/test_study_configs.py`` keeps the two identical.

Standard library only: :mod:`.config` imports this at parse time, and the training jobs import it
without pulling in the workflow's config parsing.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from ...config.bundles import GrowthHparams, SnfsHparams, StudySection
from ...config.hparams import Hparams, HparamsError

__all__ = ["GROWTH_METHODS", "DeepRHparams", "DstOptions", "DstSection", "GradualHparams", "ThinHparams"]

# Drop-and-grow methods: their initial masks and schedule come from their own block (``rigl``,
# ``snfs``: :class:`~sparselab.config.bundles.GrowthHparams`), not from the DSR clock (``period``,
# ``stop_epoch``) nor ``sparsity_fc``.
GROWTH_METHODS = ("rigl", "snfs")

# Schedules are keyed by 0-based epoch: YAML gives int keys, the schema's defaults string keys (JSON
# object keys); the jobs convert both to int.
EpochKey = int | str


@dataclasses.dataclass(frozen=True)
class DstSection(StudySection):
    """The section's own keys (the experiments are parsed by :func:`.config.parse`)."""

    title: str = "Dynamic sparse training"


@dataclasses.dataclass(frozen=True)
class DeepRHparams(Hparams):
    """DeepR (Bellec et al.): step size, L1 coefficient and the temperature schedule."""

    eta: float = 0.01
    l1: float = 1e-5
    temperature: dict[EpochKey, float] = dataclasses.field(
        default_factory=lambda: {"0": 1e-5, "25": 1e-8, "80": 1e-12, "140": 1e-15}
    )


@dataclasses.dataclass(frozen=True)
class ThinHparams(Hparams):
    """Thin dense networks: the model kwarg scaled and its value per sparsity ('auto': the width whose
    dense network has the sparse network's learnable parameters)."""

    key: str = "auto"
    widths: Literal["auto"] | dict[float, float] = "auto"

    def validate(self, path: str) -> None:
        if self.widths != "auto" and self.key == "auto":
            raise HparamsError(f"{path}: widths given per sparsity: also name the model kwarg they set (key)")


@dataclasses.dataclass(frozen=True)
class GradualHparams(Hparams):
    """Gradual magnitude pruning (Zhu & Gupta) of a dense network of rules/train.smk."""

    recipe: str  # the pruning run's training
    dense_recipe: str  # the dense network pruned
    start: int = 0
    freq: int = 2
    iterations: int = 20
    schedule: Literal["cubic", "exponential"] = "cubic"
    by: Literal["fraction", "threshold"] = "fraction"
    output_layer: str | None = None
    output_cap: float = 0.9


@dataclasses.dataclass(frozen=True)
class DstOptions(Hparams):
    """Everything of one ``dst`` experiment but its grid: how sparse tensors are chosen and rewired,
    per-method recipes and L1 terms, and the DeepR, RigL, SNFS, thin dense and gradual blocks. The
    ``rigl`` and ``snfs`` defaults are their papers' (stated in ``config.bundles``)."""

    method_recipes: dict[str, str] = dataclasses.field(default_factory=dict)
    l1: dict[str, float] = dataclasses.field(default_factory=dict)
    sparse_layers: Literal["paper", "conv_fc"] | list[str] = "paper"
    sparsity_fc: float | None = None
    granularity: Literal["element", "row", "kernel"] = "element"
    period: dict[EpochKey, int] = dataclasses.field(
        default_factory=lambda: {"0": 100, "25": 200, "80": 400, "140": 800}
    )
    stop_epoch: int | None = None
    np_target: int = 20_000
    threshold: float = 1e-3
    big_new_weights: bool = False
    dsr_regrowth: Literal["proportional", "per_layer"] = "proportional"
    set_fraction: Literal["auto"] | dict[float, float] = "auto"
    deepr: DeepRHparams = dataclasses.field(default_factory=DeepRHparams)
    rigl: GrowthHparams = dataclasses.field(default_factory=GrowthHparams)
    snfs: SnfsHparams = dataclasses.field(default_factory=SnfsHparams)
    thin: ThinHparams = dataclasses.field(default_factory=ThinHparams)
    gradual: GradualHparams | None = None  # required by the gradual method

    @property
    def layers(self) -> str | tuple[str, ...]:
        """``sparse_layers`` as the specs take it (a name or a tuple of parameter names)."""
        return self.sparse_layers if isinstance(self.sparse_layers, str) else tuple(self.sparse_layers)
