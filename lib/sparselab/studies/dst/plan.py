"""The dynamic sparse training study's plan: one job per dataset x model x method x sparsity x seed
(gradual pruning starts from a dense run of rules/train.smk); then records, table and figures."""

from __future__ import annotations

from typing import Any

from ..base.plan import StudyPlan, ledger_row
from .config import DstConfig, DstExperiment, DstRun
from .options import GROWTH_METHODS

RUN = "results/dst/{dataset}/{model}/{method}/s{sparsity}/seed{seed}"
SUMMARY = "results/dst/summary"


def _keys(run: DstRun) -> dict[str, Any]:
    return {
        "dataset": run.dataset,
        "model": run.model,
        "method": run.method,
        "sparsity": run.sparsity,
        "seed": run.seed,
    }


def run_dir(run: DstRun) -> str:
    return RUN.format(dataset=run.dataset, model=run.model, method=run.method, sparsity=run.sparsity_str, seed=run.seed)


class Plan(StudyPlan[DstConfig, DstExperiment]):
    def method_recipe(self, wildcards: Any) -> dict[str, Any]:
        return self.recipe(self.experiment(wildcards).recipe_of(wildcards.method))

    def method_epochs(self, wildcards: Any) -> int:
        return self.epochs(self.experiment(wildcards).recipe_of(wildcards.method))

    def gradual_recipe(self, wildcards: Any) -> dict[str, Any]:
        return self.recipe(self.experiment(wildcards).gradual.recipe)

    def gradual_epochs(self, wildcards: Any) -> int:
        return self.epochs(self.experiment(wildcards).gradual.recipe)

    def options(self, wildcards: Any) -> dict[str, Any]:
        """The experiment's options as configured (the jobs read them as :class:`.options.DstOptions`),
        the ``rigl`` / ``snfs`` blocks only for that method's jobs: an edit of one reruns only its runs."""
        method = getattr(wildcards, "method", "gradual")  # dst_gradual has no method wildcard
        params = self.experiment(wildcards).option_params
        return {k: v for k, v in params.items() if k not in GROWTH_METHODS or k == method}

    def dense_checkpoint(self, wildcards: Any) -> str:
        g = self.experiment(wildcards).gradual
        return self.dense_model(wildcards.dataset, wildcards.model, g.dense_recipe, wildcards.seed)

    def summaries(self, wildcards: Any = None) -> list[list[Any]]:
        """[keys, summary path] of every run."""
        runs = self.cfg.runs() if self.cfg is not None else []
        return [[_keys(r), f"{run_dir(r)}/summary.json"] for r in runs]

    def summary_paths(self, wildcards: Any = None) -> list[str]:
        return [path for _, path in self.summaries()]

    def ledger_checkpoints(self) -> list[dict[str, Any]]:
        """Every run's final model; gradual pruning's parent is the dense run it prunes."""
        out = []
        for r in self.cfg.runs() if self.cfg is not None else []:
            parent = ""
            if r.method == "gradual":
                g = self.config.experiment(r.dataset, r.model).gradual
                parent = self.dense_model(r.dataset, r.model, g.dense_recipe, r.seed)
            out.append(
                ledger_row(
                    f"{run_dir(r)}/model.safetensors",
                    **{**_keys(r), "study": "dst"},
                    parent=parent,
                    parent_role="dense" if parent else "",
                )
            )
        return out

    def targets(self) -> list[str]:
        if self.cfg is None or not self.cfg.runs():
            return []
        names = ["records.csv", "table_accuracy.csv", "table_accuracy.md", "layer_density.csv"]
        names += [
            f"{fig}.{ext}"
            for fig in ("figure_accuracy_vs_parameters", "figure_layer_density")
            for ext in ("pdf", "png")
        ]
        return [f"{SUMMARY}/{name}" for name in names]
