"""Import upstream checkpoints of the sparse-transfer study into the sparselab checkpoint format.

Reference: ``shared/reference/transfer.md`` §6 (the upstream pool, the "common format", the RigL and
STR layouts) and §11.4 (RigL's stem is silently left random by prefix-filtered loading). Four kinds:

* ``"torchvision"``: a plain state dict as torchvision publishes it (``<hub>/checkpoints/resnet50-*.pth``),
  given as a path or as a weights name (``"ResNet50_Weights.IMAGENET1K_V2"``) found in the local hub
  cache through :mod:`sparselab.models.pretrained` (never downloaded).
* ``"common"``: a ``torch.save`` dict with ``model_config = {"arch", "dataset"}`` and ``model_state_dict``
  (§6.2); the arch string selects the layout (``resnet50`` torchvision, ``resnet50_rigl``, ``resnet50_str``).
  Keys may carry ``module.`` and the wrapped form ``<layer>._layer.weight|bias`` / ``<layer>._weight_mask|_bias_mask``.
* ``"rigl"``: the TF-layout ResNet of §6.2 (``initial_conv.{conv,bn}``, ``layerN.block.K.convM.{conv,bn}``,
  ``layerN.block.K.shortcut.{conv,bn}``), bare or inside a common-format dict.
* ``"str"``: torchvision names with ``fc`` stored as a 1x1 conv (§6.2), bare or inside a common-format dict.

Files are read with ``torch.load(weights_only=True)``: plain tensors and containers only, never
arbitrary objects. Every tensor of our model must come from exactly one tensor of the file with the
right shape; otherwise one :class:`TransferImportError` lists every missing, unexpected, duplicated and
misshapen key. The mask is rebuilt from the zeros of the conv/linear weights (``Mask.from_zeros``).
"""

from __future__ import annotations

import dataclasses
import pickle
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ..io.checkpoint import CheckpointError
from ..io.hashing import file_sha256
from ..io.provenance import parent_of_file
from ..models.checkpoint import save_checkpoint
from ..models.pretrained import PretrainedError, arch_of_weights, verify_hash, weights_file
from ..models.spec import ArchSpec
from ..sparsity.mask import Mask

Kind = Literal["torchvision", "common", "rigl", "str"]
KINDS: tuple[str, ...] = ("torchvision", "common", "rigl", "str")
Layout = Literal["torchvision", "rigl", "str"]  # how the file names its parameters (a common file: from its arch)
# Our ResNets are state-dict-identical to torchvision's (models/resnet_imagenet.py), so only they can host
# the upstream ResNet50 layouts; MobileNet layouts (§6.2: mobilenet, mobilenet_str, mobilenet_amc) are not mapped.
SUPPORTED_ARCHS: tuple[str, ...] = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
INPUT_SHAPE: tuple[int, int, int] = (3, 224, 224)
# Where a state dict may sit inside a saved object (common format first), tried in this order.
_CONTAINER_KEYS: tuple[str, ...] = ("model_state_dict", "state_dict", "model", "net")
_KEY_PREFIXES: tuple[str, ...] = ("module.", "model.")
_BN_COUNTER = "num_batches_tracked"


class TransferImportError(CheckpointError):
    """An upstream checkpoint that cannot be read safely or does not map onto our model.

    ``missing``, ``unexpected``, ``duplicated`` and ``misshapen`` hold every problem found (not the first only).
    """

    def __init__(
        self,
        message: str,
        *,
        missing: list[str] | None = None,
        unexpected: list[str] | None = None,
        duplicated: list[str] | None = None,
        misshapen: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.missing = missing or []
        self.unexpected = unexpected or []
        self.duplicated = duplicated or []
        self.misshapen = misshapen or []


@dataclasses.dataclass
class ImportResult:
    model: nn.Module
    mask: Mask
    sparsity: float  # over all conv/linear weights (conv1 and fc included), BN and biases excluded
    per_layer: dict[str, float]
    notes: list[str]
    spec: ArchSpec | None = None
    sidecar: dict[str, Any] | None = None  # what save_checkpoint wrote, when ``out`` was given


# ---------------------------------------------------------------------------------------------- layouts
# RigL (§6.2): TF-layout names -> torchvision names. Block index K is taken as-is (0-based, like
# torchvision); a 1-based file shows up as missing/unexpected keys in the one error.
_RIGL_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^initial_conv\.conv\.(weight|bias)$"), r"conv1.\1"),
    (re.compile(r"^initial_conv\.bn\.(.+)$"), r"bn1.\1"),
    (re.compile(r"^(layer\d+)\.block\.(\d+)\.conv(\d+)\.conv\.(weight|bias)$"), r"\1.\2.conv\3.\4"),
    (re.compile(r"^(layer\d+)\.block\.(\d+)\.conv(\d+)\.bn\.(.+)$"), r"\1.\2.bn\3.\4"),
    (re.compile(r"^(layer\d+)\.block\.(\d+)\.shortcut\.conv\.(weight|bias)$"), r"\1.\2.downsample.0.\3"),
    (re.compile(r"^(layer\d+)\.block\.(\d+)\.shortcut\.bn\.(.+)$"), r"\1.\2.downsample.1.\3"),
]


