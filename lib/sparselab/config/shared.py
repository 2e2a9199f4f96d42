"""What every study's configuration reads: compute, resources, and the named datasets, models and
recipes the studies refer to; the checks and lookups every study's experiments share."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Set
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from .bundles import ComputeHparams, DataHparams, ModelHparams, TrainHparams
from .catalog import ARCHS
from .common import ConfigError, reference
from .entry_names import remember_entry_names
from .hparams import Hparams, HparamsError

__all__ = [
    "SchemaBinding",
    "SharedConfig",
    "build_shared",
    "check_experiment",
    "parse_experiments",
    "Experiment",
    "ExperimentGrid",
    "typed",
]


@dataclasses.dataclass(frozen=True)
class SharedConfig:
    compute: ComputeHparams
    resources: Mapping[str, Any]
    datasets: Mapping[str, DataHparams]
    models: Mapping[str, ModelHparams]
    recipes: Mapping[str, TrainHparams]

    def runtime_minutes(self, dataset: str, epochs: int, attempt: int) -> int:
        """A job's time limit: epochs x minutes per epoch of the dataset's source, with a margin,
        growing with each retry (SLURM's unit: 1 minute)."""
        per_epoch = self.resources["epoch_minutes"].get(self.datasets[dataset].source, 1.0)
        base = self.resources.get("runtime_base_minutes", 5)
        return max(1, int(math.ceil(base + 1.5 * max(1, epochs) * per_epoch * attempt)))

    def mem_mb(self, dataset: str) -> int:
        """Memory of a job that loads ``dataset``."""
        return self.resources["mem_mb"].get(self.datasets[dataset].source, 8000)


H = TypeVar("H", bound=Hparams)
T = TypeVar("T")

# How a study's config module ties its typed options to the JSON schema (tests/test_study_configs.py):
# the class, the path of keys below the study's section, and the schema keys there that are structure
# (names of datasets, models, recipes, nested blocks parsed on their own) rather than options.
SchemaBinding = tuple[type, tuple[str, ...], Set[str]]  # the class: any dataclass


def typed(cls: type[H], data: Mapping[str, Any] | None, path: str) -> H:
    """``cls.from_dict(data)`` (defaults filled, unknown keys and wrong types refused), its error a
    :class:`ConfigError` naming the key path."""
    try:
        return cls.from_dict(data, path=path)
    except HparamsError as exc:
        raise ConfigError(str(exc)) from None


def _check_model(name: str, model: ModelHparams) -> None:
    path = f"models.{name}"
    if model.arch not in ARCHS:
        raise ConfigError(f"{path}.arch: unknown architecture {model.arch!r}; known: {', '.join(sorted(ARCHS))}")
    accepted = ARCHS[model.arch][1]
    unknown = sorted(set(model.kwargs) - set(accepted))
    if unknown:
        raise ConfigError(
            f"{path}.kwargs: {model.arch!r} does not accept {', '.join(map(repr, unknown))}; "
            f"accepted: {', '.join(accepted) or 'none'}"
        )


def build_shared(config: Mapping[str, Any]) -> SharedConfig:
    """The typed shared sections of a schema-validated config."""
    datasets = {n: typed(DataHparams, d, f"datasets.{n}") for n, d in config["datasets"].items()}
    remember_entry_names(datasets)  # errors of data builders then name datasets.<name>.root
    models = {n: typed(ModelHparams, m, f"models.{n}") for n, m in config["models"].items()}
    for name, model in models.items():
        _check_model(name, model)
    recipes = {n: typed(TrainHparams, r, f"recipes.{n}") for n, r in config["recipes"].items()}
    return SharedConfig(
        compute=typed(ComputeHparams, config.get("compute", {}), "compute"),
        resources=dict(config.get("resources", {})),
        datasets=datasets,
        models=models,
        recipes=recipes,
    )


class Experiment(Protocol):
    """What every study's experiment has: the dataset and the model it runs (one per pair)."""

    @property
    def dataset(self) -> str: ...

    @property
    def model(self) -> str: ...


E = TypeVar("E", bound=Experiment)


@dataclasses.dataclass(frozen=True)
class ExperimentGrid(Generic[E]):
    """A study's typed section: its report title and its experiments, one per dataset x model."""

    title: str
    experiments: tuple[E, ...]
    study: ClassVar[str] = "study"  # its name in messages

    def experiment(self, dataset: str, model: str) -> E:
        """The experiment of one dataset and model (wildcards of the study's rules)."""
        for e in self.experiments:
            if (e.dataset, e.model) == (dataset, model):
                return e
        raise KeyError(f"no {self.study} experiment for dataset {dataset!r} and model {model!r}")

    def used_datasets(self) -> set[str]:
        """The datasets the study reads (their roots are checked before a real run)."""
        return {e.dataset for e in self.experiments}


def parse_experiments(
    raw: Mapping[str, Any],
    study: str,
    shared: SharedConfig,
    experiment: Callable[[Mapping[str, Any], str], T],
    recipe_keys: Iterable[str] = (),
) -> tuple[T, ...]:
    """A section's ``experiments``, each checked (:func:`check_experiment`: its dataset, model and
    ``recipe_keys`` name defined entries; one per dataset x model), then parsed by
    ``experiment(raw, key)``, where ``key`` (``<study>.experiments[i]``) names it in errors."""
    seen: set[tuple[str, str]] = set()
    out = []
    for i, e in enumerate(raw.get("experiments", [])):
        key = f"{study}.experiments[{i}]"
        check_experiment(e, key, shared, recipe_keys, seen)
        out.append(experiment(e, key))
    return tuple(out)


def check_experiment(
    e: Mapping[str, Any], key: str, shared: SharedConfig, recipe_keys: Iterable[str], seen: set[tuple[str, str]]
) -> None:
    """Dataset, model and recipe names of one experiment exist; one experiment per dataset x model."""
    reference(e["dataset"], shared.datasets, f"{key}.dataset", "datasets")
    reference(e["model"], shared.models, f"{key}.model", "models")
    for part in recipe_keys:
        if part in e:
            reference(e[part], shared.recipes, f"{key}.{part}", "recipes")
    if (e["dataset"], e["model"]) in seen:
        raise ConfigError(
            f"{key}: a second experiment for dataset {e['dataset']!r} and model {e['model']!r}; merge them"
        )
    seen.add((e["dataset"], e["model"]))
