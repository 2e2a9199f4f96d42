"""The dynamic sparse training study's configuration (Mostafa & Wang, ICML 2019)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ...config.bundles import GrowthHparams, SnfsHparams
from ...config.common import ConfigError, format_sparsity, reference
from ...config.shared import ExperimentGrid, SchemaBinding, SharedConfig, parse_experiments, typed
from .options import GROWTH_METHODS, DeepRHparams, DstOptions, DstSection, GradualHparams, ThinHparams

# The grid of an experiment; every other key is an option (:class:`DstOptions`).
GRID = ("dataset", "model", "recipe", "long_recipe", "deepr_recipe", "methods", "sparsities", "seeds")
_EXPERIMENT = ("properties", "experiments", "items")
SCHEMA_BINDINGS: tuple[SchemaBinding, ...] = (
    (DstSection, (), {"experiments"}),
    (DstOptions, _EXPERIMENT, set(GRID)),
    (DeepRHparams, (*_EXPERIMENT, "properties", "deepr"), set()),
    (ThinHparams, (*_EXPERIMENT, "properties", "thin"), set()),
    (GrowthHparams, (*_EXPERIMENT, "properties", "rigl"), set()),
    (SnfsHparams, (*_EXPERIMENT, "properties", "snfs"), set()),
    (GradualHparams, (*_EXPERIMENT, "properties", "gradual"), set()),
)


@dataclasses.dataclass(frozen=True)
class DstExperiment:
    """One model on one dataset: every method x sparsity x seed (dense once per seed)."""

    dataset: str
    model: str
    recipe: str  # dsr, set, rigl, snfs, tied, dense
    long_recipe: str  # static and thin dense (the paper trains them longer)
    deepr_recipe: str  # DeepR (the paper: no weight decay, an L1 term instead)
    methods: tuple[str, ...]
    sparsities: tuple[float, ...]
    seeds: tuple[int, ...]
    options: DstOptions
    # The option keys as validated (schema defaults filled in, in the config's key order): the rules'
    # ``options`` param. Snakemake compares params by repr, so this stays the mapping it has always
    # been (``options.to_dict()`` orders keys by field: every DST job would rerun); jobs type it again.
    option_params: Mapping[str, Any]

    def recipe_of(self, method: str) -> str:
        if method in self.options.method_recipes:
            return self.options.method_recipes[method]
        if method in ("static", "thin_dense"):
            return self.long_recipe
        if method == "deepr":
            return self.deepr_recipe
        if method == "gradual":
            return self.gradual.recipe
        return self.recipe

    @property
    def gradual(self) -> GradualHparams:
        """The gradual block (:func:`parse` checks it is there when the gradual method is)."""
        if self.options.gradual is None:
            raise ConfigError(
                f"dst {self.dataset}/{self.model}: the gradual method needs gradual: {{recipe, dense_recipe, ...}}"
            )
        return self.options.gradual


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
class DstConfig(ExperimentGrid[DstExperiment]):
    study = "dst"

    def runs(self) -> list[DstRun]:
        out = []
        for e in self.experiments:
            for seed in e.seeds:
                for m in e.methods:
                    sparsities = (0.0,) if m == "dense" else e.sparsities
                    out += [DstRun(e.dataset, e.model, m, s, seed) for s in sparsities]
        return out


def parse(raw: Mapping[str, Any], shared: SharedConfig) -> DstConfig | None:
    section = typed(DstSection, {k: v for k, v in raw.items() if k != "experiments"}, "dst")
    if not section.enabled:
        return None

    def experiment(e: Mapping[str, Any], key: str) -> DstExperiment:
        params = {k: v for k, v in e.items() if k not in GRID}
        options = typed(DstOptions, params, key)
        for method, recipe in options.method_recipes.items():
            reference(recipe, shared.recipes, f"{key}.method_recipes.{method}", "recipes")
        if "gradual" in e["methods"]:
            if options.gradual is None:
                raise ConfigError(f"{key}.gradual: the gradual method needs gradual: {{recipe, dense_recipe, ...}}")
            for part in ("recipe", "dense_recipe"):
                reference(getattr(options.gradual, part), shared.recipes, f"{key}.gradual.{part}", "recipes")
        growth = [m for m in GROWTH_METHODS if m in e["methods"]]
        if growth and options.sparsity_fc is not None:
            raise ConfigError(
                f"{key}.sparsity_fc: {' and '.join(growth)} spread the density over layers by "
                f"{'/'.join(f'{m}.densities' for m in growth)} (uniform or erk); remove sparsity_fc or {', '.join(growth)}"
            )
        arch = shared.models[e["model"]].arch
        if options.sparse_layers == "paper" and arch not in ("wrn", "resnet50", "lenet300_100"):
            raise ConfigError(
                f"{key}.sparse_layers: the paper's sparse-layer set is defined for wrn, resnet50 and "
                f"lenet300_100, not {arch!r}; give conv_fc or a list of parameter names"
            )
        return DstExperiment(
            e["dataset"],
            e["model"],
            e["recipe"],
            e.get("long_recipe", e["recipe"]),
            e.get("deepr_recipe", e["recipe"]),
            tuple(e["methods"]),
            tuple(float(s) for s in e["sparsities"]),
            tuple(e["seeds"]),
            options,
            params,
        )

    experiments = parse_experiments(raw, "dst", shared, experiment, ("recipe", "long_recipe", "deepr_recipe"))
    return DstConfig(title=section.title, experiments=experiments)
