"""The dynamic sparse training study's configuration (Mostafa & Wang, ICML 2019)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ...config.common import ConfigError, format_sparsity, reference
from ...config.shared import SharedConfig, check_experiment, experiment_for


@dataclasses.dataclass(frozen=True)
class DstExperiment:
    """One model on one dataset: every method x sparsity x seed (dense once per seed)."""

    dataset: str
    model: str
    recipe: str  # dsr, set, tied, dense
    long_recipe: str  # static and thin dense (the paper trains them longer)
    deepr_recipe: str  # DeepR (the paper: no weight decay, an L1 term instead)
    methods: tuple[str, ...]
    sparsities: tuple[float, ...]
    seeds: tuple[int, ...]
    options: Mapping[str, Any]  # sparse_layers, granularity, period, stop_epoch, np_target, set_fraction, deepr, thin, gradual

    def recipe_of(self, method: str) -> str:
        if method in self.options.get("method_recipes", {}):
            return self.options["method_recipes"][method]
        if method in ("static", "thin_dense"):
            return self.long_recipe
        if method == "deepr":
            return self.deepr_recipe
        if method == "gradual":
            return self.options["gradual"]["recipe"]
        return self.recipe


@dataclasses.dataclass(frozen=True)
class DstRun:
    dataset: str
    model: str
    method: str
    sparsity: float
    seed: int

    @property
    def sparsity_str(self) -> str:
        return format_sparsity(self.sparsity)


@dataclasses.dataclass(frozen=True)
class DstConfig:
    title: str
    experiments: tuple[DstExperiment, ...]

    def experiment(self, dataset: str, model: str) -> DstExperiment:
        return experiment_for(self.experiments, dataset, model, "dst")

    def runs(self) -> list[DstRun]:
        out = []
        for e in self.experiments:
            for seed in e.seeds:
                for m in e.methods:
                    sparsities = (0.0,) if m == "dense" else e.sparsities
                    out += [DstRun(e.dataset, e.model, m, s, seed) for s in sparsities]
        return out

    def used_datasets(self) -> set[str]:
        return {e.dataset for e in self.experiments}


def parse(raw: Mapping[str, Any], shared: SharedConfig) -> DstConfig | None:
    if not raw.get("enabled", True):
        return None
    experiments, seen = [], set()
    for i, e in enumerate(raw.get("experiments", [])):
        key = f"dst.experiments[{i}]"
        check_experiment(e, key, shared, ("recipe", "long_recipe", "deepr_recipe"), seen)
        for method, recipe in e.get("method_recipes", {}).items():
            reference(recipe, shared.recipes, f"{key}.method_recipes.{method}", "recipes")
        options = {k: v for k, v in e.items() if k not in ("dataset", "model", "recipe", "long_recipe", "deepr_recipe",
                                                           "methods", "sparsities", "seeds")}  # fmt: skip
        if "gradual" in e["methods"]:
            g = e.get("gradual")
            if not g:
                raise ConfigError(f"{key}.gradual: the gradual method needs gradual: {{recipe, dense_recipe, ...}}")
            for part in ("recipe", "dense_recipe"):
                reference(g[part], shared.recipes, f"{key}.gradual.{part}", "recipes")
        arch = shared.models[e["model"]].arch
        if options.get("sparse_layers", "paper") == "paper" and arch not in ("wrn", "resnet50", "lenet300_100"):
            raise ConfigError(f"{key}.sparse_layers: the paper's sparse-layer set is defined for wrn, resnet50 and "
                              f"lenet300_100, not {arch!r}; give conv_fc or a list of parameter names")  # fmt: skip
        experiments.append(DstExperiment(
            e["dataset"], e["model"], e["recipe"], e.get("long_recipe", e["recipe"]), e.get("deepr_recipe", e["recipe"]),
            tuple(e["methods"]), tuple(float(s) for s in e["sparsities"]), tuple(e["seeds"]), options,
        ))  # fmt: skip
    return DstConfig(title=str(raw.get("title", "Dynamic sparse training")), experiments=tuple(experiments))
