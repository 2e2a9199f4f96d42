"""The validated workflow configuration: typed bundles, cross-references, run grids, root checks.

``rules/common.smk`` calls :func:`load_workflow_config` once at parse time. Every problem (a
typo'd key, a wrong type, an unknown architecture, a recipe name that is not defined, a missing
dataset root) raises :class:`ConfigError` with the config key's dotted path and the fix, before
any job starts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable, Mapping

from .bundles import ComputeHparams, DataHparams, ModelHparams, TrainHparams
from .catalog import ARCHS
from .common import ConfigError, format_sparsity
from .common import reference as _reference
from .hparams import HparamsError
from .entry_names import remember_entry_names
from .roots import DatasetRootError, check_dataset_root
from .transfer import TransferConfig, parse_transfer


def _dotted(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _schema_validator(path: Path):
    """What ``snakemake.utils.validate(config, path)`` builds for a local schema file: a Draft
    2020-12 validator that also fills in the ``default`` of each property, with ``$ref``s resolved
    against the file. The schema is read with libyaml's loader where present (Snakemake's
    pure-Python YAML reading of our schema cost ~0.2 s of every workflow parse); ``None`` for a
    schema of another draft (Snakemake then warns), which is left to Snakemake."""
    import yaml
    from jsonschema import Draft202012Validator, validators
    from referencing import Registry, Resource

    with open(path, encoding="utf-8") as f:
        schema = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if not isinstance(schema, dict) or schema.get("$schema") != Draft202012Validator.META_SCHEMA["$schema"]:
        return None
    schema["$id"] = path.as_uri()

    def retrieve(uri: str):
        from urllib.parse import urlparse
        from urllib.request import url2pathname

        with open(url2pathname(urlparse(uri).path), encoding="utf-8") as f:
            return Resource.from_contents(yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))

    registry = Registry(retrieve=retrieve).with_resource(uri=str(path), resource=Resource.from_contents(schema))
    properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, props, instance, subschema):
        for name, sub in props.items():
            if "default" in sub:
                instance.setdefault(name, sub["default"])
        yield from properties(validator, props, instance, subschema)

    return validators.extend(Draft202012Validator, {"properties": set_defaults})(schema, registry=registry)


def validate_schema(config: dict, schema: str | Path, source: str = "config") -> None:
    """Snakemake's JSON-schema validation (fills defaults), with a one-line error naming the key."""
    import jsonschema

    path = Path(schema).resolve()
    validator = _schema_validator(path)
    try:
        if validator is not None:
            validator.validate(config)
            return
        from snakemake.exceptions import WorkflowError
        from snakemake.utils import validate

        try:
            validate(config, str(path))
        except WorkflowError as exc:
            # Snakemake formats the jsonschema error into its message; the error itself is the context.
            if isinstance(exc.__context__, jsonschema.ValidationError):
                raise exc.__context__ from None
            raise
    except jsonschema.ValidationError as err:
        raise ConfigError(f"{source}: {_dotted(err.absolute_path)}: {err.message} (schema: {schema})") from None


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


def _experiment_for(experiments: Iterable[Any], dataset: str, model: str, study: str) -> Any:
    """The experiment of a study for one dataset and model (wildcards of its rules)."""
    for e in experiments:
        if (e.dataset, e.model) == (dataset, model):
            return e
    raise KeyError(f"no {study} experiment for dataset {dataset!r} and model {model!r}")


