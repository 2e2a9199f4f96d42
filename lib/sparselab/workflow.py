"""The validated workflow configuration: the shared sections and one typed section per study.

``rules/common.smk`` calls :func:`load_workflow_config` once at parse time. Every problem (a
typo'd key, a wrong type, an unknown architecture, a recipe name that is not defined, a missing
dataset root) raises :class:`ConfigError` with the config key's dotted path and the fix, before
any job starts.

Each study is a package ``sparselab.studies.<study>`` whose ``config`` module parses its section
(``parse(raw, shared)``, ``None`` when disabled) and whose ``plan`` module turns it into paths,
inputs, params and targets (``Plan(shared, study_config)``). This module only composes them: adding
a study adds its name to :data:`STUDIES`. Everything here is imported at parse time, so no study's
``config`` or ``plan`` may import torch, pandas or anything heavy.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config.common import ConfigError, format_sparsity
from .config.roots import DatasetRootError, check_dataset_root
from .config.schema import validate_schema
from .config.shared import SharedConfig, build_shared

__all__ = [
    "STUDIES",
    "ConfigError",
    "WorkflowConfig",
    "build_workflow_config",
    "dataset_root_problems",
    "format_sparsity",
    "load_workflow_config",
    "validate_schema",
]

# The studies, in the order their targets are listed; each is ``sparselab.studies.<name>`` and the
# config section ``<name>``. One-shot is on unless disabled; a study whose section is absent is off.
# The ledger comes last: it measures the checkpoints the others list (its plan is handed theirs).
STUDIES: tuple[str, ...] = ("oneshot", "pathnorm", "gradflow", "dst", "transfer", "ledger")
_ON_BY_DEFAULT = frozenset({"oneshot"})


def study_module(study: str, part: str) -> Any:
    """``sparselab.studies.<study>.<part>`` (``config`` or ``plan``)."""
    return importlib.import_module(f"{__package__}.studies.{study}.{part}")


@dataclasses.dataclass(frozen=True)
class WorkflowConfig:
    shared: SharedConfig
    studies: Mapping[str, Any]  # study name -> its typed config, None when disabled

    def __getattr__(self, name: str) -> Any:
        """``wf.<study>`` is that study's config (or None); ``wf.recipes`` etc. the shared sections."""
        if name in STUDIES:
            return self.studies.get(name)
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.shared, name)

    def enabled(self) -> dict[str, Any]:
        return {name: cfg for name, cfg in self.studies.items() if cfg is not None}

    def used_datasets(self) -> list[str]:
        """The datasets an enabled study reads (their roots are checked before a real run)."""
        return sorted(set().union(*(cfg.used_datasets() for cfg in self.enabled().values())))

    def plans(self) -> dict[str, Any]:
        """Each study's plan (also of disabled studies: their rules still parse, with no targets); a
        plan with ``attach`` (the complexity ledger) is then handed all of them."""
        plans = {name: study_module(name, "plan").Plan(self.shared, cfg) for name, cfg in self.studies.items()}
        for plan in plans.values():
            if hasattr(plan, "attach"):
                plan.attach(plans)
        return plans


def build_workflow_config(config: Mapping[str, Any]) -> WorkflowConfig:
    """Typed view of a schema-validated config; raises :class:`ConfigError` on any inconsistency."""
    shared = build_shared(config)
    studies = {}
    for name in STUDIES:
        raw = config.get(name, {} if name in _ON_BY_DEFAULT else {"enabled": False})
        studies[name] = study_module(name, "config").parse(raw, shared)
    return WorkflowConfig(shared=shared, studies=studies)


def dataset_root_problems(wf: WorkflowConfig) -> list[str]:
    """One message per dataset used by an enabled study whose root is missing or malformed
    (files, headers and sizes: :func:`~sparselab.config.roots.check_dataset_root`), and per other
    input a study reads from outside the workflow (transfer's checkpoints to import).

    The workflow raises these when it starts executing (before any job) and only warns in dry
    runs, so ``snakemake -n`` can show a paper-scale plan on a machine without its datasets.
    """
    problems = []
    for name in wf.used_datasets():
        hp = wf.shared.datasets[name]
        try:
            check_dataset_root(hp.source, hp.root, key=f"datasets.{name}.root", verify_checksums=hp.verify_checksums)
        except DatasetRootError as exc:
            problems.append(str(exc))
    for cfg in wf.enabled().values():
        problems += cfg.input_problems() if hasattr(cfg, "input_problems") else []
    return problems


def load_workflow_config(config: dict, schema: str | Path, source: str = "config") -> WorkflowConfig:
    """Schema validation (with defaults) followed by the typed checks above (not the roots)."""
    validate_schema(config, schema, source)
    return build_workflow_config(config)
