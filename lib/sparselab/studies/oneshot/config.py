"""The one-shot magnitude pruning study's configuration: per dataset x model, a dense model
pruned once (layerwise or global) at each sparsity and finetuned, every seed."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from ...config.bundles import StudySection
from ...config.common import format_sparsity
from ...config.hparams import Hparams
from ...config.shared import ExperimentGrid, SchemaBinding, SharedConfig, parse_experiments, typed

Scope = Literal["layerwise", "global"]


@dataclasses.dataclass(frozen=True)
class OneshotOptions(StudySection):
    """The section's own options (its ``experiments`` are :class:`OneshotExperiment`)."""

    title: str = "One-shot magnitude pruning"


@dataclasses.dataclass(frozen=True)
class OneshotExperiment(Hparams):
    """One dataset x model of the grid: the dense model's recipe, the finetuning recipe, and the
    scopes x sparsities x seeds it is pruned at."""

    dataset: str
    model: str
    train_recipe: str
    finetune_recipe: str
    sparsities: tuple[float, ...]
    scopes: tuple[Scope, ...] = ("layerwise", "global")
    seeds: tuple[int, ...] = (0,)


# The typed options and where their schema sits (tests/test_study_configs.py keeps them equal).
SCHEMA_BINDINGS: tuple[SchemaBinding, ...] = (
    (OneshotOptions, (), {"experiments"}),
    (OneshotExperiment, ("properties", "experiments", "items"), set()),
)


@dataclasses.dataclass(frozen=True)
class OneshotRun:
    """One cell of the one-shot grid; ``scope == 'dense'`` is the unpruned baseline (sparsity 0)."""

    dataset: str
    model: str
    scope: str
    sparsity: float
    seed: int

    @property
    def sparsity_str(self) -> str:
        return format_sparsity(self.sparsity)


@dataclasses.dataclass(frozen=True)
class OneshotConfig(ExperimentGrid[OneshotExperiment]):
    study = "oneshot"

    def runs(self) -> list[OneshotRun]:
        """Every evaluated checkpoint of the study, dense baselines included."""
        runs = []
        for e in self.experiments:
            for seed in e.seeds:
                runs.append(OneshotRun(e.dataset, e.model, "dense", 0.0, seed))
                runs.extend(OneshotRun(e.dataset, e.model, scope, s, seed) for scope in e.scopes for s in e.sparsities)
        return runs


def parse(raw: Mapping[str, Any], shared: SharedConfig) -> OneshotConfig | None:
    """The typed section (None when disabled); one-shot is on unless ``enabled: false``."""
    options = typed(OneshotOptions, {k: v for k, v in raw.items() if k != "experiments"}, "oneshot")
    if not options.enabled:
        return None
    experiments = parse_experiments(
        raw, "oneshot", shared, lambda e, key: typed(OneshotExperiment, e, key), ("train_recipe", "finetune_recipe")
    )
    return OneshotConfig(title=options.title, experiments=experiments)
