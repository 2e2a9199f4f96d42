"""The path-norm study's configuration (Gonon et al., ICLR 2024): analysis of training runs,
the Theorem 3.1 bound, pretrained models, IMP with rewinding and growing training subsets."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from ...config.common import ConfigError, reference
from ...config.hparams import Hparams, HparamsError
from ...config.shared import SchemaBinding, SharedConfig, typed
from .options import CONVENTIONS, QS, AnalysisHparams, BoundSetting, Convention, PretrainedOptions

__all__ = [
    "SCHEMA_BINDINGS",
    "ImpStudy",
    "PathnormConfig",
    "PathnormOptions",
    "PretrainedModel",
    "SubsetStudy",
    "parse",
]


@dataclasses.dataclass(frozen=True)
class PathnormOptions(Hparams):
    """The section's own options (its parts are typed apart)."""

    title: str = "Path-norms"
    qs: tuple[float, ...] = QS
    conventions: tuple[Convention, ...] = CONVENTIONS  # of the pretrained-model tables
    gap: Literal["running", "eval"] = "running"  # train measure of Figures 4-5's gaps: the original's or eval mode


@dataclasses.dataclass(frozen=True)
class PretrainedModel(Hparams):
    """A trained model whose path-norms and margins the path-norm study reports: published
    torchvision ``weights`` (local hub cache) or one of our dense training runs."""

    name: str
    weights: str | None = None
    model: str | None = None
    recipe: str | None = None
    seed: int = 0

    def validate(self, path: str) -> None:
        if (self.weights is None) == (self.model is None):
            raise HparamsError(f"{path}: give either weights (torchvision) or model + recipe (a dense run of ours)")
        if self.model is not None and self.recipe is None:
            raise HparamsError(f"{path}: model {self.model!r} needs the recipe it was trained with")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImpStudy(Hparams):
    """``pathnorm.imp``: IMP with rewinding (Figure 4)."""

    dataset: str
    model: str
    recipe: str
    seeds: tuple[int, ...] = (0,)
    rounds: int  # pruning rounds after the dense round 0
    rewind_epoch: int = 5
    conv_fraction: float = 0.2
    linear_fraction: float = 0.1
    scope: Literal["layerwise", "global"] = "layerwise"

    def sparsity(self, round_index: int) -> tuple[float, float]:
        """Nominal sparsity of the body layers and of the last linear layer after a round."""
        return 1 - (1 - self.conv_fraction) ** round_index, 1 - (1 - self.linear_fraction) ** round_index


@dataclasses.dataclass(frozen=True, kw_only=True)
class SubsetStudy(Hparams):
    """``pathnorm.subsets``: dense training on growing seeded fractions of the data (Figure 5)."""

    dataset: str
    model: str
    recipe: str
    fractions: tuple[float, ...]
    seeds: tuple[int, ...] = (0,)


# Where each class's options sit in the schema's pathnorm section (tests/test_study_configs.py).
SCHEMA_BINDINGS: tuple[SchemaBinding, ...] = (
    (PathnormOptions, (), {"enabled", "analysis", "bound", "pretrained", "imp", "subsets"}),
    (AnalysisHparams, ("properties", "analysis"), set()),
    (BoundSetting, ("properties", "bound", "items"), set()),
    (PretrainedOptions, ("properties", "pretrained"), {"dataset", "models"}),
    (PretrainedModel, ("properties", "pretrained", "properties", "models", "items"), set()),
    (ImpStudy, ("properties", "imp"), set()),
    (SubsetStudy, ("properties", "subsets"), set()),
)


def as_stated(values: Hparams, keys: Sequence[str]) -> dict[str, Any]:
    """``values`` as a rule param: the keys in the order the config states them (the schema appends
    its defaults), then any other field that is set. Snakemake compares params by ``repr``, so this
    keeps them identical to those of the runs made when the options were passed on untyped."""
    resolved = values.to_dict()
    return {**{k: resolved[k] for k in keys}, **{k: v for k, v in resolved.items() if k not in keys and v is not None}}


