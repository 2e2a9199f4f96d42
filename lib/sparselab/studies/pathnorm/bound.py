"""Table 2 of the path-norm study: the Theorem 3.1 constants of every ``pathnorm.bound`` setting
(rule ``pathnorm_bound``). Apart from :mod:`.artefacts` so that the bound's rule covers neither the
figure writers nor is covered by them; no torch import."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ...metrics.bound import bound_table_rows, normalisation_sup_norm
from . import report as pn
from .options import BoundSetting


def bound_rows(settings: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Table 2 rows for every setting (``pathnorm.bound``); B from the normalisation constants unless given."""
    rows = []
    for i, raw in enumerate(settings):
        s = BoundSetting.from_dict(raw, path=f"pathnorm.bound[{i}]")
        if s.B is not None:
            B = s.B
        elif s.mean is not None and s.std is not None:
            B = normalisation_sup_norm(s.mean, s.std, float32=s.float32)
        else:  # BoundSetting.validate refuses this when the config is read
            raise ValueError(f"pathnorm.bound[{i}]: setting {s.name!r}: give B, or mean and std")
        for row in bound_table_rows(s.archs, B=B, K=s.K, P=s.P, d_in=s.d_in, d_out=s.d_out, n=s.n):
            rows.append({"setting": s.name, **row})
    return rows


def write_bound_table(settings: Iterable[Mapping[str, Any]], out_csv: str | Path, out_md: str | Path) -> None:
    table = pn.bound_table(bound_rows(settings))
    pn.write_table(table, out_csv, out_md, pn.bound_markdown(table))
