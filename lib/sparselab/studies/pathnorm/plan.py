"""The path-norm study's plan: Table 2 (bound), pretrained models (Tables 3, 5, Figure 3), IMP
rounds (Figure 4) and growing training subsets (Figure 5); parts absent from the config have no jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...config.common import format_sparsity
from ..base.plan import StudyPlan, ledger_row
from .config import PathnormConfig, PretrainedModel

SUMMARY = "results/pathnorm/summary"
PRETRAINED_RUN = "results/pathnorm/pretrained/{dataset}/{name}"
IMP_RUN = "results/pathnorm/imp/{dataset}/{model}/{recipe}/seed{seed}/round{round}"
SUBSET_RUN = "results/pathnorm/subsets/{dataset}/{model}/{recipe}/f{fraction}/seed{seed}"


class Plan(StudyPlan[PathnormConfig, Any]):
    @property
    def gap(self) -> str:
        return self.cfg.gap if self.cfg is not None else "running"

    def bound_settings(self, wildcards: Any = None) -> list[dict[str, Any]]:
        return self.config.bound_settings()

    def analysis_params(self, wildcards: Any = None) -> dict[str, Any]:
        return self.config.analysis_spec()

    def pretrained_entry(self, wildcards: Any) -> PretrainedModel:
        return next(p for p in self.config.pretrained if p.name == wildcards.name)

    def pretrained_params(self, wildcards: Any) -> dict[str, Any]:
        return self.config.pretrained_spec(self.pretrained_entry(wildcards))

    def pretrained_inputs(self, wildcards: Any) -> dict[str, str]:
        """A pretrained entry of ours needs its dense run's checkpoint; torchvision weights come from
        the local hub cache (checked by the job, never downloaded)."""
        entry = self.pretrained_entry(wildcards)
        dataset = self.config.pretrained_dataset
        if (
            entry.model is None or entry.recipe is None or dataset is None
        ):  # torchvision weights (parse checks the rest)
            return {}
        return {"checkpoint": self.dense_model(dataset, entry.model, entry.recipe, entry.seed)}

    def pretrained_outputs(self, kind: str) -> list[str]:
        if self.cfg is None:
            return []
        pn = self.cfg
        return [
            str(Path(PRETRAINED_RUN.format(dataset=pn.pretrained_dataset, name=p.name)) / kind) for p in pn.pretrained
        ]

    def imp_params(self, wildcards: Any = None) -> dict[str, Any]:
        imp = self.config.imp
        assert imp is not None
        return {
            "rewind_epoch": imp.rewind_epoch,
            "conv_fraction": imp.conv_fraction,
            "linear_fraction": imp.linear_fraction,
            "scope": imp.scope,
        }

    def imp_round_sparsities(self, wildcards: Any = None) -> dict[int, float]:
        """Nominal body sparsity of each round (the figure's legend)."""
        imp = self.config.imp
        assert imp is not None
        return {r: imp.sparsity(r)[0] for r in range(imp.rounds + 1)}

    @staticmethod
    def imp_previous_round(wildcards: Any) -> str:
        return str(
            Path(IMP_RUN.format(**{**dict(wildcards.items()), "round": int(wildcards.round) - 1})) / "model.safetensors"
        )

    @staticmethod
    def imp_rewind_state(wildcards: Any) -> str:
        return str(Path(IMP_RUN.format(**{**dict(wildcards.items()), "round": 0})) / "rewind.pt")

    def imp_metrics(self, wildcards: Any = None) -> dict[tuple[int, int], str]:
        imp = self.config.imp
        assert imp is not None
        return {
            (r, seed): str(
                Path(IMP_RUN.format(dataset=imp.dataset, model=imp.model, recipe=imp.recipe, seed=seed, round=r))
                / "metrics.csv"
            )
            for seed in imp.seeds
            for r in range(imp.rounds + 1)
        }

    def subset_metrics(self, wildcards: Any = None) -> dict[tuple[float, int], str]:
        sub = self.config.subsets
        assert sub is not None
        return {
            (f, seed): str(
                Path(
                    SUBSET_RUN.format(
                        dataset=sub.dataset, model=sub.model, recipe=sub.recipe, fraction=format_sparsity(f), seed=seed
                    )
                )
                / "metrics.csv"
            )
            for f in sub.fractions
            for seed in sub.seeds
        }

    def imp_metric_paths(self, wildcards: Any = None) -> list[str]:
        return list(self.imp_metrics().values())

    def imp_runs(self, wildcards: Any = None) -> list[list[Any]]:
        """[round, seed, metrics.csv] of every IMP run."""
        return [[r, s, path] for (r, s), path in self.imp_metrics().items()]

    def subset_metric_paths(self, wildcards: Any = None) -> list[str]:
        return list(self.subset_metrics().values())

    def subset_runs(self, wildcards: Any = None) -> list[list[Any]]:
        """[fraction, seed, metrics.csv] of every subset run."""
        return [[f, s, path] for (f, s), path in self.subset_metrics().items()]

    def ledger_checkpoints(self) -> list[dict[str, Any]]:
        """Every IMP round (round r's parent: round r-1) and every subset run, which trained on a
        seeded fraction of the train split (its ``data``: the ledger's train top-1 is on that subset).
        The pretrained-model tables read the dense runs of rules/train.smk, which other studies list."""
        pn, out = self.cfg, list[dict[str, Any]]()
        if pn is None:
            return out
        if pn.imp is not None:
            imp = pn.imp
            for seed in imp.seeds:
                for r in range(imp.rounds + 1):
                    run = IMP_RUN.format(dataset=imp.dataset, model=imp.model, recipe=imp.recipe, seed=seed, round=r)
                    previous = IMP_RUN.format(
                        dataset=imp.dataset, model=imp.model, recipe=imp.recipe, seed=seed, round=r - 1
                    )
                    out.append(
                        ledger_row(
                            f"{run}/model.safetensors",
                            study="pathnorm",
                            method="imp",
                            dataset=imp.dataset,
                            model=imp.model,
                            sparsity=imp.sparsity(r)[0],
                            seed=seed,
                            parent=f"{previous}/model.safetensors" if r else "",
                            parent_role="previous_round" if r else "",
                            detail=f"round {r}",
                        )
                    )
        if pn.subsets is not None:
            sub = pn.subsets
            for f in sub.fractions:
                for seed in sub.seeds:
                    run = SUBSET_RUN.format(
                        dataset=sub.dataset, model=sub.model, recipe=sub.recipe, fraction=format_sparsity(f), seed=seed
                    )
                    out.append(
                        ledger_row(
                            f"{run}/model.safetensors",
                            study="pathnorm",
                            method="subset",
                            dataset=sub.dataset,
                            model=sub.model,
                            sparsity=0.0,
                            seed=seed,
                            detail=f"train fraction {f:g}",
                            data={"subset_fraction": f, "subset_seed": seed},
                        )
                    )
        return out

    def targets(self) -> list[str]:
        pn = self.cfg
        if pn is None:
            return []
        out = []
        if pn.bound:
            out += [f"{SUMMARY}/table2_bound.{ext}" for ext in ("csv", "md")]
        if pn.pretrained:
            out += [
                f"{SUMMARY}/{name}.{ext}" for name in ("table3_pathnorms", "table5_margins") for ext in ("csv", "md")
            ]
            out += [f"{SUMMARY}/figure3_margins.{ext}" for ext in ("pdf", "png")]
        if pn.imp is not None:
            out += [f"{SUMMARY}/figure4_imp.{ext}" for ext in ("csv", "pdf", "png")]
        if pn.subsets is not None:
            out += [f"{SUMMARY}/figure5_subsets.{ext}" for ext in ("csv", "pdf", "png")]
        return out
