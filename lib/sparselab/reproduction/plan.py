"""What the reproduction rule reads for the config being run (standard library only: parse time).

A ledger row applies when its config is one of the run's config files and its study is enabled; it
is compared when the config plans its run (else the table says "not planned"). The rule reads the
records of the sources those rows need, and nothing on the default run (digits, not paper-scale),
where the table only says what the paper configs would compare.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .ledger import LEDGER_DIR, PublishedRow, RecordSource, read_ledger

__all__ = ["K", "OUTPUTS", "ReproductionPlan", "config_names", "planned_runs"]

K = 2.0  # the published value agrees when it lies within our mean ± K·std over seeds
OUTPUTS = ("results/reproduction/table.csv", "results/reproduction/table.md")


def config_names(config_files: Iterable[str | os.PathLike[str]], root: str | Path) -> list[str]:
    """The run's config files relative to the workflow root (as the ledger names them) where they lie
    inside it, else as given."""
    base = Path(root).resolve()
    names = []
    for f in config_files:
        path = Path(f) if Path(f).is_absolute() else Path.cwd() / f
        try:
            names.append(path.resolve().relative_to(base).as_posix())
        except ValueError:
            names.append(str(f))
    return names


def _match_key(source: RecordSource, keys: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """A planned run's keys as the ledger's (dataset, model, method, sparsity), None when the
    source's fixed values (transfer's mode) exclude it."""
    if any(str(keys.get(col)) != value for col, value in source.where.items()):
        return None
    d = {k: keys[col] for k, col in source.columns.items()}
    return (str(d["dataset"]), str(d["model"]), str(d["method"]), round(float(d["sparsity"]), 9))


def planned_runs(plans: Mapping[str, Any], source: RecordSource) -> dict[tuple[Any, ...], list[list[Any]]]:
    """(dataset, model, method, sparsity) -> the [keys, summary] of every planned run (one per seed)
    of ``source``; empty when its study is disabled."""
    plan = plans.get(source.study)
    if plan is None or plan.cfg is None:
        return {}
    out: dict[tuple[Any, ...], list[list[Any]]] = {}
    for keys, path in getattr(plan, source.runs)():
        key = _match_key(source, keys)
        if key is not None:
            out.setdefault(key, []).append([dict(keys), path])
    return out


class ReproductionPlan:
    def __init__(
        self, root: str | Path, config_files: Sequence[str | os.PathLike[str]], plans: Mapping[str, Any], k: float = K
    ) -> None:
        self.root = Path(root)
        self.files = sorted(str(p.relative_to(self.root)) for p in (self.root / LEDGER_DIR).glob("*.csv"))
        self.ledger = read_ledger([self.root / f for f in self.files])  # configs/ may be absent from a copy
        self.configs = config_names(config_files, self.root)
        self.k = k
        self.rows = [r for r in self.ledger if r.config in self.configs]
        used = {r.record_source.name: r.record_source for r in self.rows}  # nothing to plan on the default run
        self._runs = {name: planned_runs(plans, s) for name, s in used.items()}

    def _planned(self, row: PublishedRow) -> bool:
        return (row.dataset, row.model, row.method, round(row.sparsity, 9)) in self._runs[row.record_source.name]

    def compared(self) -> list[PublishedRow]:
        """The rows of this run's config whose run the config plans."""
        return [r for r in self.rows if self._planned(r)]

    def published(self, wildcards: Any = None) -> dict[str, str]:
        """The ledger files (relative to the workflow root) -> the SHA-256 of their content: the rule's
        param, so an edited file reruns the table while a moved or cloned workflow (or ``--directory``)
        does not; the job reads them beside its script."""
        return {f: hashlib.sha256((self.root / f).read_bytes()).hexdigest() for f in self.files}

    def records(self, wildcards: Any = None) -> dict[str, str]:
        """Source name -> the records CSV the compared rows need."""
        needed = {r.record_source.name: r.record_source for r in self.compared()}
        return {name: s.records for name, s in sorted(needed.items()) if s.records is not None}

    def summaries(self, wildcards: Any = None) -> dict[str, list[list[Any]]]:
        """Source name -> [keys, summary.json] of the compared runs of sources without a records CSV."""
        out: dict[str, list[list[Any]]] = {}
        for r in self.compared():
            source = r.record_source
            if source.records is None:
                runs = self._runs[source.name][(r.dataset, r.model, r.method, round(r.sparsity, 9))]
                known = out.setdefault(source.name, [])
                known += [run for run in runs if run not in known]
        return out

    def inputs(self, wildcards: Any = None) -> list[str]:
        """Every file the comparison reads: records CSVs and summaries."""
        paths = list(self.records().values())
        paths += [path for runs in self.summaries().values() for _, path in runs]
        return list(dict.fromkeys(paths))

    def params(self, wildcards: Any = None) -> dict[str, Any]:
        """What the job compares: the run's config files that the ledger names (none on the default run,
        so renaming or editing a non-paper config never reruns the table), k, the records and summaries
        it reads."""
        named = {r.config for r in self.ledger}
        configs = [c for c in self.configs if c in named]
        return {"configs": configs, "k": self.k, "records": self.records(), "summaries": self.summaries()}

    def targets(self) -> list[str]:
        return list(OUTPUTS)
