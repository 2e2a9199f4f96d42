"""Published torchvision ImageNet weights, read only from the local torch hub cache.

The pipeline runs offline and must be reproducible, so nothing here ever downloads: a weights name
such as ``"ResNet50_Weights.IMAGENET1K_V2"`` resolves (through torchvision's own enum) to the file
that ``torch.hub`` would have cached, ``<hub_dir>/checkpoints/<basename of weights.url>``, and a
missing file is an error that says how to fetch it once on a machine with internet. Our ResNets
are state-dict-identical to torchvision's, so the file loads strictly into ``build_model(arch)``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import torch
from torch import nn

from .spec import ArchSpec

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum

# torchvision weights enum class -> our architecture (same state-dict keys and shapes).
PRETRAINED_ARCHS: Mapping[str, str] = MappingProxyType(
    {
        "ResNet18_Weights": "resnet18",
        "ResNet34_Weights": "resnet34",
        "ResNet50_Weights": "resnet50",
        "ResNet101_Weights": "resnet101",
        "ResNet152_Weights": "resnet152",
    }
)
INPUT_SHAPE: tuple[int, int, int] = (3, 224, 224)

# torchvision names files ``<stem>-<first hex digits of the sha256>.<ext>`` (torch.hub's convention).
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,})\.\w+$")
_LIST_HINT = "list valid names with: python -c \"import torchvision; print(list(torchvision.models.get_model_weights('resnet50')))\""


class PretrainedError(ValueError):
    """Unknown or unsupported weights name, or a cached weights file that is missing, corrupt or does not fit."""


def _resolve(weights: str) -> WeightsEnum:
    """The torchvision enum member for a full name ``"<Enum>.<MEMBER>"`` (``DEFAULT`` resolves to a concrete member)."""
    from torchvision.models import get_weight  # lazy: importing torchvision.models costs seconds

    if not isinstance(weights, str) or weights.count(".") != 1:
        raise PretrainedError(
            f"weights must be a full torchvision weights name such as 'ResNet50_Weights.IMAGENET1K_V2', "
            f"got {weights!r}; {_LIST_HINT}"
        )
    try:
        return get_weight(weights)
    # get_weight raises ValueError (unknown enum), KeyError (unknown member) or TypeError (a non-class name).
    except (ValueError, KeyError, TypeError) as e:
        raise PretrainedError(
            f"unknown torchvision weights {weights!r} ({type(e).__name__}: {e}); {_LIST_HINT}"
        ) from None


def _full_name(w: WeightsEnum) -> str:
    return f"{type(w).__name__}.{w.name}"


def _cache_path(w: WeightsEnum, hub_dir: str | Path | None) -> Path:
    """Where ``torch.hub.load_state_dict_from_url(w.url)`` stores the file (``hub_dir`` read at call time)."""
    root = Path(hub_dir) if hub_dir is not None else Path(torch.hub.get_dir())
    return root / "checkpoints" / Path(urlparse(w.url).path).name


def weights_file(weights: str, hub_dir: str | Path | None = None) -> Path:
    """The cached file of ``weights`` under ``hub_dir`` (default ``torch.hub.get_dir()``, which honours
    ``$TORCH_HOME``); a missing file is a ``PretrainedError`` with the path and the one-time fix."""
    return _existing_file(_resolve(weights), hub_dir)


def _existing_file(w: WeightsEnum, hub_dir: str | Path | None) -> Path:
    path = _cache_path(w, hub_dir)
    if not path.is_file():
        name = _full_name(w)
        raise PretrainedError(
            f"pretrained weights {name} are not in the local torch hub cache: expected {path} "
            f"(nothing is ever downloaded). Fix: once, on a machine with internet and the same TORCH_HOME, run "
            f"python -c \"import torchvision; torchvision.models.get_weight('{name}').get_state_dict()\" "
            f"(it saves to $TORCH_HOME/hub/checkpoints), or copy the file, e.g. from {w.url}, to {path}"
        )
    return path


def arch_of_weights(weights: str) -> str:
    """Our architecture for a torchvision weights name, e.g. ``ResNet50_Weights.IMAGENET1K_V2`` -> ``resnet50``."""
    return _arch(_resolve(weights))


def _arch(w: WeightsEnum) -> str:
    family = type(w).__name__
    if family not in PRETRAINED_ARCHS:
        raise PretrainedError(
            f"weights {_full_name(w)} are not supported: {family} has no state-dict-identical architecture here; "
            f"supported: {', '.join(PRETRAINED_ARCHS)}"
        )
    return PRETRAINED_ARCHS[family]


def embedded_hash_prefix(path: str | Path) -> str | None:
    """The sha256 prefix torchvision puts in a file name (``resnet18-f37072fd.pth`` -> ``f37072fd``), if any."""
    m = _HASH_IN_NAME.search(Path(path).name)
    return m.group(1) if m else None


def verify_hash(path: str | Path) -> None:
    """Check the file's sha256 starts with the prefix in its name, as ``torch.hub`` does with ``check_hash``."""
    path = Path(path)
    prefix = embedded_hash_prefix(path)
    if prefix is None:
        raise PretrainedError(f"{path}: the file name carries no '-<sha256 prefix>.' to check against")
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if not digest.startswith(prefix):
        raise PretrainedError(
            f"{path}: sha256 {digest[: len(prefix)]}... does not match the prefix {prefix} in its name "
            "(corrupt or partial file, or a different file under this name); fetch it again"
        )


def load_pretrained(
    weights: str, hub_dir: str | Path | None = None, *, check_hash: bool = False
) -> tuple[nn.Module, ArchSpec]:
    """Our architecture with the cached published weights loaded strictly, in eval mode, plus its spec.

    The file is read with ``weights_only=True`` (plain tensors, no arbitrary unpickling).
    """
    w = _resolve(weights)
    spec = ArchSpec(_arch(w), len(w.meta["categories"]), INPUT_SHAPE, {})
    path = _existing_file(w, hub_dir)
    if check_hash:
        verify_hash(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many types (pickle, zip, EOF, weights_only refusals)
        raise PretrainedError(f"cannot read pretrained weights {path}: {type(e).__name__}: {e}") from e
    if not isinstance(state, Mapping):
        raise PretrainedError(f"{path} holds a {type(state).__name__}, not a state dict")
    model = spec.build()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise PretrainedError(f"{path} does not fit {spec.arch} ({_full_name(w)}): {e}") from None
    return model.eval(), spec


def inference_transform(weights: str) -> nn.Module:
    """The weights' own evaluation preset (resize 256, center-crop 224, ImageNet normalisation for the
    ResNets), for data code to match the published accuracy; it is plain code and needs no download."""
    return _resolve(weights).transforms()
