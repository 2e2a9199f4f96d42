"""Saving and loading a model with its mask in the checkpoint format (:mod:`sparselab.io.checkpoint`).

Loading rebuilds the model from the sidecar's :class:`~sparselab.models.spec.ArchSpec` (narrowed
and tied models included, through the registry's build hooks) and loads weights and mask into
it; nothing is unpickled.
"""

from __future__ import annotations

import dataclasses
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..divergence import DivergenceError, describe, first_non_finite
from ..io.atomic import atomic_write_json
from ..io.checkpoint import (
    FORMAT,
    MASK_PREFIX,
    CheckpointError,
    read_meta,
    read_tensors,
    sidecar_path,
    verify_tensors,
    write_tensors,
)
from ..io.provenance import KEY as PARENTS_KEY
from ..io.provenance import Parent, Role, parent_of_file, parents_record, read_parents
from ..sparsity.mask import Mask
from .spec import ArchSpec

__all__ = ["Checkpoint", "parameter_counts", "save_checkpoint", "check_fits", "load_state_into", "load_checkpoint"]


@dataclasses.dataclass
class Checkpoint:
    model: nn.Module
    mask: Mask | None
    meta: dict[str, Any]
    sha256: str | None = None  # of the tensor file, when loading verified it (so nobody hashes it again)

    @property
    def spec(self) -> ArchSpec:
        return ArchSpec.from_dict(self.meta["arch"])

    @property
    def parents(self) -> tuple[Parent, ...] | None:
        """The checkpoints this one was made from; ``()`` for a root, None when its sidecar predates
        lineage (unknown)."""
        return read_parents(self.meta)

    def as_parent(self, role: Role, path: str | Path) -> Parent:
        """This checkpoint, loaded from ``path``, as the parent in ``role`` of one made from it
        (the verified hash when there is one: a job hashes each parent once)."""
        return parent_of_file(role, path, self.sha256)


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Total and non-zero parameter counts (compression is measured in parameters, not bytes)."""
    total = sum(p.numel() for p in model.parameters())
    nonzero = sum(int((p.detach() != 0).sum()) for p in model.parameters())
    return {"total": total, "nonzero": nonzero}


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    spec: ArchSpec,
    *,
    mask: Mask | None = None,
    meta: dict[str, Any] | None = None,
    parents: Sequence[Parent] | None = None,
) -> dict[str, Any]:
    """Write ``path`` (.safetensors) and its sidecar atomically; returns the sidecar dict.

    ``parents``: what the model was made from (:mod:`sparselab.io.provenance`); ``()`` for a root,
    None leaves the key out (unknown lineage).

    A model with a NaN or infinite parameter or buffer is refused (:class:`DivergenceError`, nothing
    written): whatever produced it diverged, and no later step should take it for a result."""
    path = Path(path)
    if mask is not None:
        mask.check_compatible(model)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    found = first_non_finite(tensors.items())
    if found is not None:
        raise DivergenceError(
            f"{path}: refusing to write non-finite weights: {describe(found)}; "
            "the training that produced them diverged (lower its learning rate)"
        )
    if mask is not None:
        tensors.update({k: v.cpu().contiguous() for k, v in mask.to_tensors(MASK_PREFIX).items()})
    digest, size = write_tensors(path, tensors)
    sidecar = {
        "format": FORMAT,
        "arch": spec.to_dict(),
        "params": parameter_counts(model),
        "sparsity": mask.report() if mask is not None else None,
        "tensors_sha256": digest,
        "tensors_bytes": size,
        "software": {"sparselab": __version__, "torch": torch.__version__, "python": platform.python_version()},
        **({PARENTS_KEY: parents_record(parents)} if parents is not None else {}),
        **(meta or {}),
    }
    atomic_write_json(sidecar_path(path), sidecar)
    return sidecar


def check_fits(spec: ArchSpec, info: Any, source: str) -> None:
    """A checkpoint must match the dataset it is trained or evaluated on (classes, input shape).

    ``info`` is the dataset's :class:`sparselab.data.DatasetInfo` (name, num_classes, input_shape)."""
    if spec.num_classes != info.num_classes or tuple(spec.input_shape) != tuple(info.input_shape):
        raise CheckpointError(
            f"{source}: model has {spec.num_classes} classes and input {tuple(spec.input_shape)}, "
            f"dataset {info.name!r} has {info.num_classes} classes and input {tuple(info.input_shape)}"
        )


def _preview(items: list[str], limit: int = 8) -> str:
    shown = "; ".join(items[:limit])
    return shown + (f"; ... and {len(items) - limit} more" if len(items) > limit else "")


def load_state_into(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with one error listing every missing, extra or misshapen key."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshapen = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if own[k].shape != state[k].shape
    ]
    if missing or unexpected or misshapen:
        parts = [
            f"{what} ({len(items)}): {_preview(items)}"
            for what, items in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatches", misshapen),
            )
            if items
        ]
        raise CheckpointError(f"{source} does not fit the model: " + " | ".join(parts))
    model.load_state_dict(state, strict=True)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", verify: bool = True) -> Checkpoint:
    """Rebuild the model from the sidecar's arch spec and load weights and mask (no pickle).

    ``verify`` checks the tensor file against its sidecar (:func:`verify_tensors`) first."""
    meta = read_meta(path)
    if verify:
        verify_tensors(path, meta)  # the file's SHA-256 is the sidecar's from here on
    state, mask_tensors = read_tensors(path, device)
    model = ArchSpec.from_dict(meta["arch"]).build().to(device)
    load_state_into(model, state, str(path))
    mask = None
    if mask_tensors:
        loaded = Mask.from_tensors(mask_tensors, MASK_PREFIX)
        loaded.check_compatible(model)
        order = [n for n, _ in model.named_parameters() if n in loaded]  # safetensors sorts keys
        mask = Mask({n: loaded[n] for n in order})
    return Checkpoint(model=model, mask=mask, meta=meta, sha256=meta["tensors_sha256"] if verify else None)
