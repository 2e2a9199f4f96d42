"""The complexity ledger's plan: the final checkpoints every other study's plan lists
(``ledger_checkpoints()``), one measurement job per study that has any, then one job for the
ledger CSV, the Kendall τ table and the figure.

The plans are handed over by the composer (:meth:`Plan.attach`): the ledger imports no study.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..base.plan import StudyPlan
from .config import LedgerConfig

PART = "results/ledger/parts/{study}.csv"
SUMMARY = "results/ledger"


class Plan(StudyPlan[LedgerConfig, Any]):
    sources: Mapping[str, Any] = {}

    def attach(self, plans: Mapping[str, Any]) -> None:
        """The other studies' plans, in the composer's order (the first to list a checkpoint owns its row)."""
        self.sources = {name: plan for name, plan in plans.items() if plan is not self}

    def rows(self, wildcards: Any = None) -> list[dict[str, Any]]:
        """Every final checkpoint once: a checkpoint several studies list (a dense model, a
        transfer upstream that is another study's output) belongs to the first, the others are
        named in ``also_in``."""
        if self.cfg is None:
            return []
        rows: dict[str, dict[str, Any]] = {}
        for name, plan in self.sources.items():
            if plan.cfg is None:
                continue
            for row in plan.ledger_checkpoints():
                if row["path"] in rows:
                    kept = rows[row["path"]]
                    if name != kept["study"] and name not in kept["also_in"].split():
                        kept["also_in"] = f"{kept['also_in']} {name}".strip()
                    continue
                rows[row["path"]] = {**row, "also_in": ""}
        return list(rows.values())

    def studies(self) -> list[str]:
        """The studies with at least one checkpoint, in the composer's order."""
        return list(dict.fromkeys(row["study"] for row in self.rows()))

    def part_rows(self, wildcards: Any) -> list[dict[str, Any]]:
        """A measurement job's param: its study's rows (a study's edit reruns only its part)."""
        return [row for row in self.rows() if row["study"] == wildcards.study]

    def part_checkpoints(self, wildcards: Any) -> list[str]:
        return [row["path"] for row in self.part_rows(wildcards)]

    def part_data(self, wildcards: Any) -> dict[str, dict[str, Any]]:
        """The dataset entries the part's checkpoints were trained on (rows' ``data`` override them)."""
        names = sorted({row["dataset"] for row in self.part_rows(wildcards)})
        return {name: self.shared.datasets[name].to_dict() for name in names}

    def measure_options(self, wildcards: Any = None) -> dict[str, Any]:
        return self.config.options.spec()

    def part_paths(self, wildcards: Any = None) -> list[str]:
        return [PART.format(study=study) for study in self.studies()]

    def report_options(self, wildcards: Any = None) -> dict[str, Any]:
        """The report's param: the measures ranked against the gap, and the title."""
        return {"measures": list(self.config.options.measures), "title": self.config.title}

    def targets(self) -> list[str]:
        if self.cfg is None or not self.rows():
            return []
        names = ["checkpoints.csv", "kendall.csv", "kendall.md", "figure_ledger.pdf", "figure_ledger.png"]
        return [f"{SUMMARY}/{name}" for name in names]