def _check_experiment(e: Mapping[str, Any], key: str, cfg: dict[str, Mapping[str, Any]], recipe_keys: Iterable[str],
                      seen: set[tuple[str, str]]) -> None:  # fmt: skip
    """Dataset, model and recipe names of one experiment exist; one experiment per dataset x model."""
    _reference(e["dataset"], cfg["datasets"], f"{key}.dataset", "datasets")
    _reference(e["model"], cfg["models"], f"{key}.model", "models")
    for part in recipe_keys:
        if part in e:
            _reference(e[part], cfg["recipes"], f"{key}.{part}", "recipes")
    if (e["dataset"], e["model"]) in seen:
        raise ConfigError(f"{key}: a second experiment for dataset {e['dataset']!r} and model {e['model']!r}; merge them")
    seen.add((e["dataset"], e["model"]))


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
        return _experiment_for(self.experiments, dataset, model, "gradflow")

    def runs(self) -> list[GradflowRun]:
        return [GradflowRun(e.dataset, e.model, m, t, s) for e in self.experiments
                for m in e.measures for t in e.targets for s in e.seeds]  # fmt: skip


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
        return _experiment_for(self.experiments, dataset, model, "dst")

    def runs(self) -> list[DstRun]:
        out = []
        for e in self.experiments:
            for seed in e.seeds:
                for m in e.methods:
                    sparsities = (0.0,) if m == "dense" else e.sparsities
                    out += [DstRun(e.dataset, e.model, m, s, seed) for s in sparsities]
        return out


@dataclasses.dataclass(frozen=True)
class WorkflowConfig:
    compute: ComputeHparams
    resources: Mapping[str, Any]
    datasets: Mapping[str, DataHparams]
    models: Mapping[str, ModelHparams]
    recipes: Mapping[str, TrainHparams]
    oneshot_enabled: bool
    oneshot_title: str
    oneshot: tuple[OneshotExperiment, ...]
    pathnorm: PathnormConfig | None = None
    gradflow: GradflowConfig | None = None
    dst: DstConfig | None = None
    transfer: TransferConfig | None = None

    # ---------------------------------------------------------------- queries
    def used_datasets(self) -> list[str]:
        used = {e.dataset for e in self.oneshot} if self.oneshot_enabled else set()
        pn = self.pathnorm
        if pn is not None:
            used |= {s.dataset for s in (pn.imp, pn.subsets) if s is not None}
            if pn.pretrained:
                used.add(pn.pretrained_dataset)  # type: ignore[arg-type]
        if self.gradflow is not None:
            used |= {e.dataset for e in self.gradflow.experiments}
        if self.dst is not None:
            used |= {e.dataset for e in self.dst.experiments}
        if self.transfer is not None:
            used |= self.transfer.used_datasets()
        return sorted(used)

    def oneshot_experiment(self, dataset: str, model: str) -> OneshotExperiment:
        for e in self.oneshot:
            if (e.dataset, e.model) == (dataset, model):
                return e
        raise KeyError(f"no oneshot experiment for dataset {dataset!r} and model {model!r}")

    def oneshot_runs(self) -> list[OneshotRun]:
        """Every evaluated checkpoint of the one-shot study, dense baselines included."""
        if not self.oneshot_enabled:
            return []
        runs = []
        for e in self.oneshot:
            for seed in e.seeds:
                runs.append(OneshotRun(e.dataset, e.model, "dense", 0.0, seed))
                runs.extend(OneshotRun(e.dataset, e.model, scope, s, seed) for scope in e.scopes for s in e.sparsities)
        return runs

    def epochs(self, recipe: str) -> int:
        return self.recipes[recipe].epochs


def _bundle(cls: type, data: Any, path: str) -> Any:
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


def _oneshot(raw: Mapping[str, Any], cfg: dict[str, Mapping[str, Any]]) -> tuple[OneshotExperiment, ...]:
    experiments, seen = [], set()
    for i, e in enumerate(raw.get("experiments", [])):
        key = f"oneshot.experiments[{i}]"
        _reference(e["dataset"], cfg["datasets"], f"{key}.dataset", "datasets")
        _reference(e["model"], cfg["models"], f"{key}.model", "models")
        _reference(e["train_recipe"], cfg["recipes"], f"{key}.train_recipe", "recipes")
        _reference(e["finetune_recipe"], cfg["recipes"], f"{key}.finetune_recipe", "recipes")
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
    return tuple(experiments)


