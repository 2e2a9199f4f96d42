"""A job's side directory of resumable state, keyed by everything the job's result depends on.

Long jobs save their progress (epochs, pruning rounds, IMP snapshots) to a directory that is not a
declared output, so Snakemake never deletes it and a killed job resumes from it. That state is only
valid for the job that wrote it: the same config, the same code and the same input files. The key
of those three is stored beside the state (``KEY.json``); a job that finds another key discards the
directory with a log line naming what changed, and a job that succeeds removes it (its declared
outputs supersede it), so no finished or foreign state is ever picked up again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .atomic import atomic_write_json
from .hashing import file_sha256

log = logging.getLogger(__name__)

KEY_FILE = "KEY.json"


def config_digest(config: Mapping[str, Any]) -> str:
    """SHA-256 of the job's configuration as canonical JSON (key order does not matter)."""
    text = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def inputs_digest(paths: Iterable[str | Path]) -> dict[str, str]:
    """Path -> SHA-256 of each input file (directories and missing paths are skipped: only files
    that a job reads whole can make its saved state stale)."""
    return {str(p): file_sha256(p)[:16] for p in sorted({str(p) for p in paths}) if Path(p).is_file()}


def state_key(config: Mapping[str, Any], code: str, inputs: Iterable[str | Path] = ()) -> dict[str, Any]:
    """What the saved state of a job is valid for: its config, its code digest, its input files."""
    return {"config": config_digest(config), "code": code, "inputs": inputs_digest(inputs)}


def _changed(old: Any, new: Mapping[str, Any]) -> list[str]:
    if not isinstance(old, dict):
        return ["key (none stored)"]
    return [part for part in ("code", "config", "inputs") if old.get(part) != new[part]]


def open_state_dir(path: str | Path, key: Mapping[str, Any]) -> Path:
    """Make ``path`` the state directory of the job with ``key``: state stored under another key
    (or under none) is removed first, with a warning naming what changed."""
    path = Path(path)
    if path.exists():
        try:
            old = json.loads((path / KEY_FILE).read_text())
        except (OSError, ValueError):
            old = None
        changed = _changed(old, key)
        if changed:
            if any(path.iterdir()):
                log.warning(
                    "discarding resume state in %s: it was written by a job with another %s",
                    path,
                    " and ".join(changed),
                )
            shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path / KEY_FILE, dict(key))
    return path


def close_state_dir(path: str | Path) -> None:
    """The job succeeded: its outputs supersede the saved state."""
    shutil.rmtree(path, ignore_errors=True)