def rigl_to_ours(key: str) -> str:
    """``initial_conv.conv.weight`` -> ``conv1.weight``, ``layer1.block.0.conv2.bn.weight`` -> ``layer1.0.bn2.weight``,
    ``layer2.block.0.shortcut.conv.weight`` -> ``layer2.0.downsample.0.weight``; other keys (``fc.*``) unchanged."""
    for pattern, repl in _RIGL_RULES:
        if pattern.match(key):
            return pattern.sub(repl, key)
    return key


def _identity(key: str) -> str:
    return key


_LAYOUTS: dict[Layout, Callable[[str], str]] = {"torchvision": _identity, "rigl": rigl_to_ours, "str": _identity}


def _layout_of_common_arch(arch: str) -> tuple[str, Layout]:
    """(base arch, layout) for a common-format arch string (§6.2 table)."""
    if arch.endswith("_rigl"):
        return arch[: -len("_rigl")], "rigl"
    if arch.endswith("_str"):
        return arch[: -len("_str")], "str"
    return arch, "torchvision"


# ---------------------------------------------------------------------------------------------- reading
def _safe_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise TransferImportError(
            f"{path}: refusing to unpickle it: the file holds objects other than tensors and plain containers "
            f"(torch.load(weights_only=True) rejected it: {str(e).splitlines()[0]}). Upstream files that pickle "
            "their own classes (e.g. an argparse Namespace or a model object) would run arbitrary code when loaded; "
            "re-save only the state dict (torch.save(obj['model_state_dict'], ...)) in a trusted environment "
            "and import that file"
        ) from None
    except Exception as e:  # zip/EOF/format errors
        raise TransferImportError(f"{path}: cannot read it as a torch checkpoint: {type(e).__name__}: {e}") from e


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _find_state_dict(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The state dict inside ``obj`` and the container keys walked to reach it (``model_state_dict``, ``net`` ...)."""
    trail: list[str] = []
    while not _is_state_dict(obj):
        if not isinstance(obj, Mapping):
            raise TransferImportError(
                f"{path}: holds a {type(obj).__name__} at {'/'.join(trail) or 'top level'}, not a state dict"
            )
        inner = next((k for k in _CONTAINER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            non_tensor = sorted(str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor))
            raise TransferImportError(
                f"{path}: no state dict at {'/'.join(trail) or 'top level'}: expected tensors or one of "
                f"{', '.join(_CONTAINER_KEYS)}; found non-tensor entries {non_tensor[:20]}"
            )
        trail.append(inner)
        obj = obj[inner]
    return dict(obj), trail


def _strip_prefixes(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in _KEY_PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p) :], True
    return key


def _unwrap(key: str) -> tuple[str, bool]:
    """Wrapped-layer keys (§6.2) -> (parameter name, is_mask): ``a._layer.weight`` -> ``a.weight``,
    ``a._weight_mask`` -> (``a.weight``, True), ``a._bias_mask`` -> (``a.bias``, True)."""
    key = key.replace("._layer.", ".")
    for suffix, param in (("._weight_mask", ".weight"), ("._bias_mask", ".bias")):
        if key.endswith(suffix):
            return key[: -len(suffix)] + param, True
    return key, False


# ---------------------------------------------------------------------------------------------- import
def _resolve_source(source: str | Path, kind: str, arch: str, hub_dir: str | Path | None) -> tuple[Path, list[str]]:
    path = Path(source)
    if path.is_file():
        return path, []
    if kind == "torchvision" and isinstance(source, str) and "_Weights." in source:
        try:
            w_arch = arch_of_weights(source)
            file = weights_file(source, hub_dir)
        except PretrainedError as e:
            raise TransferImportError(str(e)) from None
        if w_arch != arch:
            raise TransferImportError(f"weights {source} are for {w_arch}, but arch={arch!r} was requested")
        return file, [f"torchvision weights {source} resolved in the local hub cache to {file}"]
    raise TransferImportError(f"{source}: no such checkpoint file")


def _fmt(items: list[str]) -> str:
    return "; ".join(items)


def import_checkpoint(
    source: str | Path,
    kind: Kind,
    arch: str = "resnet50",
    num_classes: int = 1000,
    out: Path | None = None,
    *,
    arch_kwargs: Mapping[str, Any] | None = None,
    hub_dir: str | Path | None = None,
    check_hash: bool = False,
) -> ImportResult:
    """Read an upstream checkpoint safely, map it onto our ``arch``, rebuild its mask, optionally save it.

    ``arch_kwargs`` go to the model builder (e.g. ``{"width": 0.125}`` for tests); ``hub_dir`` is where a
    torchvision weights name is looked up (default ``torch.hub.get_dir()``); ``check_hash`` verifies the
    sha256 prefix in a torchvision file name. Raises :class:`TransferImportError`.
    """
    if kind not in KINDS:
        raise TransferImportError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    if arch not in SUPPORTED_ARCHS:
        raise TransferImportError(
            f"arch {arch!r} is not supported: upstream layouts are mapped onto our torchvision-identical ResNets "
            f"only ({', '.join(SUPPORTED_ARCHS)}); MobileNet layouts (§6.2) are not implemented"
        )
    path, notes = _resolve_source(source, kind, arch, hub_dir)
    if check_hash:
        try:
            verify_hash(path)
        except PretrainedError as e:
            raise TransferImportError(str(e)) from None
    obj = _safe_load(path)

    # ---- container and layout
    model_config: dict[str, Any] | None = None
    if isinstance(obj, Mapping) and isinstance(obj.get("model_config"), Mapping):
        model_config = {
            str(k): v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)
            for k, v in obj["model_config"].items()
        }
    elif kind == "common":
        found = sorted(map(str, obj)) if isinstance(obj, Mapping) else type(obj).__name__
        raise TransferImportError(
            f"{path}: not a common-format checkpoint (§6.2 needs model_config={{'arch', 'dataset'}} and "
            f"model_state_dict); found {found}"
        )
    layout: Layout = "torchvision" if kind == "torchvision" or kind == "common" else kind
    if model_config is not None:
        file_arch = str(model_config.get("arch", ""))
        base, file_layout = _layout_of_common_arch(file_arch)
        if kind == "common":
            layout = file_layout
        elif file_layout != layout:
            raise TransferImportError(
                f"{path}: model_config arch {file_arch!r} is the {file_layout} layout, but kind={kind!r} was given"
            )
        if base != arch:
            raise TransferImportError(f"{path}: model_config arch {file_arch!r} is not {arch!r} (requested arch)")
        notes.append(f"common format: model_config={model_config}, layout {layout}")
    state, trail = _find_state_dict(obj, path)
    if trail:
        notes.append(f"state dict found under {'/'.join(trail)}")
    translate = _LAYOUTS[layout]

    # ---- key mapping: strip prefixes, unwrap wrapped layers, translate the layout
    tensors: dict[str, list[tuple[str, torch.Tensor]]] = {}
    masks: dict[str, list[tuple[str, torch.Tensor]]] = {}
    for src_key, value in state.items():
        name, is_mask = _unwrap(_strip_prefixes(str(src_key)))
        target = translate(name)
        (masks if is_mask else tensors).setdefault(target, []).append((str(src_key), value))
    if any(k != _strip_prefixes(k) for k in map(str, state)):
        notes.append("stripped module./model. key prefixes")
    if masks:
        notes.append(f"wrapped layers: {len(masks)} mask buffers (_weight_mask/_bias_mask) found")

    spec = ArchSpec(arch, int(num_classes), INPUT_SHAPE, dict(arch_kwargs or {}))
    model = spec.build()
    own = model.state_dict()

    def shown(target: str, src: str) -> str:
        return src if src == target else f"{src} (-> {target})"

    missing = [k for k in own if k not in tensors and not k.endswith(_BN_COUNTER)]
    counters_filled = [k for k in own if k not in tensors and k.endswith(_BN_COUNTER)]
    unexpected = [shown(t, s) for t, srcs in tensors.items() if t not in own for s, _ in srcs]
    unexpected += [shown(t, s) + " [mask]" for t, srcs in masks.items() if t not in own for s, _ in srcs]
    duplicated = [
        f"{t} <- {', '.join(s for s, _ in srcs)}" for t, srcs in tensors.items() if t in own and len(srcs) > 1
    ]
    duplicated += [
        f"{t} [mask] <- {', '.join(s for s, _ in srcs)}" for t, srcs in masks.items() if t in own and len(srcs) > 1
    ]

    loaded: dict[str, torch.Tensor] = {}
    misshapen: list[str] = []
    reshaped: list[str] = []

    def fit(target: str, src: str, value: torch.Tensor, what: str = "") -> torch.Tensor | None:
        want = own[target].shape
        if value.shape == want:
            return value
        # STR (§6.2): fc is a 1x1 conv, (C, F, 1, 1) -> Linear (C, F).
        if layout == "str" and value.dim() == 4 and value.shape[2:] == (1, 1) and value.shape[:2] == want:
            if what == "":
                reshaped.append(target)
            return value.reshape(want)
        misshapen.append(f"{shown(target, src)}{what}: file {tuple(value.shape)} vs model {tuple(want)}")
        return None

    for target, srcs in tensors.items():
        if target in own and len(srcs) == 1:
            v = fit(target, *srcs[0])
            if v is not None:
                loaded[target] = v
    fitted_masks: dict[str, torch.Tensor] = {}
    for target, srcs in masks.items():
        if target in own and len(srcs) == 1:
            v = fit(target, *srcs[0], " [mask]")
            if v is not None:
                fitted_masks[target] = v

    if missing or unexpected or duplicated or misshapen:
        hints = []
        if layout == "str" and any("threshold" in u.lower() for u in unexpected):
            hints.append(
                "the file carries STR threshold parameters: the reference notes (§6.2) describe only the converted "
                "STR layout whose sparsity is stored as zeros in the weights, not how thresholds parametrise the "
                "weights, so applying them is not implemented; convert the file to zeros-in-weights first"
            )
        if (
            layout != "rigl"
            and any(m.startswith("conv1.") or m.startswith("bn1.") for m in missing)
            and any(u.startswith("initial_conv.") for u in unexpected)
        ):
            hints.append("the stem is named initial_conv.*: this looks like a RigL (TF-layout) file, use kind='rigl'")
        parts = [
            f"{what} ({len(items)}): {_fmt(items)}"
            for what, items in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("keys given more than once", duplicated),
                ("shape mismatches", misshapen),
            )
            if items
        ]
        raise TransferImportError(
            f"{path} ({kind}, {layout} layout) does not fit {arch} with {num_classes} classes: "
            + " | ".join(parts)
            + ("" if not hints else " | hint: " + "; ".join(hints)),
            missing=missing,
            unexpected=unexpected,
            duplicated=duplicated,
            misshapen=misshapen,
        )
    if reshaped:
        notes.append(f"STR layout: 1x1-conv head reshaped to Linear for {', '.join(reshaped)}")
    for k in counters_filled:
        loaded[k] = torch.zeros_like(own[k])
    if counters_filled:
        notes.append(
            f"{len(counters_filled)} BatchNorm num_batches_tracked counters absent from the file, set to 0 (not used in eval)"
        )

    # ---- dtype, wrapped masks
    converted = sorted(k for k, v in loaded.items() if v.dtype != own[k].dtype)
    loaded = {k: v.to(own[k].dtype) for k, v in loaded.items()}
    if converted:
        notes.append(f"cast {len(converted)} tensors to the model's dtype (e.g. {converted[0]})")
    for target, m in fitted_masks.items():
        keep = m != 0
        if not torch.is_floating_point(loaded[target]):
            continue
        leaked = int(((loaded[target] != 0) & ~keep).sum())
        if leaked:
            notes.append(
                f"{target}: {leaked} non-zero weights outside the wrapped mask were zeroed (wrapped layers apply the mask in forward)"
            )
        loaded[target] = loaded[target] * keep.to(loaded[target].dtype)
    model.load_state_dict(loaded, strict=True)
    model.eval()

    # ---- mask from zeros
    mask = Mask.from_zeros(model)
    for target, m in fitted_masks.items():
        if target in mask:
            extra = int(((m != 0) & ~mask[target]).sum())
            if extra:
                notes.append(f"{target}: {extra} weights active in the wrapped mask are exactly 0 and count as pruned")
    report = mask.report()
    per_layer = {n: float(d["sparsity"]) for n, d in report["layers"].items()}
    if layout == "rigl":
        notes.append(
            "RigL (§6.2, §11.4): weights are placed in our torchvision ResNet, whose stem max-pool pads "
            "symmetrically (padding=1) where RigL's TF network zero-pads (0,1,0,1) before an unpadded 3x3/2 "
            "max-pool: the window grid is shifted by one pixel, so logits are not bitwise RigL's; "
            "RigL also expects bicubic resizing (§2)"
        )

    result = ImportResult(model, mask, float(report["sparsity"]), per_layer, notes, spec)
    if out is not None:
        # lineage: the external file itself, by the path it was read from (as given, or the hub
        # cache's file a torchvision weights name resolved to), role "imported"
        source_sha256 = file_sha256(path)
        meta = {
            "imported_from": {
                "source": str(path.resolve()),
                "kind": kind,
                "layout": layout,
                "source_sha256": source_sha256,
                "model_config": model_config,
                "sparsity": result.sparsity,
                "per_layer": per_layer,
                "notes": notes,
            }
        }
        parents = (parent_of_file("imported", path, source_sha256),)
        result.sidecar = save_checkpoint(Path(out), model, spec, mask=mask, meta=meta, parents=parents)
    return result
