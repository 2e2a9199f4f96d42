"""The checkpoint format: weights and masks in safetensors, everything else in a JSON sidecar.

``model.safetensors`` holds the model's state dict (parameters and buffers, e.g. BN statistics)
plus one boolean tensor per masked parameter under ``mask/<param name>``. ``model.json`` (same
stem) holds the architecture spec needed to rebuild the model, the dataset, the resolved
hyperparameters, the per-layer sparsity, final metrics and the size and SHA-256 of the tensor file.
Loading never unpickles anything: safetensors is plain tensors, the sidecar is JSON.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .. import __version__
from ..divergence import DivergenceError, describe, first_non_finite
from ..sparsity.mask import Mask
from .atomic import atomic_path, atomic_write_json
from .hashing import file_sha256

FORMAT = "sparselab-checkpoint/1"
MASK_PREFIX = "mask/"


class CheckpointError(ValueError):
    """A checkpoint is missing, inconsistent, or does not fit the architecture it names."""


@dataclasses.dataclass(frozen=True)
class ArchSpec:
    """Everything needed to rebuild a model before loading its weights (its shape spec)."""

    arch: str
    num_classes: int
    input_shape: tuple[int, int, int]
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Structured pruning: the width of every conv that was narrowed (producer name -> filters),
    # see sparselab.structured.removal; None for the architecture as registered.
    widths: dict[str, int] | None = None
    # Tied (HashedNet-style) weights: {"modules": [...], "sparsity": s, "seed": k}, see sparselab.dst.tied;
    # the index of every position is in the state dict, so loading restores the exact tying.
    tied: dict[str, Any] | None = None

    def build(self) -> nn.Module:
        from ..models import build_model

        model = build_model(self.arch, self.num_classes, self.input_shape, **self.kwargs)
        if self.widths:
            from ..structured.dependency import channel_groups
            from ..structured.removal import narrow

            model = narrow(model, channel_groups(model, self.input_shape), self.widths)
        if self.tied:
            from ..dst.tied import tie_weights

            tie_weights(model, self.tied["modules"], float(self.tied["sparsity"]), int(self.tied["seed"]))
        return model

    def with_widths(self, widths: dict[str, int] | None) -> "ArchSpec":
        return dataclasses.replace(self, widths=dict(widths) if widths else None)

    def to_dict(self) -> dict[str, Any]:
        d = {"arch": self.arch, "num_classes": self.num_classes, "input_shape": list(self.input_shape), "kwargs": self.kwargs}
        if self.widths:
            d["widths"] = dict(self.widths)
        if self.tied:
            d["tied"] = dict(self.tied)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArchSpec":
        widths = d.get("widths")
        return cls(d["arch"], int(d["num_classes"]), tuple(d["input_shape"]), dict(d.get("kwargs", {})),
                   {str(k): int(v) for k, v in widths.items()} if widths else None, d.get("tied"))  # fmt: skip


@dataclasses.dataclass
class Checkpoint:
    model: nn.Module
    mask: Mask | None
    meta: dict[str, Any]

    @property
    def spec(self) -> ArchSpec:
        return ArchSpec.from_dict(self.meta["arch"])


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


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
) -> dict[str, Any]:
    """Write ``path`` (.safetensors) and its sidecar atomically; returns the sidecar dict.

    A model with a NaN or infinite parameter or buffer is refused (:class:`DivergenceError`, nothing
    written): whatever produced it diverged, and no later step should take it for a result."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: checkpoint files end in .safetensors")
    if mask is not None:
        mask.check_compatible(model)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    found = first_non_finite(tensors.items())
    if found is not None:
        raise DivergenceError(f"{path}: refusing to write non-finite weights: {describe(found)}; "
                              "the training that produced them diverged (lower its learning rate)")  # fmt: skip
    if mask is not None:
        tensors.update({k: v.cpu().contiguous() for k, v in mask.to_tensors(MASK_PREFIX).items()})
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
        digest, size = file_sha256(tmp), tmp.stat().st_size
    sidecar = {
        "format": FORMAT,
        "arch": spec.to_dict(),
        "params": parameter_counts(model),
        "sparsity": mask.report() if mask is not None else None,
        "tensors_sha256": digest,
        "tensors_bytes": size,
        "software": {"sparselab": __version__, "torch": torch.__version__, "python": platform.python_version()},
        **(meta or {}),
    }
    atomic_write_json(sidecar_path(path), sidecar)
    return sidecar


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
        raise CheckpointError(f"{sidecar_path(path)}: no tensors_sha256, so {path.name} cannot be verified; "
                              "re-save the checkpoint with sparselab, or skip the check if you trust it "
                              "(CLI --no-verify, API verify=False)")  # fmt: skip
    expected, actual = meta.get("tensors_bytes"), path.stat().st_size
    if expected is not None and actual != int(expected):
        raise CheckpointError(f"{path}: {actual} bytes, its sidecar says {expected} "
                              "(truncated or partially copied?); copy it again")  # fmt: skip
    if file_sha256(path) != digest:
        raise CheckpointError(f"{path}: tensors do not match the sidecar's SHA-256 (partially copied or edited?)")


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
            for what, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", misshapen))
            if items
        ]
        raise CheckpointError(f"{source} does not fit the model: " + " | ".join(parts))
    model.load_state_dict(state, strict=True)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", verify: bool = True) -> Checkpoint:
    """Rebuild the model from the sidecar's arch spec and load weights and mask (no pickle).

    ``verify`` checks the tensor file against its sidecar (:func:`verify_tensors`) first."""
    meta = read_meta(path)
    if verify:
        verify_tensors(path, meta)
    tensors = load_file(str(path), device=str(device))
    mask_tensors = {k: v for k, v in tensors.items() if k.startswith(MASK_PREFIX)}
    state = {k: v for k, v in tensors.items() if not k.startswith(MASK_PREFIX)}
    model = ArchSpec.from_dict(meta["arch"]).build().to(device)
    load_state_into(model, state, str(path))
    mask = None
    if mask_tensors:
        loaded = Mask.from_tensors(mask_tensors, MASK_PREFIX)
        loaded.check_compatible(model)
        order = [n for n, _ in model.named_parameters() if n in loaded]  # safetensors sorts keys
        mask = Mask({n: loaded[n] for n in order})
    return Checkpoint(model=model, mask=mask, meta=meta)
