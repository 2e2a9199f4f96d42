"""The gradient-flow pruning study's configuration (Lubana & Dick, ICLR 2021)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ...config.common import ConfigError, format_sparsity
from ...config.shared import ExperimentGrid, SchemaBinding, SharedConfig, parse_experiments, typed
from .options import GradflowOptions


@dataclasses.dataclass(frozen=True)
class GradflowExperiment:
    """One model on one dataset: every measure x target x seed, pruned in ``rounds`` rounds."""

    dataset: str
    model: str
    round_recipe: str  # one round's training (its epochs are the epochs per round)
    final_recipe: str  # training after the last round
    dense_recipe: str | None  # optional dense baseline from scratch (the "before" row)
    measures: tuple[str, ...]
    targets: tuple[float, ...]
    rounds: int
    seeds: tuple[int, ...]
    options: GradflowOptions

    def prune_spec(self, measure: str, target: float) -> dict[str, Any]:
        """Keyword arguments of ``PruneSpec`` (kept as plain data: the config layer has no torch)."""
        return {"measure": measure, "target": float(target), "rounds": self.rounds, **self.options.to_dict()}


@dataclasses.dataclass(frozen=True)
class GradflowRun:
    dataset: str
    model: str
    measure: str
    target: float
    seed: int

    @property
    def target_str(self) -> str:
        return format_sparsity(self.target)


@dataclasses.dataclass(frozen=True)
class GradflowConfig(ExperimentGrid[GradflowExperiment]):
    """The study's section: its defaults are the schema's (``SCHEMA_BINDINGS``)."""

    title: str = "Gradient-flow structured pruning"
    experiments: tuple[GradflowExperiment, ...] = ()
    study = "gradflow"

    def runs(self) -> list[GradflowRun]:
        return [
            GradflowRun(e.dataset, e.model, m, t, s)
            for e in self.experiments
            for m in e.measures
            for t in e.targets
            for s in e.seeds
        ]


# An experiment's keys that are not options: what runs (the grid) rather than how each run prunes.
_EXPERIMENT_KEYS = {
    "dataset",
    "model",
    "round_recipe",
    "final_recipe",
    "dense_recipe",
    "measures",
    "targets",
    "rounds",
    "seeds",
}
# Every option of the section is typed, with the schema's defaults (tests/test_study_configs.py).
SCHEMA_BINDINGS: tuple[SchemaBinding, ...] = (
    (GradflowConfig, (), {"enabled"}),
    (GradflowOptions, ("properties", "experiments", "items"), _EXPERIMENT_KEYS),
)


def parse(raw: Mapping[str, Any], shared: SharedConfig) -> GradflowConfig | None:
    if not raw.get("enabled", True):
        return None

    def experiment(e: Mapping[str, Any], key: str) -> GradflowExperiment:
        if shared.recipes[e["round_recipe"]].epochs < 1:
            raise ConfigError(f"{key}.round_recipe: {e['round_recipe']!r} trains 0 epochs; a round needs >= 1")
        options = typed(GradflowOptions, {k: v for k, v in e.items() if k not in _EXPERIMENT_KEYS}, key)
        return GradflowExperiment(
            e["dataset"],
            e["model"],
            e["round_recipe"],
            e["final_recipe"],
            e.get("dense_recipe"),
            tuple(e["measures"]),
            tuple(float(t) for t in e["targets"]),
            int(e["rounds"]),
            tuple(e["seeds"]),
            options,
        )

    experiments = parse_experiments(
        raw, "gradflow", shared, experiment, ("round_recipe", "final_recipe", "dense_recipe")
    )
    return GradflowConfig(title=str(raw.get("title", GradflowConfig.title)), experiments=experiments)
