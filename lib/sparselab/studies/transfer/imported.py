"""Imported upstreams: external checkpoints (torchvision, common formats, RigL, STR) in our format."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...io.atomic import atomic_write_json
from ...transfer.imports import import_checkpoint


def run_import(
    source: str | Path,
    out: str | Path,
    report_json: str | Path,
    *,
    kind: str,
    arch: str,
    arch_kwargs: Mapping[str, Any],
    num_classes: int,
) -> dict[str, Any]:
    """An external checkpoint in our format, with its measured sparsity (what the import reports)."""
    result = import_checkpoint(source, kind, arch, num_classes, Path(out), arch_kwargs=dict(arch_kwargs))  # type: ignore[arg-type]
    report = {
        "source": str(source),
        "kind": kind,
        "arch": arch,
        "sparsity": result.sparsity,
        "per_layer": result.per_layer,
        "notes": result.notes,
    }
    atomic_write_json(report_json, report)
    return report