@dataclasses.dataclass(frozen=True)
class PathnormConfig:
    """The path-norm study (Gonon et al. 2024): any part left out of the config is not run."""

    options: PathnormOptions
    analysis: AnalysisHparams
    bound: tuple[BoundSetting, ...]
    pretrained_dataset: str | None
    pretrained: tuple[PretrainedModel, ...]
    pretrained_options: PretrainedOptions
    imp: ImpStudy | None
    subsets: SubsetStudy | None
    # the order of the keys the config states (see as_stated)
    analysis_keys: tuple[str, ...] = ()
    bound_keys: tuple[tuple[str, ...], ...] = ()
    pretrained_keys: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return self.options.title

    @property
    def qs(self) -> tuple[float, ...]:
        return self.options.qs

    @property
    def conventions(self) -> tuple[str, ...]:
        return self.options.conventions

    @property
    def gap(self) -> str:
        return self.options.gap

    def analysis_spec(self) -> dict[str, Any]:
        """The rule param ``analysis`` (an :class:`~.options.AnalysisSpec`): ``qs`` first, then ``pathnorm.analysis``."""
        return {"qs": list(self.qs), **as_stated(self.analysis, self.analysis_keys)}

    def bound_settings(self) -> list[dict[str, Any]]:
        return [as_stated(s, keys) for s, keys in zip(self.bound, self.bound_keys)]

    def pretrained_spec(self, entry: PretrainedModel) -> dict[str, Any]:
        """The rule param ``options`` of one pretrained model (a :class:`~.options.PretrainedSpec`)."""
        return {
            "weights": entry.weights,
            "qs": list(self.qs),
            "conventions": list(self.conventions),
            **as_stated(self.pretrained_options, self.pretrained_keys),
        }

    def used_datasets(self) -> set[str]:
        used = {s.dataset for s in (self.imp, self.subsets) if s is not None}
        if self.pretrained and self.pretrained_dataset is not None:
            used.add(self.pretrained_dataset)
        return used


def parse(raw: Mapping[str, Any], shared: SharedConfig) -> PathnormConfig | None:
    if not raw.get("enabled", True):
        return None
    parts = ("enabled", "analysis", "bound", "pretrained", "imp", "subsets")
    options = typed(PathnormOptions, {k: v for k, v in raw.items() if k not in parts}, "pathnorm")
    imp = subsets = None
    for key in ("imp", "subsets"):
        part = raw.get(key)
        if part is None:
            continue
        reference(part["dataset"], shared.datasets, f"pathnorm.{key}.dataset", "datasets")
        reference(part["model"], shared.models, f"pathnorm.{key}.model", "models")
        reference(part["recipe"], shared.recipes, f"pathnorm.{key}.recipe", "recipes")
    if "imp" in raw:
        imp = typed(ImpStudy, raw["imp"], "pathnorm.imp")
        epochs = shared.recipes[imp.recipe].epochs
        if not 1 <= imp.rewind_epoch < epochs:
            raise ConfigError(f"pathnorm.imp.rewind_epoch: {imp.rewind_epoch} must be in [1, {epochs}) (recipe epochs)")
    if "subsets" in raw:
        subsets = typed(SubsetStudy, raw["subsets"], "pathnorm.subsets")
    pre_raw = raw.get("pretrained", {})
    pretrained = []
    for i, entry in enumerate(pre_raw.get("models", [])):
        key = f"pathnorm.pretrained.models[{i}]"
        model = typed(PretrainedModel, entry, key)
        if model.model is not None and model.recipe is not None:  # one without the other: refused by validate
            reference(model.model, shared.models, f"{key}.model", "models")
            reference(model.recipe, shared.recipes, f"{key}.recipe", "recipes")
        pretrained.append(model)
    names = [p.name for p in pretrained]
    if len(set(names)) != len(names):
        raise ConfigError(f"pathnorm.pretrained.models: names must be unique, got {names}")
    dataset = pre_raw.get("dataset")
    if pretrained:
        if dataset is None:
            raise ConfigError("pathnorm.pretrained.dataset: name the dataset whose train split gives the margins")
        reference(dataset, shared.datasets, "pathnorm.pretrained.dataset", "datasets")
    pre_options = {k: v for k, v in pre_raw.items() if k not in ("models", "dataset")}
    analysis_raw = raw.get("analysis", {})
    bound_raw = raw.get("bound", ())
    return PathnormConfig(
        options=options,
        analysis=typed(AnalysisHparams, analysis_raw, "pathnorm.analysis"),
        bound=tuple(typed(BoundSetting, s, f"pathnorm.bound[{i}]") for i, s in enumerate(bound_raw)),
        pretrained_dataset=dataset,
        pretrained=tuple(pretrained),
        pretrained_options=typed(PretrainedOptions, pre_options, "pathnorm.pretrained"),
        imp=imp,
        subsets=subsets,
        analysis_keys=tuple(analysis_raw),
        bound_keys=tuple(tuple(s) for s in bound_raw),
        pretrained_keys=tuple(pre_options),
    )
