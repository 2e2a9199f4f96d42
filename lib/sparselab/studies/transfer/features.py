"""Features of an upstream on a downstream dataset, extracted once and cached (the linear protocol's input)."""

from __future__ import annotations

from pathlib import Path

from ...compute import place
from ...config import ComputeHparams, DataHparams
from ...data import build_splits, make_loader
from ...io.hashing import file_sha256
from ...models.checkpoint import load_checkpoint
from ...transfer.features import extract_features, save_features
from .common import backbone_sparsity


def run_feature_extraction(
    upstream: str | Path,
    data: DataHparams,
    train_out: str | Path,
    test_out: str | Path,
    *,
    compute: ComputeHparams,
    batch_size: int = 256,
) -> None:
    """One eval-mode pass of the upstream over the downstream train (no augmentation) and test
    splits, under the job's bf16 autocast where it is on (a plain forward pass; features are stored
    in float32); the features (input of the last Linear) are cached as safetensors with a sidecar."""
    ckpt = load_checkpoint(upstream)
    splits = build_splits(data)
    if tuple(ckpt.spec.input_shape) != tuple(splits.info.input_shape):
        raise ValueError(
            f"{upstream}: the upstream takes inputs {tuple(ckpt.spec.input_shape)}, {data.source} gives "
            f"{tuple(splits.info.input_shape)}; set the downstream dataset's image_size/channels"
        )
    placement = place(compute)
    model = placement.model(ckpt.model)
    meta = {
        "upstream": str(upstream),
        "upstream_sha256": file_sha256(upstream),
        "source": data.source,
        "num_classes": splits.info.num_classes,
        "backbone_sparsity": backbone_sparsity(ckpt.model),
    }
    for split, ds, out in (("train", splits.train_eval, train_out), ("test", splits.test, test_out)):
        loader = make_loader(ds, batch_size, shuffle=False, **placement.loader_options())
        features, labels = extract_features(model, loader, placement)
        save_features(out, features, labels, {**meta, "split": split})
