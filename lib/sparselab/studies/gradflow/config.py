"""The gradient-flow pruning study's configuration (Lubana & Dick, ICLR 2021)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ...config.common import ConfigError, format_sparsity
from ...config.shared import SharedConfig, check_experiment, experiment_for


# Prune options of a gradflow experiment, with the original's defaults (sparselab.studies.gradflow.prune.PruneSpec).
GRADFLOW_OPTIONS = {
    "warmup_epochs": 0, "importance_batches": 20, "importance_batch_size": 128, "grasp_temperature": 200.0,
    "min_fraction": 0.05, "protect": [], "use_init": False, "use_l2": False, "track_batches": 20, "alpha": 0.8,
    "preserve_momentum": False,
}  # fmt: skip


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
    options: Mapping[str, Any]

    def prune_spec(self, measure: str, target: float) -> dict[str, Any]:
        """Keyword arguments of ``PruneSpec`` (kept as plain data: the config layer has no torch)."""
        return {"measure": measure, "target": float(target), "rounds": self.rounds,
                **{k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in self.options.items()}}  # fmt: skip


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
class GradflowConfig:
    title: str
    experiments: tuple[GradflowExperiment, ...]

    def experiment(self, dataset: str, model: str) -> GradflowExperiment:
        return experiment_for(self.experiments, dataset, model, "gradflow")

    def runs(self) -> list[GradflowRun]:
        return [GradflowRun(e.dataset, e.model, m, t, s) for e in self.experiments
                for m in e.measures for t in e.targets for s in e.seeds]  # fmt: skip

    def used_datasets(self) -> set[str]:
        return {e.dataset for e in self.experiments}


def parse(raw: Mapping[str, Any], shared: SharedConfig) -> GradflowConfig | None:
    if not raw.get("enabled", True):
        return None
    experiments, seen = [], set()
    for i, e in enumerate(raw.get("experiments", [])):
        key = f"gradflow.experiments[{i}]"
        check_experiment(e, key, shared, ("round_recipe", "final_recipe", "dense_recipe"), seen)
        if shared.recipes[e["round_recipe"]].epochs < 1:
            raise ConfigError(f"{key}.round_recipe: {e['round_recipe']!r} trains 0 epochs; a round needs >= 1")
        options = {k: e.get(k, default) for k, default in GRADFLOW_OPTIONS.items()}
        if options["importance_batches"] * options["importance_batch_size"] < 1:
            raise ConfigError(f"{key}: importance_batches and importance_batch_size must be >= 1")
        experiments.append(GradflowExperiment(
            e["dataset"], e["model"], e["round_recipe"], e["final_recipe"], e.get("dense_recipe"),
            tuple(e["measures"]), tuple(float(t) for t in e["targets"]), int(e["rounds"]), tuple(e["seeds"]), options,
        ))  # fmt: skip
    return GradflowConfig(title=str(raw.get("title", "Gradient-flow structured pruning")), experiments=tuple(experiments))
