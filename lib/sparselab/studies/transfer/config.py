"""The transfer study's configuration (Iofinova et al. 2022): upstreams, downstream tasks, protocols.

One experiment is one upstream dataset x architecture. Its upstreams are the dense model (trained by
``rules/train.smk``), GMP, AC/DC and RigL runs at the configured sparsities, and any other checkpoint by
path: one the DAG makes (an IMP round, a DSR run, ...) or an external file imported into our format
(torchvision, "common format", RigL, STR). Each upstream is transferred to every downstream dataset
by linear finetuning (features cached once per upstream x dataset, one head per seed) and by full
finetuning (one run per seed), next to an optional from-scratch baseline on the same data.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from ...config.bundles import HELDOUT_SOURCES, TRANSFER_SOURCES, DataHparams
from ...config.common import ConfigError, format_sparsity, reference
from ...config.hparams import Hparams, HparamsError
from ...config.shared import ExperimentGrid, SchemaBinding, SharedConfig, parse_experiments, typed
from .options import (
    AcdcUpstreams,
    ExperimentOptions,
    FullFinetuning,
    GmpUpstreams,
    LinearProtocol,
    RiglUpstreams,
    ScratchBaseline,
    SectionOptions,
)

__all__ = [
    "NORMALIZE_CHOICE",
    "RESERVED_NAMES",
    "SCHEMA_BINDINGS",
    "Upstream",
    "TransferExperiment",
    "TransferConfig",
    "parse",
]

# Upstream names the workflow's paths use for its own purposes (RigL's: rigl_<densities>).
RESERVED_NAMES = frozenset(
    {"dense", "gmp", "acdc", "rigl_erk", "rigl_uniform", "scratch", "upstream", "imported", "summary"}
)
# Sources whose normalisation the linear protocol chooses (the rest have one fixed normalisation).
NORMALIZE_CHOICE = frozenset({*TRANSFER_SOURCES, "cifar10", "cifar100"})

# Where each options class sits in the schema (below properties.transfer), and the keys of that
# node that are structure (parsed on their own) rather than its options.
_EXPERIMENT = ("properties", "experiments", "items")
SCHEMA_BINDINGS: tuple[SchemaBinding, ...] = (
    (SectionOptions, (), {"experiments"}),
    (
        ExperimentOptions,
        _EXPERIMENT,
        {"dataset", "model", "downstream", "gmp", "acdc", "rigl", "checkpoints", "linear", "full", "scratch"},
    ),
    (GmpUpstreams, (*_EXPERIMENT, "properties", "gmp"), set()),
    (AcdcUpstreams, (*_EXPERIMENT, "properties", "acdc"), set()),
    (RiglUpstreams, (*_EXPERIMENT, "properties", "rigl"), set()),
    (LinearProtocol, (*_EXPERIMENT, "properties", "linear"), set()),
    (FullFinetuning, (*_EXPERIMENT, "properties", "full"), set()),
    (ScratchBaseline, (*_EXPERIMENT, "properties", "scratch"), set()),
)


@dataclasses.dataclass(frozen=True)
class Upstream:
    """One upstream model: ``kind`` says which rule makes its checkpoint."""

    name: str  # the path component: dense, gmp, acdc, rigl_erk / rigl_uniform, or a checkpoint entry's name
    sparsity: float  # nominal (the measured one is in every record)
    kind: str  # dense | gmp | acdc | rigl | checkpoint | import
    path: str | None = None  # checkpoint: our format; import: the external file
    import_kind: str | None = None  # torchvision | common | rigl | str
    data: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # downstream data overrides (RigL: bicubic)
    num_classes: int = 1000  # import: the upstream's classes

    @property
    def sparsity_str(self) -> str:
        return format_sparsity(self.sparsity)


@dataclasses.dataclass(frozen=True)
class TransferExperiment:
    dataset: str  # the upstream dataset
    model: str  # the upstream architecture (a models: entry)
    seed: int  # of the dense upstream and of the GMP / AC/DC / RigL runs
    dense_recipe: str | None
    gmp: GmpUpstreams | None
    acdc: AcdcUpstreams | None
    rigl: RiglUpstreams | None
    sparse_layers: str | tuple[str, ...]  # the tensors GMP and AC/DC prune (one global threshold), RigL's sparse ones
    checkpoints: tuple[Upstream, ...]
    downstream: tuple[str, ...]
    linear: LinearProtocol
    full: FullFinetuning | None
    scratch: ScratchBaseline | None

    def upstreams(self) -> list[Upstream]:
        out = []
        if self.dense_recipe is not None:
            out.append(Upstream("dense", 0.0, "dense"))
        for method in ("gmp", "acdc"):
            spec = getattr(self, method)
            if spec is not None:
                out += [Upstream(method, float(s), method) for s in spec.sparsities]
        if self.rigl is not None:
            out += [Upstream(self.rigl.name, float(s), "rigl") for s in self.rigl.sparsities]
        return out + list(self.checkpoints)

    @functools.cached_property
    def _upstream_index(self) -> dict[tuple[str, str], Upstream]:
        """(name, sparsity string) -> the first such upstream: input functions ask once per job."""
        index: dict[tuple[str, str], Upstream] = {}
        for u in self.upstreams():
            index.setdefault((u.name, u.sparsity_str), u)
        return index

    def upstream(self, name: str, sparsity: str) -> Upstream:
        found = self._upstream_index.get((name, sparsity))
        if found is not None:
            return found
        raise KeyError(
            f"transfer experiment {self.dataset}/{self.model} has no upstream {name!r} at sparsity {sparsity}"
        )

    def full_lr(self, dataset: str) -> float | None:
        """The full-finetuning lr for one downstream dataset (None: the recipe's)."""
        return None if self.full is None else self.full.lr.get(dataset)


@dataclasses.dataclass(frozen=True)
class TransferConfig(ExperimentGrid[TransferExperiment]):
    study = "transfer"

    def used_datasets(self) -> set[str]:
        return {d for e in self.experiments for d in (e.dataset, *e.downstream)}

    def input_problems(self) -> list[str]:
        """One message per external checkpoint to import that is not there (the workflow warns while
        planning and stops before the first job of a real run, like a missing dataset root)."""
        problems = []
        for i, exp in enumerate(self.experiments):
            for up in exp.checkpoints:
                if up.kind == "import" and not Path(str(up.path)).expanduser().is_file():
                    problems.append(
                        f"transfer.experiments[{i}].checkpoints ({up.name}): {up.path} does not exist; put the "
                        f"{up.import_kind} checkpoint there or correct the path"
                    )
        return problems


def _checkpoint(entry: Mapping[str, Any], key: str, taken: set[tuple[str, str]]) -> Upstream:
    name = entry["name"]
    if name in RESERVED_NAMES:
        raise ConfigError(
            f"{key}.name: {name!r} is reserved for the workflow's own paths "
            f"({', '.join(sorted(RESERVED_NAMES))}); choose another name"
        )
    up = Upstream(
        name,
        float(entry["sparsity"]),
        "import" if entry.get("import") else "checkpoint",
        str(entry["path"]),
        entry.get("import"),
        dict(entry.get("data", {})),
        int(entry.get("num_classes", 1000)),
    )
    if (name, up.sparsity_str) in taken:
        raise ConfigError(
            f"{key}: a second checkpoint named {name!r} at sparsity {up.sparsity}; names and sparsities "
            "identify upstreams in paths, make them unique"
        )
    taken.add((name, up.sparsity_str))
    return up


H = TypeVar("H", bound=Hparams)


def _part(cls: type[H], e: Mapping[str, Any], part: str, key: str) -> H | None:
    return None if e.get(part) is None else typed(cls, e[part], f"{key}.{part}")


def _check_gmp(gmp: GmpUpstreams, key: str, shared: SharedConfig) -> None:
    epochs = shared.recipes[gmp.recipe].epochs
    if epochs < gmp.last_step:
        raise ConfigError(
            f"{key}.recipe: the last pruning step comes after {gmp.last_step} epochs of training, "
            f"recipe {gmp.recipe!r} trains {epochs} epochs; lengthen it or prune earlier"
        )


def _experiment(e: Mapping[str, Any], key: str, shared: SharedConfig) -> TransferExperiment:
    names = {f.name for f in dataclasses.fields(ExperimentOptions)}
    opts = typed(ExperimentOptions, {k: v for k, v in e.items() if k in names}, key)
    linear = typed(LinearProtocol, e.get("linear"), f"{key}.linear")
    gmp, acdc = _part(GmpUpstreams, e, "gmp", key), _part(AcdcUpstreams, e, "acdc", key)
    rigl = _part(RiglUpstreams, e, "rigl", key)
    full, scratch = _part(FullFinetuning, e, "full", key), _part(ScratchBaseline, e, "scratch", key)
    reference(e["dataset"], shared.datasets, f"{key}.dataset", "datasets")
    reference(e["model"], shared.models, f"{key}.model", "models")
    if opts.dense_recipe is not None:
        reference(opts.dense_recipe, shared.recipes, f"{key}.dense_recipe", "recipes")
    for part, spec in (("gmp", gmp), ("acdc", acdc), ("rigl", rigl), ("full", full), ("scratch", scratch)):
        if spec is not None:
            reference(spec.recipe, shared.recipes, f"{key}.{part}.recipe", "recipes")
    if gmp is not None and opts.dense_recipe is None:
        raise ConfigError(f"{key}.gmp: GMP prunes the dense upstream; give dense_recipe as well")
    if acdc is not None:
        epochs = shared.recipes[acdc.recipe].epochs
        if epochs < 10:
            raise ConfigError(
                f"{key}.acdc.recipe: AC/DC needs at least 10 epochs for its phases, recipe {acdc.recipe!r} has {epochs}"
            )
    if gmp is not None:
        _check_gmp(gmp, f"{key}.gmp", shared)
    if rigl is not None and rigl.dense_first and not isinstance(opts.sparse_layers, str):
        if len(opts.sparse_layers) < 2:
            raise ConfigError(
                f"{key}.rigl.dense_first: it keeps the first of sparse_layers dense, which leaves RigL no "
                "sparse tensor; list more sparse_layers or set dense_first: false"
            )
    for i, name in enumerate(e["downstream"]):
        reference(name, shared.datasets, f"{key}.downstream[{i}]", "datasets")
    for name in full.lr if full is not None else ():
        if name not in e["downstream"]:
            raise ConfigError(f"{key}.full.lr.{name}: {name!r} is not one of this experiment's downstream datasets")
    taken: set[tuple[str, str]] = set()
    checkpoints = tuple(
        _checkpoint(c, f"{key}.checkpoints[{i}]", taken) for i, c in enumerate(e.get("checkpoints", []))
    )
    for i, up in enumerate(checkpoints):
        for name in e["downstream"] if up.data else ():
            try:
                DataHparams.from_dict({**shared.datasets[name].to_dict(), **dict(up.data)}, path=f"datasets.{name}")
            except HparamsError as exc:
                raise ConfigError(
                    f"{key}.checkpoints[{i}].data: applied to downstream dataset {name!r}: {exc}"
                ) from None
    upstream_data = shared.datasets[e["dataset"]]
    for i, name in enumerate(e["downstream"]):
        down = shared.datasets[name]
        if down.source in HELDOUT_SOURCES and (down.split_seed, down.test_fraction) != (
            upstream_data.split_seed,
            upstream_data.test_fraction,
        ):
            raise ConfigError(
                f"{key}.downstream[{i}]: {name!r} is built from the digits images the upstream never "
                f"saw, which needs the upstream dataset's split_seed and test_fraction "
                f"({upstream_data.split_seed}, {upstream_data.test_fraction}); it has "
                f"({down.split_seed}, {down.test_fraction})"
            )
    layers = opts.sparse_layers
    return TransferExperiment(
        dataset=e["dataset"],
        model=e["model"],
        seed=opts.seed,
        dense_recipe=opts.dense_recipe,
        gmp=gmp,
        acdc=acdc,
        rigl=rigl,
        sparse_layers=layers if isinstance(layers, str) else tuple(layers),
        checkpoints=checkpoints,
        downstream=tuple(e["downstream"]),
        linear=linear,
        full=full,
        scratch=scratch,
    )


def parse(raw: Mapping[str, Any], shared: SharedConfig) -> TransferConfig | None:
    """The typed transfer section (None when disabled)."""
    section = typed(SectionOptions, {k: v for k, v in raw.items() if k != "experiments"}, "transfer")
    if not section.enabled:
        return None
    experiments = parse_experiments(raw, "transfer", shared, lambda e, key: _experiment(e, key, shared))
    return TransferConfig(title=section.title, experiments=experiments)
