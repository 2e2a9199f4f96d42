"""The path-norm study's configuration (Gonon et al., ICLR 2024): analysis of training runs,
the Theorem 3.1 bound, pretrained models, IMP with rewinding and growing training subsets."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ...config.common import ConfigError, reference
from ...config.shared import SharedConfig


@dataclasses.dataclass(frozen=True)
class PretrainedModel:
    """A trained model whose path-norms and margins the path-norm study reports: published
    torchvision ``weights`` (local hub cache) or one of our dense training runs."""

    name: str
    weights: str | None = None
    model: str | None = None
    recipe: str | None = None
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class ImpStudy:
    dataset: str
    model: str
    recipe: str
    seeds: tuple[int, ...]
    rounds: int
    rewind_epoch: int
    conv_fraction: float
    linear_fraction: float
    scope: str

    def sparsity(self, round_index: int) -> tuple[float, float]:
        """Nominal sparsity of the body layers and of the last linear layer after a round."""
        return 1 - (1 - self.conv_fraction) ** round_index, 1 - (1 - self.linear_fraction) ** round_index


@dataclasses.dataclass(frozen=True)
class SubsetStudy:
    dataset: str
    model: str
    recipe: str
    fractions: tuple[float, ...]
    seeds: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class PathnormConfig:
    """The path-norm study (Gonon et al. 2024): any part left out of the config is not run."""

    title: str
    qs: tuple[float, ...]
    conventions: tuple[str, ...]
    gap: str  # train measure of Figures 4-5's gaps: "running" (the original's) or "eval"
    analysis: Mapping[str, Any]
    bound: tuple[Mapping[str, Any], ...]
    pretrained_dataset: str | None
    pretrained: tuple[PretrainedModel, ...]
    pretrained_options: Mapping[str, Any]
    imp: ImpStudy | None
    subsets: SubsetStudy | None

    def analysis_spec(self) -> dict[str, Any]:
        return {"qs": list(self.qs), **self.analysis}

    def used_datasets(self) -> set[str]:
        used = {s.dataset for s in (self.imp, self.subsets) if s is not None}
        if self.pretrained and self.pretrained_dataset is not None:
            used.add(self.pretrained_dataset)
        return used


def parse(raw: Mapping[str, Any], shared: SharedConfig) -> PathnormConfig | None:
    if not raw.get("enabled", True):
        return None
    imp = subsets = None
    for key in ("imp", "subsets"):
        part = raw.get(key)
        if part is None:
            continue
        reference(part["dataset"], shared.datasets, f"pathnorm.{key}.dataset", "datasets")
        reference(part["model"], shared.models, f"pathnorm.{key}.model", "models")
        reference(part["recipe"], shared.recipes, f"pathnorm.{key}.recipe", "recipes")
    if "imp" in raw:
        part = raw["imp"]
        epochs = shared.recipes[part["recipe"]].epochs
        if not 1 <= part["rewind_epoch"] < epochs:
            raise ConfigError(f"pathnorm.imp.rewind_epoch: {part['rewind_epoch']} must be in [1, {epochs}) (recipe epochs)")
        imp = ImpStudy(part["dataset"], part["model"], part["recipe"], tuple(part["seeds"]), part["rounds"],
                       part["rewind_epoch"], part["conv_fraction"], part["linear_fraction"], part["scope"])  # fmt: skip
    if "subsets" in raw:
        part = raw["subsets"]
        subsets = SubsetStudy(part["dataset"], part["model"], part["recipe"],
                              tuple(float(f) for f in part["fractions"]), tuple(part["seeds"]))  # fmt: skip
    pre_raw = raw.get("pretrained", {})
    pretrained = []
    for i, entry in enumerate(pre_raw.get("models", [])):
        key = f"pathnorm.pretrained.models[{i}]"
        if ("weights" in entry) == ("model" in entry):
            raise ConfigError(f"{key}: give either weights (torchvision) or model + recipe (a dense run of ours)")
        if "model" in entry:
            reference(entry["model"], shared.models, f"{key}.model", "models")
            if "recipe" not in entry:
                raise ConfigError(f"{key}: model {entry['model']!r} needs the recipe it was trained with")
            reference(entry["recipe"], shared.recipes, f"{key}.recipe", "recipes")
        pretrained.append(PretrainedModel(**entry))
    names = [p.name for p in pretrained]
    if len(set(names)) != len(names):
        raise ConfigError(f"pathnorm.pretrained.models: names must be unique, got {names}")
    dataset = pre_raw.get("dataset")
    if pretrained:
        if dataset is None:
            raise ConfigError("pathnorm.pretrained.dataset: name the dataset whose train split gives the margins")
        reference(dataset, shared.datasets, "pathnorm.pretrained.dataset", "datasets")
    return PathnormConfig(
        title=str(raw.get("title", "Path-norms")),
        qs=tuple(float(q) for q in raw["qs"]),
        conventions=tuple(raw["conventions"]),
        gap=str(raw["gap"]),
        analysis=dict(raw["analysis"]),
        bound=tuple(raw.get("bound", ())),
        pretrained_dataset=dataset,
        pretrained=tuple(pretrained),
        pretrained_options={k: v for k, v in pre_raw.items() if k not in ("models", "dataset")},
        imp=imp,
        subsets=subsets,
    )
