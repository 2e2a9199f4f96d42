"""The computation graph a path-norm walks: a torch.fx trace of the model, checked for support.

Path-norms are defined for DAG networks of ReLU/identity/max-pool neurons whose edges carry
weights (Gonon et al. 2024). Tracing (rather than looking at module types) also sees functional
calls inside ``forward`` (``F.max_pool2d``, ``x.mean(...)``, activations, channel shuffles), which
a module-type check would silently miss. Tracing never runs or modifies the model.

Every traced operation gets a *kind* (:func:`operation_kind`): a weighted layer or pooling module,
a re-indexing of neurons (reshapes, transposes, chunks: edges of weight 1), a concatenation, a sum,
a scaling by a constant, an average or a max over non-batch dimensions, or size arithmetic on
Python values (``META``). Everything else is refused before any computation, in one line that names
each offending operation and the module it is in.
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
    "Conv2d, Linear, BatchNorm1d/2d (with running statistics), ReLU, max/average/adaptive pooling "
    "(modules or functions), means/sums/maxima over non-batch dimensions, Flatten, Dropout, Identity, "
    "sums and concatenations of activations, reshapes/transposes/chunks/splits/indexing of channels, "
    "and scaling by or adding a constant"
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
    nn.AdaptiveMaxPool2d,
    nn.Flatten,
    _DropoutNd,
    nn.Identity,
)

# ------------------------------------------------------------------------------ operation kinds
INDEX = "index"  # re-indexes one tensor (reshape, transpose, chunk, slice): edges of weight 1
CAT = "cat"  # concatenation or stack of activations: edges of weight 1
RELU = "relu"
DROPOUT = "dropout"  # identity (eval semantics)
ADD = "add"  # a + alpha*b of two activations, or an activation plus a constant (a bias)
SUB = "sub"
MUL = "mul"  # an activation times a constant (an edge weight)
DIV = "div"  # an activation divided by a constant
NEG = "neg"
MEAN = "mean"  # average over non-batch dimensions: an average-pool neuron
SUM = "sum"
AMAX = "amax"  # maximum over non-batch dimensions: a max-pool neuron
MAX_POOL = "max_pool2d"
AVG_POOL = "avg_pool2d"
ADAPTIVE_AVG_POOL = "adaptive_avg_pool2d"
ADAPTIVE_MAX_POOL = "adaptive_max_pool2d"
META = "meta"  # computes on Python values (sizes, shapes, assertions), never on activations

_FUNCTION_KINDS: dict[Any, str] = {
    **dict.fromkeys((operator.add, operator.iadd, torch.add), ADD),
    **dict.fromkeys((operator.sub, operator.isub, torch.sub, torch.subtract), SUB),
    **dict.fromkeys((operator.mul, operator.imul, torch.mul, torch.multiply), MUL),
    **dict.fromkeys((operator.truediv, operator.itruediv, torch.div, torch.true_divide), DIV),
    **dict.fromkeys((operator.neg, torch.neg, torch.negative), NEG),
    **dict.fromkeys((F.relu, F.relu_, torch.relu, torch.relu_), RELU),
    **dict.fromkeys((F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout), DROPOUT),
    **dict.fromkeys(
        (
            torch.flatten,
            torch.reshape,
            torch.squeeze,
            torch.unsqueeze,
            torch.unflatten,
            torch.transpose,
            torch.permute,
            torch.movedim,
            torch.swapaxes,
            torch.swapdims,
            torch.chunk,
            torch.split,
            torch.tensor_split,
            torch.unbind,
            torch.narrow,
            torch.select,
            operator.getitem,
        ),
        INDEX,
    ),
    **dict.fromkeys((torch.cat, torch.concat, torch.concatenate, torch.stack), CAT),
    torch.mean: MEAN,
    torch.sum: SUM,
    torch.amax: AMAX,
    F.max_pool2d: MAX_POOL,
    F.avg_pool2d: AVG_POOL,
    F.adaptive_avg_pool2d: ADAPTIVE_AVG_POOL,
    F.adaptive_max_pool2d: ADAPTIVE_MAX_POOL,
}
_METHOD_KINDS: dict[str, str] = {
    **dict.fromkeys(("add", "add_", "__add__", "__iadd__", "__radd__"), ADD),
    **dict.fromkeys(("sub", "sub_", "__sub__", "__isub__", "__rsub__"), SUB),
    **dict.fromkeys(("mul", "mul_", "__mul__", "__imul__", "__rmul__"), MUL),
    **dict.fromkeys(("div", "div_", "__truediv__", "__itruediv__"), DIV),
    **dict.fromkeys(("neg", "__neg__"), NEG),
    **dict.fromkeys(("relu", "relu_"), RELU),
    **dict.fromkeys(
        (
            "view",
            "reshape",
            "flatten",
            "unflatten",
            "contiguous",
            "squeeze",
            "unsqueeze",
            "transpose",
            "permute",
            "movedim",
            "swapaxes",
            "swapdims",
            "chunk",
            "split",
            "tensor_split",
            "unbind",
            "narrow",
            "select",
            "expand",
            "repeat",
            "__getitem__",
        ),
        INDEX,
    ),
    "mean": MEAN,
    "sum": SUM,
    "amax": AMAX,
}
# On Python values only: size arithmetic, comparisons and assertions (ShuffleNet's channel shuffle
# computes its view shape from x.size(); ViT asserts the input size).
_META_FUNCTIONS = {
    getattr,
    len,
    int,
    float,
    torch._assert,
    operator.getitem,
    operator.add,
    operator.sub,
    operator.mul,
    operator.floordiv,
    operator.truediv,
    operator.mod,
    operator.pow,
    operator.neg,
    operator.eq,
    operator.ne,
    operator.lt,
    operator.le,
    operator.gt,
    operator.ge,
    operator.not_,
    operator.and_,
    operator.or_,
}
_META_METHODS = {"size", "dim", "numel"}  # on an activation: they read its shape only
_SHAPE_ATTRIBUTES = {"shape", "ndim", "dtype", "device", "is_cuda"}
REDUCTIONS = (MEAN, SUM, AMAX)
_ATTRIBUTE_USE = "a parameter or buffer used outside a module (an unknown weight)"


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
    """A traced model: its fx graph, the submodules its ``call_module`` nodes name, and the kind of
    every other computing node (:func:`operation_kind`)."""

    graph: fx.Graph
    modules: dict[str, nn.Module]
    kinds: dict[fx.Node, str] = dataclasses.field(default_factory=dict)
    # Work buffers and layout constants of computations on this graph, kept while the model
    # lives (page faults of a fresh weight-sized buffer at every call would cost as much as
    # using it).
    buffers: dict[Any, Any] = dataclasses.field(default_factory=dict)

    def nodes(self) -> Iterator[fx.Node]:
        return iter(self.graph.nodes)


def where(node: fx.Node) -> str:
    """The module a traced operation belongs to, for messages."""
    stack = node.meta.get("nn_module_stack") or {}
    owner = next(reversed(stack.values()))[0] if stack else ""
    owner = owner if isinstance(owner, str) else ""
    return owner or "the model's forward"


def _module_problem(module: nn.Module) -> str | None:
    if not isinstance(module, MODULE_TYPES):
        return type(module).__name__
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)) and module.running_mean is None:
        return f"{type(module).__name__} without running statistics (not an affine map in eval mode)"
    if isinstance(module, (nn.MaxPool2d, nn.AdaptiveMaxPool2d)) and module.return_indices:
        return f"{type(module).__name__}(return_indices=True)"
    return None


def _name(node: fx.Node) -> str:
    target = node.target
    if node.op == "call_method":
        return f"Tensor.{target}"
    return str(getattr(target, "__name__", None) or getattr(target, "__qualname__", None) or target)


def operation_kind(node: fx.Node) -> str | None:
    """The kind of a ``call_function``/``call_method`` node on activations (None: not supported)."""
    if node.op == "call_method":
        return _METHOD_KINDS.get(str(node.target))
    try:
        return _FUNCTION_KINDS.get(node.target)
    except TypeError:  # an unhashable target
        return None


def _argument(node: fx.Node, position: int, keyword: str, default: Any = None) -> Any:
    if len(node.args) > position:
        return node.args[position]
    return node.kwargs.get(keyword, default)


def _kind_problem(node: fx.Node, kind: str, carries: dict[fx.Node, bool]) -> str | None:
    """Why an operation of a supported kind is still not a path-norm operation, if it is not."""
    operands = [a for a in (*node.args, *node.kwargs.values()) if isinstance(a, fx.Node) and carries.get(a)]
    if kind == MUL and len(operands) > 1:
        return "product of two activations (a gate: not positively homogeneous)"
    divisor = _argument(node, 1, "other")
    if kind == DIV and isinstance(divisor, fx.Node) and carries.get(divisor):
        return "division by an activation (not positively homogeneous)"
    if kind in REDUCTIONS:
        dims = _argument(node, 1, "dim", node.kwargs.get("axis"))
        if dims is None:
            return f"{kind} over every dimension, the batch included"
        if isinstance(dims, int):
            dims = (dims,)
        if isinstance(dims, (tuple, list)) and 0 in dims:
            return f"{kind} over the batch dimension"
    if kind in (MAX_POOL, ADAPTIVE_MAX_POOL) and node.kwargs.get("return_indices"):
        return f"{kind}(return_indices=True)"
    return None


_IN_PLACE_FUNCTIONS = {operator.iadd, operator.isub, operator.imul, operator.itruediv}


def _aliasing_problem(node: fx.Node, order: dict[fx.Node, int]) -> str | None:
    """An in-place update of an activation that a later operation reads again: the trace records
    the old value there, the model reads the new one (``y = x.add_(z); w = x * 2``)."""
    in_place = node.target in _IN_PLACE_FUNCTIONS or (
        node.op == "call_method" and str(node.target).endswith("_") and not str(node.target).startswith("__")
    )
    if not in_place or not node.args or not isinstance(node.args[0], fx.Node):
        return None
    target = node.args[0]
    if any(order[user] > order[node] for user in target.users if user is not node):
        return f"{_name(node)} updates an activation in place that is read again later (write it out of place)"
    return None


def _classify(graph: fx.Graph, modules: dict[str, nn.Module]) -> tuple[dict[fx.Node, str], list[tuple[str, str]]]:
    """The kind of every computing node, and the unsupported operations as (name, module) pairs.

    A node *carries activations* if it is the input, a module's output, or computed from an
    activation by anything but a shape query; nodes that do not are size arithmetic (``META``)."""
    carries: dict[fx.Node, bool] = {}
    kinds: dict[fx.Node, str] = {}
    order = {node: i for i, node in enumerate(graph.nodes)}
    problems: list[tuple[str, str]] = []
    first_input = True
    for node in graph.nodes:
        if node.op == "placeholder":
            carries[node], first_input = first_input, False
        elif node.op == "call_module":
            carries[node] = True
            why = _module_problem(modules[str(node.target)])
            if why is not None:
                problems.append((why, str(node.target)))
        elif node.op == "get_attr":
            carries[node] = True
            problems.append((_ATTRIBUTE_USE, f"{where(node)} ({node.target})"))
        elif node.op in ("call_function", "call_method"):
            on_activations = any(carries.get(a, False) for a in node.all_input_nodes)
            shape_query = (node.op == "call_method" and node.target in _META_METHODS) or (
                node.target is getattr and len(node.args) > 1 and node.args[1] in _SHAPE_ATTRIBUTES
            )
            if not on_activations or shape_query or node.target is len:
                carries[node] = False
                kinds[node] = META
                known = (node.op == "call_method" and node.target in _META_METHODS) or (
                    node.op == "call_function" and node.target in _META_FUNCTIONS
                )
                if not known:  # e.g. torch.ones(...): a constant tensor made inside forward
                    problems.append((f"{_name(node)} (makes a tensor that is not an activation)", where(node)))
                continue
            carries[node] = True
            kind = operation_kind(node)
            why = _name(node) if kind is None else _kind_problem(node, kind, carries) or _aliasing_problem(node, order)
            if why is not None:
                problems.append((why, where(node)))
            elif kind is not None:
                kinds[node] = kind
    return kinds, problems


def _one_line(model: nn.Module, problems: list[tuple[str, str]]) -> str:
    """Each distinct unsupported operation once, with the first module it is in and a count."""
    first: dict[str, str] = {}
    counts: dict[str, int] = {}
    problems = sorted(problems, key=lambda p: p[0] == _ATTRIBUTE_USE)  # operations first
    for why, module in problems:
        first.setdefault(why, module)
        counts[why] = counts.get(why, 0) + 1
    parts = [f"{why} in {first[why]}" + (f" (and {counts[why] - 1} more)" if counts[why] > 1 else "") for why in first]
    return f"path-norm is not defined for {type(model).__name__}: " + "; ".join(parts) + f". Supported: {SUPPORTED}."


# Traces are reused while a model keeps its structure: per-epoch logging calls path-norms on the
# same model many times, and tracing costs a quarter of a forward pass of a ResNet at batch 1.
_TRACES: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[Any, ...], PathGraph]] = weakref.WeakKeyDictionary()


def _structure(model: nn.Module) -> tuple[Any, ...]:
    """What a trace depends on: every submodule's identity, class and any per-instance forward."""
    return tuple((name, id(m), type(m), m.__dict__.get("forward")) for name, m in model.named_modules())


def trace(model: nn.Module) -> PathGraph:
    """Trace ``model`` and check every operation; name all unsupported ones in one error line."""
    model = unwrap(model)
    structure = _structure(model)
    cached = _TRACES.get(model)
    if cached is not None and cached[0] == structure:
        problems = []  # settings such as running statistics may have changed since
        for name, module in cached[1].modules.items():
            why = _module_problem(module)
            if why is not None:
                problems.append((why, name))
        if problems:
            raise UnsupportedModelError(_one_line(model, problems))
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
    modules = {str(n.target): model.get_submodule(str(n.target)) for n in graph.nodes if n.op == "call_module"}
    kinds, problems = _classify(graph, modules)
    if problems:
        raise UnsupportedModelError(_one_line(model, problems))
    return PathGraph(graph, modules, kinds)


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
