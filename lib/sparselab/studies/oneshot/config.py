"""The one-shot magnitude pruning study's configuration: per dataset x model, a dense model
pruned once (layerwise or global) at each sparsity and finetuned, every seed; optionally N:M
(``nm``): pruned once to N:M and finetuned, and/or trained to N:M from dense with SR-STE."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from ...config.bundles import StudySection
from ...config.common import ConfigError, format_sparsity, reference
from ...config.hparams import Hparams, HparamsError
from ...config.shared import ExperimentGrid, SchemaBinding, SharedConfig, parse_experiments, typed

Scope = Literal["layerwise", "global"]
NmMethod = Literal["oneshot", "srste"]
# The scope (directory) of each N:M method's runs; their sparsity is 1 - N/M.
NM_SCOPES: dict[str, str] = {"oneshot": "nm_oneshot", "srste": "nm_srste"}


@dataclasses.dataclass(frozen=True)
class OneshotOptions(StudySection):
    """The section's own options (its ``experiments`` are :class:`OneshotExperiment`)."""

    title: str = "One-shot magnitude pruning"


@dataclasses.dataclass(frozen=True)
class SrsteHparams(Hparams):
    """SR-STE (Zhou et al., ICLR 2021) from the dense model: ``decay`` is the sparse-refined
    regulariser lambda_W (0: plain STE), the mask is re-selected from the dense weights every
    ``period`` steps (null: the initial mask stays), trained with ``recipe`` (null: the
    experiment's finetune recipe). ``ramp`` > 0 makes it gradual: pruned weights fade out linearly
    over that fraction of the run (Kao et al. 2022's decaying mask) instead of vanishing at step 0."""

    decay: float = 2e-4
    period: int | None = 1
    recipe: str | None = None
    ramp: float = 0.0

    def validate(self, path: str) -> None:
        if self.decay < 0:
            raise HparamsError(f"{path}.decay: {self.decay} must be >= 0 (0 is the plain straight-through estimator)")
        if self.period is not None and self.period < 1:
            raise HparamsError(f"{path}.period: {self.period} must be a positive number of steps, or null (fixed mask)")
        if not 0.0 <= self.ramp <= 1.0:
            raise HparamsError(
                f"{path}.ramp: {self.ramp} must be a fraction of the run's steps in [0, 1] (0: no fading)"
            )


@dataclasses.dataclass(frozen=True)
class NmHparams(Hparams):
    """N:M semi-structured runs of an experiment (in every group of M consecutive weights along a
    layer's inputs, N stay), on the layers that can be N:M (the others stay dense): ``oneshot``
    prunes the dense model once by magnitude and finetunes it, ``srste`` trains it with SR-STE."""

    n: int = 2
    m: int = 4
    methods: tuple[NmMethod, ...] = ("oneshot", "srste")
    srste: SrsteHparams = dataclasses.field(default_factory=SrsteHparams)

    def validate(self, path: str) -> None:
        if not 1 <= self.n < self.m:
            raise HparamsError(f"{path}: N:M needs 1 <= n < m, got n={self.n}, m={self.m} (e.g. n: 2, m: 4)")
        if not self.methods or len(set(self.methods)) != len(self.methods):
            raise HparamsError(f"{path}.methods: name each of oneshot, srste at most once, at least one")

    @property
    def sparsity(self) -> float:
        """The fraction of an N:M layer's weights pruned: 1 - N/M."""
        return 1 - self.n / self.m


@dataclasses.dataclass(frozen=True)
class OneshotExperiment(Hparams):
    """One dataset x model of the grid: the dense model's recipe, the finetuning recipe, and the
    scopes x sparsities x seeds it is pruned at; ``nm``: its N:M runs (none by default)."""

    dataset: str
    model: str
    train_recipe: str
    finetune_recipe: str
    sparsities: tuple[float, ...]
    scopes: tuple[Scope, ...] = ("layerwise", "global")
    seeds: tuple[int, ...] = (0,)
    nm: NmHparams | None = None

    @property
    def srste_recipe(self) -> str:
        """The SR-STE run's recipe: ``nm.srste.recipe``, else the finetune recipe."""
        recipe = self.nm.srste.recipe if self.nm is not None else None
        return recipe or self.finetune_recipe


_EXPERIMENT = ("properties", "experiments", "items")
# The typed options and where their schema sits (tests/test_study_configs.py keeps them equal).
SCHEMA_BINDINGS: tuple[SchemaBinding, ...] = (
    (OneshotOptions, (), {"experiments"}),
    (OneshotExperiment, _EXPERIMENT, set()),
    (NmHparams, (*_EXPERIMENT, "properties", "nm"), set()),
    (SrsteHparams, (*_EXPERIMENT, "properties", "nm", "properties", "srste"), set()),
)


@dataclasses.dataclass(frozen=True)
class OneshotRun:
    """One cell of the one-shot grid; ``scope == 'dense'`` is the unpruned baseline (sparsity 0),
    ``nm_oneshot``/``nm_srste`` the N:M runs (sparsity 1 - N/M)."""

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
                if e.nm is not None:
                    runs.extend(OneshotRun(e.dataset, e.model, NM_SCOPES[m], e.nm.sparsity, seed) for m in e.nm.methods)
        return runs

    def has_nm(self) -> bool:
        return any(e.nm is not None for e in self.experiments)


def parse(raw: Mapping[str, Any], shared: SharedConfig) -> OneshotConfig | None:
    """The typed section (None when disabled); one-shot is on unless ``enabled: false``."""
    options = typed(OneshotOptions, {k: v for k, v in raw.items() if k != "experiments"}, "oneshot")
    if not options.enabled:
        return None
    experiments = parse_experiments(
        raw, "oneshot", shared, lambda e, key: _experiment(e, key, shared), ("train_recipe", "finetune_recipe")
    )
    return OneshotConfig(title=options.title, experiments=experiments)


def _experiment(raw: Mapping[str, Any], key: str, shared: SharedConfig) -> OneshotExperiment:
    """One experiment typed; its SR-STE recipe must exist and, with a changing mask, select its last epoch."""
    # The block typed on its own first: inside ``NmHparams | None`` its errors would read "not of type".
    nm = typed(NmHparams, raw["nm"], f"{key}.nm") if raw.get("nm") is not None else None
    e = typed(OneshotExperiment, {**raw, "nm": nm}, key)
    if e.nm is None or "srste" not in e.nm.methods:
        return e
    where = f"{key}.nm.srste.recipe" if e.nm.srste.recipe else f"{key}.finetune_recipe"
    reference(e.srste_recipe, shared.recipes, where, "recipes")
    select = shared.recipes[e.srste_recipe].select
    if e.nm.srste.period is not None and select != "last":
        raise ConfigError(
            f"{where}: SR-STE with a changing mask needs a recipe with select: last (recipe "
            f"{e.srste_recipe!r} selects {select}); or set {key}.nm.srste.period: null"
        )
    if e.nm.srste.ramp and select != "last":
        raise ConfigError(
            f"{where}: gradual SR-STE (ramp {e.nm.srste.ramp}) needs a recipe with select: last (recipe "
            f"{e.srste_recipe!r} selects {select}: an epoch inside the ramp is not yet N:M); or set {key}.nm.srste.ramp: 0"
        )
    return e
