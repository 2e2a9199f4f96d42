"""The computation graph a path-norm walks: a torch.fx trace of the model, checked for support.

Path-norms are defined for DAG networks of ReLU/identity/max-pool neurons whose edges carry
weights (Gonon et al. 2024). Tracing (rather than looking at module types) also sees functional
calls inside ``forward`` (``F.max_pool2d``, ``x.mean(...)``, activations), which a module-type
check would silently miss. Tracing never runs or modifies the model.
"""

from __future__ import annotations

import dataclasses
import operator
import weakref
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.modules.dropout import _DropoutNd

from ..models.access import module_tensor

SUPPORTED = (
    "Conv2d, Linear, BatchNorm1d/2d (with running statistics), ReLU, MaxPool2d, AvgPool2d, "
    "AdaptiveAvgPool2d, Flatten, Dropout, Identity and identity residual additions/concatenations"
)

# Modules computed by the path-norm walker; everything else is an error.
MODULE_TYPES: tuple[type[nn.Module], ...] = (
    nn.Conv2d,
    nn.Linear,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    _DropoutNd,
    nn.Identity,
)

# Functions and tensor methods that are edges of weight 1 (sums, concatenations, reshapes) or the
# ReLU activation itself. Anything that reads sizes returns plain Python values.
ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add}
RELU_FUNCTIONS = {F.relu, torch.relu, torch.relu_}
RESHAPE_FUNCTIONS = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze}
DROPOUT_FUNCTIONS = {F.dropout}
CAT_FUNCTIONS = {torch.cat, torch.concat}
META_FUNCTIONS = {getattr, operator.getitem, len}
ADD_METHODS = {"add", "add_", "__add__", "__iadd__"}
RELU_METHODS = {"relu", "relu_"}
RESHAPE_METHODS = {"view", "reshape", "flatten", "contiguous", "squeeze", "unsqueeze"}
META_METHODS = {"size", "dim"}


class UnsupportedModelError(ValueError):
    """The model contains operations the path-norm is not defined for (or not implemented for)."""


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside DataParallel/DistributedDataParallel/torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):  # torch.compile
            model = model._orig_mod
        else:
            return model


@dataclasses.dataclass(frozen=True)
class PathGraph:
    """A traced model: its fx graph and the submodules its ``call_module`` nodes name."""

    graph: fx.Graph
    modules: dict[str, nn.Module]
    # Work buffers and layout constants of computations on this graph, kept while the model
    # lives (page faults of a fresh weight-sized buffer at every call would cost as much as
    # using it).
    buffers: dict[Any, Any] = dataclasses.field(default_factory=dict)

    def nodes(self) -> Iterator[fx.Node]:
        return iter(self.graph.nodes)


def _where(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    owner = next(reversed(stack.values()))[0] if stack else ""
    owner = owner if isinstance(owner, str) else ""
    return f"{owner or '<model>'}: {node.name}"


def _module_problem(module: nn.Module) -> str | None:
    if not isinstance(module, MODULE_TYPES):
        return type(module).__name__
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)) and module.running_mean is None:
        return f"{type(module).__name__} without running statistics (not an affine map in eval mode)"
    if isinstance(module, nn.MaxPool2d) and module.return_indices:
        return "MaxPool2d(return_indices=True)"
    return None


def _function_problem(node: fx.Node) -> str | None:
    target = node.target
    if node.op == "call_function":
        if target in ADD_FUNCTIONS:
            return None if node.kwargs.get("alpha", 1) == 1 else "add with alpha != 1"
        if target in RELU_FUNCTIONS | RESHAPE_FUNCTIONS | DROPOUT_FUNCTIONS | CAT_FUNCTIONS | META_FUNCTIONS:
            return None
        return getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)
    if node.op == "call_method":
        if target in ADD_METHODS:
            return None if node.kwargs.get("alpha", 1) == 1 else "add with alpha != 1"
        if target in RELU_METHODS | RESHAPE_METHODS | META_METHODS:
            return None
        return f"Tensor.{target}"
    if node.op == "get_attr":
        return f"direct use of tensor attribute {target!r}"
    return None


# Traces are reused while a model keeps its structure: per-epoch logging calls path-norms on the
# same model many times, and tracing costs a quarter of a forward pass of a ResNet at batch 1.
_TRACES: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[Any, ...], PathGraph]] = weakref.WeakKeyDictionary()


def _structure(model: nn.Module) -> tuple[Any, ...]:
    """What a trace depends on: every submodule's identity, class and any per-instance forward."""
    return tuple((name, id(m), type(m), m.__dict__.get("forward")) for name, m in model.named_modules())


def trace(model: nn.Module) -> PathGraph:
    """Trace ``model`` and check every operation; list all unsupported ones in one error."""
    model = unwrap(model)
    structure = _structure(model)
    cached = _TRACES.get(model)
    if cached is not None and cached[0] == structure:
        for name, module in cached[1].modules.items():  # settings such as running stats may change
            why = _module_problem(module)
            if why is not None:
                raise UnsupportedModelError(f"path-norm is not defined for {name} ({why}). Supported: {SUPPORTED}.")
        return cached[1]
    graph = _trace(model)
    _TRACES[model] = (structure, graph)
    return graph


def _trace(model: nn.Module) -> PathGraph:
    try:
        graph = fx.Tracer().trace(model)
    except Exception as err:  # data-dependent control flow etc.
        raise UnsupportedModelError(
            f"cannot trace {type(model).__name__} with torch.fx ({type(err).__name__}: {err}); "
            f"path-norms need a static graph of {SUPPORTED}"
        ) from err
    modules: dict[str, nn.Module] = {}
    problems: list[str] = []
    for node in graph.nodes:
        if node.op == "call_module":
            module = model.get_submodule(str(node.target))
            modules[str(node.target)] = module
            why = _module_problem(module)
            if why is not None:
                problems.append(f"{node.target} ({why})")
        else:
            why = _function_problem(node)
            if why is not None:
                problems.append(f"{_where(node)} ({why})")
    if problems:
        raise UnsupportedModelError(
            f"path-norm is not defined for some operations of {type(model).__name__}: "
            + "; ".join(problems)
            + f". Supported: {SUPPORTED}."
        )
    return PathGraph(graph, modules)


def effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight the module computes with, detached: ``weight_orig * weight_mask`` for modules
    pruned with ``torch.nn.utils.prune`` (``weight`` is only refreshed by the next forward)."""
    if "weight_orig" in module._parameters and "weight_mask" in module._buffers:  # no __getattr__
        return (module_tensor(module, "weight_orig") * module_tensor(module, "weight_mask")).detach()
    return module_tensor(module, "weight").detach()


def effective_bias(module: nn.Module) -> torch.Tensor | None:
    if "bias_orig" in module._parameters and "bias_mask" in module._buffers:
        return (module_tensor(module, "bias_orig") * module_tensor(module, "bias_mask")).detach()
    bias = getattr(module, "bias", None)
    return bias.detach() if bias is not None else None


def node_args(node: fx.Node, env: dict[fx.Node, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The node's arguments with earlier nodes replaced by their computed values."""
    args = fx.node.map_arg(node.args, lambda n: env[n])
    kwargs = fx.node.map_arg(node.kwargs, lambda n: env[n])
    return tuple(args), dict(kwargs)
