"""The gradient-flow study's plan: per model x dataset x measure x target x seed, one job for the
prune+train rounds and one for the final training; then records (dense baselines of
rules/train.smk included), the table and the figures."""

from __future__ import annotations

import math
from typing import Any

from ..base.plan import StudyPlan, ledger_row
from .config import GradflowConfig, GradflowExperiment, GradflowRun
from .keys import KEYS

RUN = "results/gradflow/{dataset}/{model}/{measure}/p{target}/seed{seed}"
SUMMARY = "results/gradflow/summary"


def _keys(run: GradflowRun) -> dict[str, Any]:
    return {key: getattr(run, key) for key in KEYS}


def run_dir(run: GradflowRun) -> str:
    return RUN.format(dataset=run.dataset, model=run.model, measure=run.measure, target=run.target_str, seed=run.seed)


class Plan(StudyPlan[GradflowConfig, GradflowExperiment]):
    def round_recipe(self, wildcards: Any) -> dict[str, Any]:
        return self.recipe(self.experiment(wildcards).round_recipe)

    def final_recipe(self, wildcards: Any) -> dict[str, Any]:
        return self.recipe(self.experiment(wildcards).final_recipe)

    def prune_params(self, wildcards: Any) -> dict[str, Any]:
        return self.experiment(wildcards).prune_spec(wildcards.measure, float(wildcards.target))

    def prune_epochs(self, wildcards: Any) -> int:
        """Epochs of every round and the warm-up, +20% for scoring (about 20 steps a round)."""
        exp = self.experiment(wildcards)
        epochs = exp.rounds * self.epochs(exp.round_recipe) + max(0, exp.options.warmup_epochs - 1)
        return int(math.ceil(1.2 * epochs))

    def final_epochs(self, wildcards: Any) -> int:
        return self.epochs(self.experiment(wildcards).final_recipe)

    def _runs(self) -> list[GradflowRun]:
        return self.cfg.runs() if self.cfg is not None else []

    def summaries(self, wildcards: Any = None) -> list[list[Any]]:
        """[keys, final summary path] of every run."""
        return [[_keys(r), f"{run_dir(r)}/final/summary.json"] for r in self._runs()]

    def rounds(self, wildcards: Any = None) -> list[list[Any]]:
        """[keys, rounds.csv path] of every run."""
        return [[_keys(r), f"{run_dir(r)}/rounds.csv"] for r in self._runs()]

    def dense(self, wildcards: Any = None) -> list[list[Any]]:
        """[keys, checkpoint] of the dense baselines of experiments that name a dense_recipe."""
        out: list[list[Any]] = []
        for e in self.cfg.experiments if self.cfg is not None else ():
            if e.dense_recipe is None:
                continue
            for seed in e.seeds:
                keys = {"dataset": e.dataset, "model": e.model, "measure": "dense", "target": 0.0, "seed": seed}
                out.append([keys, self.dense_model(e.dataset, e.model, e.dense_recipe, seed)])
        return out

    def ledger_checkpoints(self) -> list[dict[str, Any]]:
        """Every run's final model (its parent: the pruned model of its last round) and the dense baselines."""
        out = [
            ledger_row(
                f"{run_dir(r)}/final/model.safetensors",
                study="gradflow",
                method=r.measure,
                dataset=r.dataset,
                model=r.model,
                sparsity=r.target,
                seed=r.seed,
                parent=f"{run_dir(r)}/pruned.safetensors",
                parent_role="pruned",
            )
            for r in self._runs()
        ]
        for keys, path in self.dense():
            out.append(
                ledger_row(
                    path,
                    study="gradflow",
                    method="dense",
                    dataset=keys["dataset"],
                    model=keys["model"],
                    sparsity=0.0,
                    seed=keys["seed"],
                )
            )
        return out

    def summary_paths(self, wildcards: Any = None) -> list[str]:
        return [path for _, path in self.summaries()]

    def round_paths(self, wildcards: Any = None) -> list[str]:
        return [path for _, path in self.rounds()]

    def dense_paths(self, wildcards: Any = None) -> list[str]:
        return [path for _, path in self.dense()]

    def targets(self) -> list[str]:
        if not self._runs():
            return []
        names = ["records.csv", "table_final.csv", "table_final.md"]
        names += [f"{fig}.{ext}" for fig in ("figure_rounds", "figure_kendall") for ext in ("pdf", "png")]
        return [f"{SUMMARY}/{name}" for name in names]
