"""What every study's plan shares (imported at parse time: standard library only).

A plan turns a study's typed config into what its rules need: paths, input and param functions of
``wildcards`` (plain objects with attributes, so tests call them without Snakemake), epochs for the
time limits, and the study's final targets.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from ...config.shared import SharedConfig

__all__ = ["DENSE_MODEL", "StudyPlan", "ledger_row"]

# The dense training runs of rules/train.smk, which several studies start from.
DENSE_MODEL = "results/train/{dataset}/{model}/{recipe}/seed{seed}/model.safetensors"


def ledger_row(
    path: str,
    *,
    study: str,
    method: str,
    dataset: str,
    model: str,
    sparsity: float,
    seed: int,
    parent: str = "",
    parent_role: str = "",
    detail: str = "",
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One final checkpoint as the complexity ledger reads it from a study's plan
    (``ledger_checkpoints()``): its lineage, the nominal sparsity, and the data it was trained on
    (``dataset``, with ``data`` overriding that entry's keys, e.g. a training subset)."""
    return {
        "path": path,
        "study": study,
        "method": method,
        "dataset": dataset,
        "model": model,
        "sparsity": float(sparsity),
        "seed": int(seed),
        "parent": parent,
        "parent_role": parent_role,
        "detail": detail,
        "data": dict(data or {}),
    }


C = TypeVar("C")  # the study's typed section
E = TypeVar("E")  # one of its experiments


class StudyPlan(Generic[C, E]):
    """A study's plan: ``cfg`` is its typed section, None when the study is disabled (its rules
    still parse, and it has no targets)."""

    def __init__(self, shared: SharedConfig, cfg: C | None) -> None:
        self.shared = shared
        self.cfg = cfg

    @property
    def config(self) -> C:
        """The section, for the rules' functions (which only run when the study has jobs)."""
        if self.cfg is None:
            raise RuntimeError(f"{type(self).__module__}: the study is disabled, it has no jobs")
        return self.cfg

    def experiment(self, wildcards: Any) -> E:
        """The experiment of a job: its ``dataset`` and ``model`` wildcards."""
        return self.config.experiment(wildcards.dataset, wildcards.model)  # type: ignore[attr-defined]

    @property
    def title(self) -> str:
        return str(getattr(self.cfg, "title", ""))

    def targets(self) -> list[str]:
        """The study's final artefacts (records, tables, figures); empty when disabled."""
        return []

    def ledger_checkpoints(self) -> list[dict[str, Any]]:
        """The study's final checkpoints for the complexity ledger (:func:`ledger_row` each)."""
        return []

    def recipe(self, name: str) -> dict[str, Any]:
        """A recipe's resolved values, for a rule's params."""
        return self.shared.recipes[name].to_dict()

    def epochs(self, recipe: str) -> int:
        return self.shared.recipes[recipe].epochs

    @staticmethod
    def dense_model(dataset: str, model: str, recipe: str, seed: int | str) -> str:
        return DENSE_MODEL.format(dataset=dataset, model=model, recipe=recipe, seed=seed)
