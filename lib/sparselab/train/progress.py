"""Progress output: a tqdm bar on an interactive terminal, one plain line per epoch in log files."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm.auto import tqdm

log = logging.getLogger("sparselab")


def interactive(mode: str) -> bool:
    if mode == "bar":
        return True
    if mode == "lines":
        return False
    return sys.stderr.isatty()


def batches(iterable: Iterable[Any], total: int, desc: str, bar: bool) -> Iterator[Any]:
    if bar:
        yield from tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)
    else:
        yield from iterable


def format_row(row: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {row['epoch']}/{epochs}"]
    for key in ("lr", "train_loss", "train_top1", "val_loss", "val_top1", "test_loss", "test_top1"):
        value = row.get(key)
        if value is not None:
            parts.append(f"{key}={value:.4g}")
    if row.get("epoch_time_s") is not None:
        parts.append(f"({row['epoch_time_s']:.1f}s)")
    return " ".join(parts)
