"""One registry of architectures, each a builder ``(num_classes, input_shape, **kwargs) -> nn.Module``.

Builders take width knobs as keyword arguments so the embedded default can run tiny versions.
A checkpoint's sidecar stores ``arch``, ``num_classes``, ``input_shape`` and ``kwargs``: that is
the model's shape spec, enough to rebuild it before loading weights.

Build hooks (:data:`BUILD_HOOKS`) change a built model as its spec records (structured pruning's
narrowed widths, tied weights). They live with their mechanisms, above the models, so the
registry names them as ``"module:function"`` and imports one only when a spec asks for it: a
fresh process that loads a tied checkpoint needs nothing else imported, and no model code imports
upwards. (The workflow's code digests count the named modules: see
:mod:`sparselab.config.code_deps`.)
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from ..config.catalog import ARCHS

ArchBuilder = Callable[..., nn.Module]
# (model, the spec field's value, input shape) -> the changed model
BuildHook = Callable[[nn.Module, Any, Sequence[int]], nn.Module]
_ARCHS: dict[str, ArchBuilder] = {}

# Which module registers which architecture (only that module is imported: torchvision alone
# costs seconds to import, and every Snakemake job builds a model).
_ARCH_MODULES = {name: module for name, (module, _) in ARCHS.items()}


# ArchSpec field -> the hook that applies it, in the order they apply (narrowing before tying).
BUILD_HOOKS: dict[str, str] = {
    "widths": "sparselab.structured.removal:narrow_to_widths",
    "tied": "sparselab.dst.tied:tie_from_spec",
}


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


def build_hook(field: str) -> BuildHook:
    """The hook of an ``ArchSpec`` field (:data:`BUILD_HOOKS`), imported on first use."""
    module, _, name = BUILD_HOOKS[field].partition(":")
    return getattr(importlib.import_module(module), name)


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
