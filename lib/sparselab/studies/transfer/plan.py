"""The transfer study's plan: upstreams (dense, GMP, AC/DC, RigL, imported or any checkpoint by path),
features cached once per upstream x downstream dataset, linear heads, full finetuning and the
from-scratch baseline; then records, what each upstream costs, tables and the figure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..base.plan import StudyPlan, ledger_row
from .config import NORMALIZE_CHOICE, TransferConfig, TransferExperiment, Upstream

ROOT = "results/transfer/{updataset}/{model}"
SUMMARY = "results/transfer/summary"


def _keys(exp: TransferExperiment, up: Upstream, mode: str, dataset: str) -> dict[str, Any]:
    return {
        "upstream_dataset": exp.dataset,
        "model": exp.model,
        "upstream": up.name,
        "sparsity": up.sparsity,
        "mode": mode,
        "dataset": dataset,
    }


class Plan(StudyPlan[TransferConfig, TransferExperiment]):
    def experiment(self, wildcards: Any) -> TransferExperiment:
        """The experiment of a job: its upstream dataset (``updataset``) and model wildcards."""
        return self.config.experiment(wildcards.updataset, wildcards.model)

    def upstream(self, wildcards: Any) -> Upstream:
        return self.experiment(wildcards).upstream(wildcards.upstream, wildcards.sparsity)

    def checkpoint_of(self, exp: TransferExperiment, up: Upstream) -> str:
        """Where an upstream's checkpoint comes from: rules/train.smk (dense), the GMP / AC/DC / RigL / import
        rules of rules/transfer.smk, or the configured path (another study's output, or any file)."""
        root = ROOT.format(updataset=exp.dataset, model=exp.model)
        if up.kind == "dense":
            assert exp.dense_recipe is not None
            return self.dense_model(exp.dataset, exp.model, exp.dense_recipe, exp.seed)
        if up.kind in ("gmp", "acdc", "rigl"):
            return f"{root}/upstream/{up.kind}/s{up.sparsity_str}/model.safetensors"
        if up.kind == "import":
            return f"{root}/upstream/imported/{up.name}/s{up.sparsity_str}/model.safetensors"
        return str(up.path)

    def upstream_checkpoint(self, wildcards: Any) -> str:
        return self.checkpoint_of(self.experiment(wildcards), self.upstream(wildcards))

    def dense_checkpoint(self, wildcards: Any) -> str:
        exp = self.experiment(wildcards)
        assert exp.dense_recipe is not None
        return self.dense_model(exp.dataset, exp.model, exp.dense_recipe, exp.seed)

    def upstream_data(self, wildcards: Any) -> dict[str, Any]:
        return self.shared.datasets[self.experiment(wildcards).dataset].to_dict()

    def downstream_data(self, wildcards: Any) -> dict[str, Any]:
        """The downstream dataset, with the upstream's overrides (RigL: bicubic resampling)."""
        return {**self.shared.datasets[wildcards.dataset].to_dict(), **dict(self.upstream(wildcards).data)}

    def feature_data(self, wildcards: Any) -> dict[str, Any]:
        """The downstream data of feature extraction: the linear protocol's normalisation (the paper's
        pre-extracted features: ImageNet statistics) where the source offers a choice."""
        data = self.downstream_data(wildcards)
        if data["source"] in NORMALIZE_CHOICE:
            data["normalize"] = self.experiment(wildcards).linear.normalize
        return data

    def part_recipe(self, part: str) -> Callable[[Any], dict[str, Any]]:
        """The recipe of one part (gmp, acdc, rigl, full, scratch) of the experiment, for a rule's params."""
        return lambda wildcards: self.recipe(getattr(self.experiment(wildcards), part).recipe)

    def part_epochs(self, part: str) -> Callable[[Any], int]:
        return lambda wildcards: self.epochs(getattr(self.experiment(wildcards), part).recipe)

    def part_dataset(self, part: str) -> Callable[[Any], str]:
        """The dataset a part's jobs train on: the upstream's for GMP, AC/DC and RigL, else the downstream."""
        if part in ("gmp", "acdc", "rigl"):
            return lambda wildcards: self.experiment(wildcards).dataset
        return lambda wildcards: wildcards.dataset

    def import_source(self, wildcards: Any) -> str:
        return str(self.upstream(wildcards).path)

    def import_kind(self, wildcards: Any) -> str | None:
        return self.upstream(wildcards).import_kind

    def num_classes(self, wildcards: Any) -> int:
        return self.upstream(wildcards).num_classes

    def gmp_options(self, wildcards: Any) -> dict[str, Any]:
        gmp = self.experiment(wildcards).gmp
        return {} if gmp is None else gmp.options()

    def rigl_options(self, wildcards: Any) -> dict[str, Any]:
        rigl = self.experiment(wildcards).rigl
        return {} if rigl is None else rigl.options()

    def sparse_layers(self, wildcards: Any) -> str | tuple[str, ...]:
        return self.experiment(wildcards).sparse_layers

    def upstream_seed(self, wildcards: Any) -> int:
        return self.experiment(wildcards).seed

    def linear_options(self, wildcards: Any) -> dict[str, Any]:
        return self.experiment(wildcards).linear.to_dict()

    def full_lr(self, wildcards: Any) -> float | None:
        return self.experiment(wildcards).full_lr(wildcards.dataset)

    def mem_mb(self, wildcards: Any) -> int:
        """Memory of the data the job reads: the downstream dataset's, or the upstream's for GMP / AC/DC / RigL."""
        dataset = dict(wildcards.items()).get("dataset") or self.experiment(wildcards).dataset
        return self.shared.mem_mb(dataset)

    def summaries(self, wildcards: Any = None) -> list[list[Any]]:
        """[keys, summary.json] of every linear (all seeds in one summary), full and scratch job."""
        out: list[list[Any]] = []
        for exp in self.cfg.experiments if self.cfg is not None else ():
            root = ROOT.format(updataset=exp.dataset, model=exp.model)
            for dataset in exp.downstream:
                for up in exp.upstreams():
                    run = f"{root}/{up.name}/s{up.sparsity_str}"
                    out.append([_keys(exp, up, "linear", dataset), f"{run}/linear/{dataset}/summary.json"])
                    for seed in exp.full.seeds if exp.full else ():
                        out.append(
                            [
                                {**_keys(exp, up, "full", dataset), "seed": seed},
                                f"{run}/full/{dataset}/seed{seed}/summary.json",
                            ]
                        )
                for seed in exp.scratch.seeds if exp.scratch else ():
                    keys = {
                        "upstream_dataset": exp.dataset,
                        "model": exp.model,
                        "upstream": "scratch",
                        "sparsity": 0.0,
                        "mode": "scratch",
                        "dataset": dataset,
                        "seed": seed,
                    }
                    out.append([keys, f"{root}/scratch/{dataset}/seed{seed}/summary.json"])
        return out

    def summary_paths(self, wildcards: Any = None) -> list[str]:
        return [path for _, path in self.summaries()]

    def upstream_list(self, wildcards: Any = None) -> list[list[Any]]:
        """[keys, checkpoint] of every upstream of every experiment (the upstream table's rows)."""
        out: list[list[Any]] = []
        for exp in self.cfg.experiments if self.cfg is not None else ():
            for up in exp.upstreams():
                keys = {
                    "upstream_dataset": exp.dataset,
                    "model": exp.model,
                    "upstream": up.name,
                    "sparsity": up.sparsity,
                }
                out.append([keys, self.checkpoint_of(exp, up)])
        return out

    def upstream_summaries(self, wildcards: Any = None) -> list[list[Any]]:
        """[keys, summary.json] of every upstream trained here (GMP, AC/DC, RigL): their own test top-1,
        which the reproduction ledger compares with the published upstreams'."""
        out: list[list[Any]] = []
        for exp in self.cfg.experiments if self.cfg is not None else ():
            for up in exp.upstreams():
                if up.kind in ("gmp", "acdc", "rigl"):
                    keys = {
                        "upstream_dataset": exp.dataset,
                        "model": exp.model,
                        "upstream": up.name,
                        "sparsity": up.sparsity,
                        "seed": exp.seed,
                    }
                    summary = self.checkpoint_of(exp, up).removesuffix("model.safetensors") + "summary.json"
                    out.append([keys, summary])
        return out

    def ledger_checkpoints(self) -> list[dict[str, Any]]:
        """The upstreams (GMP's parent: the dense model it prunes), every full finetune (its parent:
        its upstream, trained on the downstream set with the upstream's data overrides) and every
        from-scratch baseline. Linear heads have no checkpoint."""
        out: list[dict[str, Any]] = []
        for exp in self.cfg.experiments if self.cfg is not None else ():
            root = ROOT.format(updataset=exp.dataset, model=exp.model)
            up_keys: dict[str, Any] = {
                "study": "transfer",
                "dataset": exp.dataset,
                "model": exp.model,
                "seed": exp.seed,
            }
            for up in exp.upstreams():
                parent = self.dense_checkpoint_of(exp) if up.kind == "gmp" else ""
                out.append(
                    ledger_row(
                        self.checkpoint_of(exp, up),
                        **up_keys,
                        method=up.kind if up.kind != "checkpoint" else up.name,
                        sparsity=up.sparsity,
                        parent=parent,
                        parent_role="dense" if parent else "",
                        detail=f"upstream {up.name}",
                    )
                )
            for dataset in exp.downstream:
                for up in exp.upstreams():
                    for seed in exp.full.seeds if exp.full else ():
                        out.append(
                            ledger_row(
                                f"{root}/{up.name}/s{up.sparsity_str}/full/{dataset}/seed{seed}/model.safetensors",
                                study="transfer",
                                method="full",
                                dataset=dataset,
                                model=exp.model,
                                sparsity=up.sparsity,
                                seed=seed,
                                parent=self.checkpoint_of(exp, up),
                                parent_role="upstream",
                                detail=f"{up.name} s{up.sparsity_str} -> {dataset}",
                                data=dict(up.data),
                            )
                        )
                for seed in exp.scratch.seeds if exp.scratch else ():
                    out.append(
                        ledger_row(
                            f"{root}/scratch/{dataset}/seed{seed}/model.safetensors",
                            study="transfer",
                            method="scratch",
                            dataset=dataset,
                            model=exp.model,
                            sparsity=0.0,
                            seed=seed,
                            detail=f"scratch -> {dataset}",
                        )
                    )
        return out

    def dense_checkpoint_of(self, exp: TransferExperiment) -> str:
        assert exp.dense_recipe is not None
        return self.dense_model(exp.dataset, exp.model, exp.dense_recipe, exp.seed)

    def upstream_paths(self, wildcards: Any = None) -> list[str]:
        return list(dict.fromkeys(path for _, path in self.upstream_list()))

    def targets(self) -> list[str]:
        if self.cfg is None or not self.summaries():
            return []
        names = ["records.csv", "table_transfer.csv", "table_transfer.md", "table_headline.csv", "table_headline.md"]
        names += ["upstreams.csv", "table_upstreams.csv", "table_upstreams.md"]
        names += [f"figure_transfer.{ext}" for ext in ("pdf", "png")]
        return [f"{SUMMARY}/{name}" for name in names]
