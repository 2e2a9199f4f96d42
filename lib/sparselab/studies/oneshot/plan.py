"""The one-shot study's plan: dense model -> pruned + finetuned per scope x sparsity (and N:M:
pruned once + finetuned, or SR-STE) -> evaluation of every checkpoint (the dense one as scope
``dense``) -> records, tables and figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...config.common import format_sparsity
from ..base.plan import StudyPlan, ledger_row
from .config import NM_SCOPES, NmHparams, OneshotConfig, OneshotExperiment

RUN = "results/oneshot/{dataset}/{model}/{scope}/s{sparsity}/seed{seed}"
SUMMARY = "results/oneshot/summary"


class Plan(StudyPlan[OneshotConfig, OneshotExperiment]):
    def finetune_recipe(self, wildcards: Any) -> dict[str, Any]:
        return self.recipe(self.experiment(wildcards).finetune_recipe)

    def finetune_epochs(self, wildcards: Any) -> int:
        return self.epochs(self.experiment(wildcards).finetune_recipe)

    def labels(self, wildcards: Any) -> dict[str, Any]:
        labels = {
            "study": "oneshot",
            "dataset": wildcards.dataset,
            "model": wildcards.model,
            "scope": wildcards.scope,
            "sparsity": float(wildcards.sparsity),
            "seed": int(wildcards.seed),
        }
        if wildcards.scope in NM_SCOPES.values():  # only N:M runs carry it: other labels keep their repr
            nm = self.nm(wildcards)
            labels["nm"] = f"{nm.n}:{nm.m}"
        return labels

    def nm(self, wildcards: Any) -> NmHparams:
        nm = self.experiment(wildcards).nm
        if nm is None:
            raise ValueError(f"oneshot {wildcards.dataset}/{wildcards.model}: no nm block, so no N:M runs")
        if wildcards.sparsity != format_sparsity(nm.sparsity):
            raise ValueError(
                f"oneshot {wildcards.dataset}/{wildcards.model}: N:M {nm.n}:{nm.m} runs live under "
                f"s{format_sparsity(nm.sparsity)}, not s{wildcards.sparsity}"
            )
        return nm

    def nm_pattern(self, wildcards: Any) -> dict[str, int]:
        """The N:M one-shot job's param: the pattern only (an SR-STE option never reruns it)."""
        nm = self.nm(wildcards)
        return {"n": nm.n, "m": nm.m}

    def srste_options(self, wildcards: Any) -> dict[str, Any]:
        """The SR-STE job's param: the pattern, decay, period and (when set) the gradual ramp (the
        recipe is its own param)."""
        nm = self.nm(wildcards)
        ramp = {"ramp": nm.srste.ramp} if nm.srste.ramp else {}  # unset: the param of a plain SR-STE run as before
        return {"n": nm.n, "m": nm.m, "decay": nm.srste.decay, "period": nm.srste.period, **ramp}

    def srste_recipe(self, wildcards: Any) -> dict[str, Any]:
        return self.recipe(self.experiment(wildcards).srste_recipe)

    def srste_epochs(self, wildcards: Any) -> int:
        return self.epochs(self.experiment(wildcards).srste_recipe)

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

    def ledger_checkpoints(self) -> list[dict[str, Any]]:
        """Every evaluated checkpoint: the dense models, and each pruned+finetuned / N:M run, whose
        parent is the dense model it was pruned from."""
        out = []
        for r in self.cfg.runs() if self.cfg is not None else []:
            dense = self.dense_model(
                r.dataset, r.model, self.config.experiment(r.dataset, r.model).train_recipe, r.seed
            )
            keys: dict[str, Any] = {
                "study": "oneshot",
                "method": r.scope,
                "dataset": r.dataset,
                "model": r.model,
                "seed": r.seed,
            }
            if r.scope == "dense":
                out.append(ledger_row(dense, **keys, sparsity=0.0))
                continue
            run = RUN.format(dataset=r.dataset, model=r.model, scope=r.scope, sparsity=r.sparsity_str, seed=r.seed)
            out.append(
                ledger_row(f"{run}/model.safetensors", **keys, sparsity=r.sparsity, parent=dense, parent_role="dense")
            )
        return out

    def targets(self) -> list[str]:
        if self.cfg is None or not self.cfg.runs():
            return []
        names = ["records.csv"] + [f"accuracy_vs_sparsity.{ext}" for ext in ("csv", "md", "pdf", "png")]
        if self.cfg.has_nm():
            names += [f"nm_vs_unstructured.{ext}" for ext in ("csv", "md")]
        return [str(Path(SUMMARY) / name) for name in names]
