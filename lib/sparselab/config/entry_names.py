"""Which ``datasets`` entry of the config reads which root, so that data errors name the user's key.

Apart from :mod:`.roots` because every workflow job records the names when it starts
(:mod:`sparselab.jobs`): the layout checks stay out of the code digest of jobs that read no data.
Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# (source, root) -> the names of the config entries that read it, from the config loaded last.
_ENTRY_NAMES: dict[tuple[str, str | None], tuple[str, ...]] = {}


def remember_entry_names(datasets: Mapping[str, Any]) -> None:
    """Remember which ``datasets`` entries (name -> DataHparams or its dict) read which root.

    Why: data builders get a ``DataHparams``, which holds no entry name (adding one would change
    every run's fingerprint), yet their errors must name the user's key. Loading a workflow config
    and starting a workflow job call this, replacing what an earlier config said.
    """
    names: dict[tuple[str, str | None], list[str]] = {}
    for name, entry in datasets.items():
        fields = entry if isinstance(entry, Mapping) else vars(entry)
        names.setdefault((fields.get("source", "digits"), fields.get("root")), []).append(name)
    _ENTRY_NAMES.clear()
    _ENTRY_NAMES.update({k: tuple(v) for k, v in names.items()})


def source_root_key(source: str, root: str | None = None) -> str:
    """The config key of a source's root: ``datasets.<name>.root`` of the entries known to read
    ``root`` (see :func:`remember_entry_names`), else the generic ``datasets.<source>.root``."""
    names = _ENTRY_NAMES.get((source, root))
    if names:
        return " / ".join(f"datasets.{n}.root" for n in names)
    return f"datasets.<{source}>.root"