def _pathnorm(raw: Mapping[str, Any], cfg: dict[str, Mapping[str, Any]]) -> PathnormConfig | None:
    if not raw.get("enabled", True):
        return None
    imp = subsets = None
    for key in ("imp", "subsets"):
        part = raw.get(key)
        if part is None:
            continue
        _reference(part["dataset"], cfg["datasets"], f"pathnorm.{key}.dataset", "datasets")
        _reference(part["model"], cfg["models"], f"pathnorm.{key}.model", "models")
        _reference(part["recipe"], cfg["recipes"], f"pathnorm.{key}.recipe", "recipes")
    if "imp" in raw:
        part = raw["imp"]
        epochs = cfg["recipes"][part["recipe"]].epochs
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
            _reference(entry["model"], cfg["models"], f"{key}.model", "models")
            if "recipe" not in entry:
                raise ConfigError(f"{key}: model {entry['model']!r} needs the recipe it was trained with")
            _reference(entry["recipe"], cfg["recipes"], f"{key}.recipe", "recipes")
        pretrained.append(PretrainedModel(**entry))
    names = [p.name for p in pretrained]
    if len(set(names)) != len(names):
        raise ConfigError(f"pathnorm.pretrained.models: names must be unique, got {names}")
    dataset = pre_raw.get("dataset")
    if pretrained:
        if dataset is None:
            raise ConfigError("pathnorm.pretrained.dataset: name the dataset whose train split gives the margins")
        _reference(dataset, cfg["datasets"], "pathnorm.pretrained.dataset", "datasets")
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


def _gradflow(raw: Mapping[str, Any], cfg: dict[str, Mapping[str, Any]]) -> GradflowConfig | None:
    if not raw.get("enabled", True):
        return None
    experiments, seen = [], set()
    for i, e in enumerate(raw.get("experiments", [])):
        key = f"gradflow.experiments[{i}]"
        _check_experiment(e, key, cfg, ("round_recipe", "final_recipe", "dense_recipe"), seen)
        if cfg["recipes"][e["round_recipe"]].epochs < 1:
            raise ConfigError(f"{key}.round_recipe: {e['round_recipe']!r} trains 0 epochs; a round needs >= 1")
        options = {k: e.get(k, default) for k, default in GRADFLOW_OPTIONS.items()}
        if options["importance_batches"] * options["importance_batch_size"] < 1:
            raise ConfigError(f"{key}: importance_batches and importance_batch_size must be >= 1")
        experiments.append(GradflowExperiment(
            e["dataset"], e["model"], e["round_recipe"], e["final_recipe"], e.get("dense_recipe"),
            tuple(e["measures"]), tuple(float(t) for t in e["targets"]), int(e["rounds"]), tuple(e["seeds"]), options,
        ))  # fmt: skip
    return GradflowConfig(title=str(raw.get("title", "Gradient-flow structured pruning")), experiments=tuple(experiments))


