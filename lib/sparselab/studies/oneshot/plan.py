"""The one-shot study's plan: dense model -> pruned + finetuned per scope x sparsity -> evaluation
of every checkpoint (the dense one as scope ``dense``) -> records, table and figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..base.plan import StudyPlan
from .config import OneshotConfig, OneshotExperiment

RUN = "results/oneshot/{dataset}/{model}/{scope}/s{sparsity}/seed{seed}"
SUMMARY = "results/oneshot/summary"


class Plan(StudyPlan[OneshotConfig, OneshotExperiment]):
    def finetune_recipe(self, wildcards: Any) -> dict[str, Any]:
        return self.recipe(self.experiment(wildcards).finetune_recipe)

    def finetune_epochs(self, wildcards: Any) -> int:
        return self.epochs(self.experiment(wildcards).finetune_recipe)

    def labels(self, wildcards: Any) -> dict[str, Any]:
        return {
            "study": "oneshot",
            "dataset": wildcards.dataset,
            "model": wildcards.model,
            "scope": wildcards.scope,
            "sparsity": float(wildcards.sparsity),
            "seed": int(wildcards.seed),
        }

    def dense_checkpoint(self, wildcards: Any) -> str:
        """The dense model a one-shot run prunes: trained with the experiment's train recipe."""
        exp = self.experiment(wildcards)
        return self.dense_model(wildcards.dataset, wildcards.model, exp.train_recipe, wildcards.seed)

    def eval_inputs(self, wildcards: Any) -> dict[str, str]:
        """The checkpoint to evaluate: the dense model, or the finetuned pruned one (with its history)."""
        if wildcards.scope == "dense":
            return {"model": self.dense_checkpoint(wildcards)}
        run = Path(RUN.format(**dict(wildcards.items())))
        return {"model": str(run / "model.safetensors"), "history": str(run / "metrics.csv")}

    def evaluations(self, wildcards: Any = None) -> list[str]:
        runs = self.cfg.runs() if self.cfg is not None else []
        return [
            str(
                Path(RUN.format(dataset=r.dataset, model=r.model, scope=r.scope, sparsity=r.sparsity_str, seed=r.seed))
                / "eval.json"
            )
            for r in runs
        ]

    def targets(self) -> list[str]:
        if self.cfg is None or not self.cfg.runs():
            return []
        names = ["records.csv"] + [f"accuracy_vs_sparsity.{ext}" for ext in ("csv", "md", "pdf", "png")]
        return [str(Path(SUMMARY) / name) for name in names]
