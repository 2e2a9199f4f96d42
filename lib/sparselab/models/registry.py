"""One registry of architectures, each a builder ``(num_classes, input_shape, **kwargs) -> nn.Module``.

Builders take width knobs as keyword arguments so the embedded default can run tiny versions.
A checkpoint's sidecar stores ``arch``, ``num_classes``, ``input_shape`` and ``kwargs``: that is
the model's shape spec, enough to rebuild it before loading weights.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable, Sequence

from torch import nn

from ..config.catalog import ARCHS

ArchBuilder = Callable[..., nn.Module]
_ARCHS: dict[str, ArchBuilder] = {}

# Which module registers which architecture (only that module is imported: torchvision alone
# costs seconds to import, and every Snakemake job builds a model).
_ARCH_MODULES = {name: module for name, (module, _) in ARCHS.items()}


class ModelSpecError(ValueError):
    """Unknown architecture or keyword argument; the message lists what is accepted."""


def register_arch(name: str) -> Callable[[ArchBuilder], ArchBuilder]:
    def deco(fn: ArchBuilder) -> ArchBuilder:
        if name in _ARCHS and _ARCHS[name] is not fn:
            raise ValueError(f"architecture {name!r} registered twice")
        _ARCHS[name] = fn
        return fn

    return deco


def list_archs() -> list[str]:
    return sorted(_ARCH_MODULES)


def arch_kwargs(arch: str) -> dict[str, Any]:
    """The keyword arguments (width knobs...) an architecture accepts, with their defaults."""
    builder = _builder(arch)
    params = inspect.signature(builder).parameters
    return {k: p.default for k, p in params.items() if k not in ("num_classes", "input_shape")}


def _builder(arch: str) -> ArchBuilder:
    if arch not in _ARCH_MODULES:
        raise ModelSpecError(f"unknown architecture {arch!r}; known: {', '.join(list_archs())}")
    importlib.import_module(f"{__package__}.{_ARCH_MODULES[arch]}")
    if arch not in _ARCHS:
        raise RuntimeError(f"module {_ARCH_MODULES[arch]!r} did not register {arch!r}")
    return _ARCHS[arch]


def build_model(arch: str, num_classes: int, input_shape: Sequence[int], **kwargs: Any) -> nn.Module:
    """Instantiate ``arch``; unknown keyword arguments fail with the list of accepted ones.

    ``input_shape`` is handed to the builder as a tuple: the image builders read (C, H, W)."""
    builder = _builder(arch)
    accepted = arch_kwargs(arch)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ModelSpecError(
            f"architecture {arch!r} does not accept {', '.join(map(repr, unknown))}; "
            f"accepted: {', '.join(f'{k}={v!r}' for k, v in accepted.items()) or 'none'}"
        )
    return builder(num_classes=num_classes, input_shape=tuple(input_shape), **kwargs)