def _dst(raw: Mapping[str, Any], cfg: dict[str, Mapping[str, Any]]) -> DstConfig | None:
    if not raw.get("enabled", True):
        return None
    experiments, seen = [], set()
    for i, e in enumerate(raw.get("experiments", [])):
        key = f"dst.experiments[{i}]"
        _check_experiment(e, key, cfg, ("recipe", "long_recipe", "deepr_recipe"), seen)
        for method, recipe in e.get("method_recipes", {}).items():
            _reference(recipe, cfg["recipes"], f"{key}.method_recipes.{method}", "recipes")
        options = {k: v for k, v in e.items() if k not in ("dataset", "model", "recipe", "long_recipe", "deepr_recipe",
                                                           "methods", "sparsities", "seeds")}  # fmt: skip
        if "gradual" in e["methods"]:
            g = e.get("gradual")
            if not g:
                raise ConfigError(f"{key}.gradual: the gradual method needs gradual: {{recipe, dense_recipe, ...}}")
            for part in ("recipe", "dense_recipe"):
                _reference(g[part], cfg["recipes"], f"{key}.gradual.{part}", "recipes")
        arch = cfg["models"][e["model"]].arch
        if options.get("sparse_layers", "paper") == "paper" and arch not in ("wrn", "resnet50", "lenet300_100"):
            raise ConfigError(f"{key}.sparse_layers: the paper's sparse-layer set is defined for wrn, resnet50 and "
                              f"lenet300_100, not {arch!r}; give conv_fc or a list of parameter names")  # fmt: skip
        experiments.append(DstExperiment(
            e["dataset"], e["model"], e["recipe"], e.get("long_recipe", e["recipe"]), e.get("deepr_recipe", e["recipe"]),
            tuple(e["methods"]), tuple(float(s) for s in e["sparsities"]), tuple(e["seeds"]), options,
        ))  # fmt: skip
    return DstConfig(title=str(raw.get("title", "Dynamic sparse training")), experiments=tuple(experiments))


def build_workflow_config(config: Mapping[str, Any]) -> WorkflowConfig:
    """Typed view of a schema-validated config; raises :class:`ConfigError` on any inconsistency."""
    datasets = {n: _bundle(DataHparams, d, f"datasets.{n}") for n, d in config["datasets"].items()}
    remember_entry_names(datasets)  # errors of data builders then name datasets.<name>.root
    models = {n: _bundle(ModelHparams, m, f"models.{n}") for n, m in config["models"].items()}
    for name, model in models.items():
        _check_model(name, model)
    recipes = {n: _bundle(TrainHparams, r, f"recipes.{n}") for n, r in config["recipes"].items()}
    oneshot_raw = config.get("oneshot", {})
    wf = WorkflowConfig(
        compute=_bundle(ComputeHparams, config.get("compute", {}), "compute"),
        resources=dict(config.get("resources", {})),
        datasets=datasets,
        models=models,
        recipes=recipes,
        oneshot_enabled=bool(oneshot_raw.get("enabled", True)),
        oneshot_title=str(oneshot_raw.get("title", "One-shot magnitude pruning")),
        oneshot=_oneshot(oneshot_raw, {"datasets": datasets, "models": models, "recipes": recipes}),
        pathnorm=_pathnorm(config.get("pathnorm", {"enabled": False}), {"datasets": datasets, "models": models, "recipes": recipes}),
        gradflow=_gradflow(config.get("gradflow", {"enabled": False}), {"datasets": datasets, "models": models, "recipes": recipes}),
        dst=_dst(config.get("dst", {"enabled": False}), {"datasets": datasets, "models": models, "recipes": recipes}),
        transfer=parse_transfer(config.get("transfer", {"enabled": False}), {"datasets": datasets, "models": models, "recipes": recipes}),
    )
    return wf


def dataset_root_problems(wf: WorkflowConfig) -> list[str]:
    """One message per dataset used by an enabled study whose root is missing or malformed
    (files, headers and sizes: :func:`~sparselab.config.roots.check_dataset_root`).

    The workflow raises these when it starts executing (before any job) and only warns in dry
    runs, so ``snakemake -n`` can show a paper-scale plan on a machine without its datasets.
    """
    problems = []
    for name in wf.used_datasets():
        hp = wf.datasets[name]
        try:
            check_dataset_root(hp.source, hp.root, key=f"datasets.{name}.root", verify_checksums=hp.verify_checksums)
        except DatasetRootError as exc:
            problems.append(str(exc))
    return problems


def load_workflow_config(config: dict, schema: str | Path, source: str = "config") -> WorkflowConfig:
    """Schema validation (with defaults) followed by the typed checks above (not the roots)."""
    validate_schema(config, schema, source)
    return build_workflow_config(config)
