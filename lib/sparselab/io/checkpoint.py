"""The checkpoint file format: tensors in safetensors, everything else in a JSON sidecar.

``model.safetensors`` holds a model's state dict (parameters and buffers, e.g. BN statistics)
plus one boolean tensor per masked parameter under ``mask/<param name>``. ``model.json`` (same
stem) holds the architecture spec needed to rebuild the model, the dataset, the resolved
hyperparameters, the per-layer sparsity, final metrics, the size and SHA-256 of the tensor file and
the files the checkpoint was made from (``parents``: :mod:`.provenance`).
Loading never unpickles anything: safetensors is plain tensors, the sidecar is JSON.

Bytes only: building the model a checkpoint describes, and its mask, is
:mod:`sparselab.models.checkpoint`'s job (io sits below the models).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .atomic import atomic_path
from .hashing import file_sha256

__all__ = [
    "FORMAT",
    "MASK_PREFIX",
    "CheckpointError",
    "sidecar_path",
    "write_tensors",
    "read_tensors",
    "read_meta",
    "verify_tensors",
]

FORMAT = "sparselab-checkpoint/1"
MASK_PREFIX = "mask/"


class CheckpointError(ValueError):
    """A checkpoint is missing, inconsistent, or does not fit the architecture it names."""


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def write_tensors(path: str | Path, tensors: Mapping[str, torch.Tensor]) -> tuple[str, int]:
    """Write the tensor file ``path`` (.safetensors) atomically; returns its SHA-256 and size for the sidecar."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: checkpoint files end in .safetensors")
    with atomic_path(path) as tmp:
        save_file(dict(tensors), str(tmp), metadata={"format": FORMAT})
        return file_sha256(tmp), tmp.stat().st_size


def read_tensors(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The state dict and the mask tensors (still under :data:`MASK_PREFIX`) of the tensor file ``path``."""
    tensors = load_file(str(path), device=str(device))
    masks = {k: v for k, v in tensors.items() if k.startswith(MASK_PREFIX)}
    state = {k: v for k, v in tensors.items() if not k.startswith(MASK_PREFIX)}
    return state, masks


def read_meta(path: str | Path) -> dict[str, Any]:
    """The sidecar of the checkpoint ``path`` (which must exist: a sidecar alone is no checkpoint)."""
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    side = sidecar_path(path)
    if not side.exists():
        raise CheckpointError(f"{path}: sidecar {side.name} is missing (was the checkpoint written by sparselab?)")
    meta = json.loads(side.read_text())
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{side}: format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta


def verify_tensors(path: str | Path, meta: dict[str, Any]) -> None:
    """The tensor file is the one its sidecar describes: its size (cheap, when recorded), then its SHA-256.

    A sidecar without a hash cannot vouch for anything, so it is an error rather than a silent skip."""
    path = Path(path)
    digest = meta.get("tensors_sha256")
    if not digest:
        raise CheckpointError(
            f"{sidecar_path(path)}: no tensors_sha256, so {path.name} cannot be verified; "
            "re-save the checkpoint with sparselab, or skip the check if you trust it "
            "(CLI --no-verify, API verify=False)"
        )
    expected, actual = meta.get("tensors_bytes"), path.stat().st_size
    if expected is not None and actual != int(expected):
        raise CheckpointError(
            f"{path}: {actual} bytes, its sidecar says {expected} (truncated or partially copied?); copy it again"
        )
    if file_sha256(path) != digest:
        raise CheckpointError(f"{path}: tensors do not match the sidecar's SHA-256 (partially copied or edited?)")
