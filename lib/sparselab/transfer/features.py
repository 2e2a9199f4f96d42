"""Features for linear finetuning (Iofinova et al. 2022, transfer notes §3.1), extracted once.

Features are the input of the network's last Linear layer (ResNets: the 2048-d pooled, post-ReLU
activations), taken with the backbone in eval mode (upstream BatchNorm statistics) and no
augmentation, in one pass per (upstream, dataset, split), and cached on disk as safetensors with a
JSON sidecar; the heads of :mod:`.linear` train on them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..io.atomic import atomic_path, atomic_write_json

__all__ = ["extract_features", "save_features", "load_features"]


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no Linear layer whose input could serve as features")
    return linears[-1]


@torch.no_grad()
def extract_features(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], placement: Any = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features, labels)`` of every sample, in loader order: the input of the last Linear layer,
    in eval mode (the model's train/eval state is restored), as float32 on the CPU.

    ``placement``: the job's :class:`sparselab.compute.Placement` (batches moved with it, the pass
    under its autocast), the model already placed with it; None for a CPU model. Not imported
    here: the linear heads read features through this module and never depend on device code."""
    head = _last_linear(model)
    captured: list[torch.Tensor] = []
    hook = head.register_forward_pre_hook(lambda _m, args: captured.append(args[0].detach().float().flatten(1).cpu()))
    was_training = model.training
    model.eval()
    labels = []
    try:
        for x, y in batches:
            if placement is None:
                model(x)
            else:
                with placement.autocast():
                    model(placement.batch(x))
            labels.append(y.cpu())
    finally:
        hook.remove()
        model.train(was_training)
    if not captured:
        raise ValueError("no samples to extract features from")
    return torch.cat(captured), torch.cat(labels).long()


def save_features(path: str | Path, features: torch.Tensor, labels: torch.Tensor, meta: dict[str, Any]) -> None:
    """Features and labels (safetensors) with a JSON sidecar describing where they come from."""
    with atomic_path(path) as tmp:
        save_file({"features": features.contiguous(), "labels": labels.contiguous()}, str(tmp))
    atomic_write_json(
        Path(path).with_suffix(".json"), {**meta, "samples": int(labels.numel()), "dim": int(features.shape[1])}
    )


def load_features(path: str | Path) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    tensors = load_file(str(path))
    meta = json.loads(Path(path).with_suffix(".json").read_text())
    return tensors["features"], tensors["labels"], meta
