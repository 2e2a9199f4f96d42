"""The one-shot magnitude pruning study's configuration: per dataset x model, a dense model
pruned once (layerwise or global) at each sparsity and finetuned, every seed."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ...config.common import ConfigError, format_sparsity, reference
from ...config.shared import SharedConfig, experiment_for


@dataclasses.dataclass(frozen=True)
class OneshotExperiment:
    dataset: str
    model: str
    train_recipe: str
    finetune_recipe: str
    scopes: tuple[str, ...]
    sparsities: tuple[float, ...]
    seeds: tuple[int, ...]


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
class OneshotConfig:
    title: str
    experiments: tuple[OneshotExperiment, ...]

    def experiment(self, dataset: str, model: str) -> OneshotExperiment:
        return experiment_for(self.experiments, dataset, model, "oneshot")

    def runs(self) -> list[OneshotRun]:
        """Every evaluated checkpoint of the study, dense baselines included."""
        runs = []
        for e in self.experiments:
            for seed in e.seeds:
                runs.append(OneshotRun(e.dataset, e.model, "dense", 0.0, seed))
                runs.extend(OneshotRun(e.dataset, e.model, scope, s, seed) for scope in e.scopes for s in e.sparsities)
        return runs

    def used_datasets(self) -> set[str]:
        return {e.dataset for e in self.experiments}


def parse(raw: Mapping[str, Any], shared: SharedConfig) -> OneshotConfig | None:
    """The typed section (None when disabled); one-shot is on unless ``enabled: false``."""
    if not raw.get("enabled", True):
        return None
    experiments, seen = [], set()
    for i, e in enumerate(raw.get("experiments", [])):
        key = f"oneshot.experiments[{i}]"
        reference(e["dataset"], shared.datasets, f"{key}.dataset", "datasets")
        reference(e["model"], shared.models, f"{key}.model", "models")
        reference(e["train_recipe"], shared.recipes, f"{key}.train_recipe", "recipes")
        reference(e["finetune_recipe"], shared.recipes, f"{key}.finetune_recipe", "recipes")
        if (e["dataset"], e["model"]) in seen:
            raise ConfigError(f"{key}: a second experiment for dataset {e['dataset']!r} and model {e['model']!r}; merge them")
        seen.add((e["dataset"], e["model"]))
        experiments.append(
            OneshotExperiment(
                dataset=e["dataset"],
                model=e["model"],
                train_recipe=e["train_recipe"],
                finetune_recipe=e["finetune_recipe"],
                scopes=tuple(e.get("scopes", ("layerwise", "global"))),
                sparsities=tuple(float(s) for s in e["sparsities"]),
                seeds=tuple(int(s) for s in e.get("seeds", (0,))),
            )
        )
    return OneshotConfig(title=str(raw.get("title", "One-shot magnitude pruning")), experiments=tuple(experiments))
