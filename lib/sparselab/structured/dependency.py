"""Which tensors change when a conv filter is removed: the channel groups of a network.

Removing output filter ``c`` of a conv also removes channel ``c`` of the BatchNorm that normalises
it, of every depthwise conv that carries it on (``groups == in_channels``, whose own output channel
``c`` then goes too), and input channel ``c`` of the convs and the Linear layer that read it. The
groups are found on a torch.fx trace with shape propagation, so functional calls in ``forward``
are seen and a Linear after a flatten of a C x H x W map gets ``H*W`` input features per channel.

A group whose channels reach a residual sum, a concatenation, the output or an unknown operation
cannot shrink without changing every other tensor of that sum: it is *maskable* only (its
filters are zeroed, conv rows and BatchNorm scale and shift, and kept at zero while training, which
is what Lubana & Dick's ``MapLayer`` does for ResNet conv2 and shortcut outputs).
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Sequence

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd

__all__ = ["ChannelGroup", "channel_groups", "is_depthwise"]

# Modules and functions that keep channels one to one (they do not mix channels).
_PASS_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Hardswish,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    _DropoutNd,
    nn.Identity,
)
_PASS_FUNCTIONS = {
    torch.relu,
    torch.nn.functional.relu,
    torch.nn.functional.max_pool2d,
    torch.nn.functional.avg_pool2d,
    torch.nn.functional.adaptive_avg_pool2d,
    torch.nn.functional.dropout,
}
_PASS_METHODS = {"relu", "relu_", "contiguous"}
_FLATTEN_FUNCTIONS = {torch.flatten}
_FLATTEN_METHODS = {"flatten", "view", "reshape"}


@dataclasses.dataclass
class ChannelGroup:
    """The output filters of ``producer`` and every tensor slice tied to them."""

    producer: str  # a Conv2d (not depthwise) whose out_channels this group's channels are
    width: int
    batch_norms: list[str] = dataclasses.field(default_factory=list)  # normalise these channels
    depthwise: list[str] = dataclasses.field(default_factory=list)  # carry them on one to one
    consumers: list[tuple[str, int]] = dataclasses.field(default_factory=list)  # (conv/linear, inputs per channel)
    removable: bool = True  # False: the channels join a sum/concat/output and can only be masked
    reason: str = ""  # why not removable

    @property
    def rows(self) -> int:
        """Entries per channel in a global ranking: the filter and one per depthwise conv tied
        to it (Lubana & Dick rank a depthwise conv's channels as copies of its input's)."""
        return 1 + len(self.depthwise)


def is_depthwise(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels == m.out_channels


def _trace(model: nn.Module, input_shape: Sequence[int]) -> fx.GraphModule:
    gm = fx.symbolic_trace(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros(1, *input_shape, device=_device(model)))
    finally:
        model.train(was_training)
    return gm


def _device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _shape(node: fx.Node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


class _Walker:
    """Follows one producer's output channels forward through the graph."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm
        self.modules = dict(gm.named_modules())

    def follow(self, start: fx.Node, group: ChannelGroup) -> None:
        pending = list(start.users)
        seen: set[fx.Node] = set()
        while pending:
            node = pending.pop()
            if node in seen:
                continue
            seen.add(node)
            nxt = self._step(node, group)
            pending.extend(nxt)

    def _step(self, node: fx.Node, group: ChannelGroup) -> list[fx.Node]:
        """Record what ``node`` does with the channels; return the nodes to follow next."""
        if node.op == "call_module":
            m = self.modules[str(node.target)]
            if isinstance(m, _BatchNorm):
                group.batch_norms.append(str(node.target))
                return list(node.users)
            if is_depthwise(m):
                group.depthwise.append(str(node.target))
                return list(node.users)
            if isinstance(m, nn.Conv2d):
                if m.groups != 1:
                    return self._stop(group, f"{node.target} is a grouped conv")
                group.consumers.append((str(node.target), 1))
                return []
            if isinstance(m, nn.Linear):
                return self._linear(node, str(node.target), group)
            if isinstance(m, _PASS_MODULES):
                return list(node.users)
            if isinstance(m, nn.Flatten):
                return self._flatten(node, group)
            return self._stop(group, f"{node.target} ({type(m).__name__}) mixes or keeps channels in an unknown way")
        if node.op == "call_function":
            if node.target in _PASS_FUNCTIONS:
                return list(node.users)
            if node.target in _FLATTEN_FUNCTIONS:
                return self._flatten(node, group)
            if node.target in (operator.add, operator.iadd, torch.add):
                return self._stop(group, f"a residual sum ({node.name})")
            if node.target in (torch.cat, torch.concat):
                return self._stop(group, f"a concatenation ({node.name})")
            return self._stop(group, f"{node.name} ({getattr(node.target, '__name__', node.target)})")
        if node.op == "call_method":
            if node.target in _PASS_METHODS:
                return list(node.users)
            if node.target in _FLATTEN_METHODS:
                return self._flatten(node, group)
            if node.target in ("add", "add_", "__add__", "__iadd__"):
                return self._stop(group, f"a residual sum ({node.name})")
            return self._stop(group, f"{node.name} (Tensor.{node.target})")
        if node.op == "output":
            return self._stop(group, "the model's output")
        return self._stop(group, f"{node.name} ({node.op})")

    def _flatten(self, node: fx.Node, group: ChannelGroup) -> list[fx.Node]:
        """A flatten of N x C x H x W into N x (C*H*W): only a Linear may read it then."""
        shape_in, shape_out = _shape(node.args[0]) if node.args else None, _shape(node)  # type: ignore[arg-type]
        if shape_in is None or shape_out is None or len(shape_out) != 2 or shape_in[0] != shape_out[0]:
            return self._stop(group, f"{node.name} reshapes the channels")
        per_channel = 1
        for d in shape_in[2:]:
            per_channel *= d
        for user in node.users:
            m = self.modules.get(str(user.target)) if user.op == "call_module" else None
            if isinstance(m, nn.Linear):
                group.consumers.append((str(user.target), per_channel))
            else:
                self._stop(group, f"{user.name} reads the flattened channels")
        return []

    def _linear(self, node: fx.Node, name: str, group: ChannelGroup) -> list[fx.Node]:
        shape = _shape(node.args[0])  # type: ignore[arg-type]
        if shape is None or len(shape) != 2:
            return self._stop(group, f"{name} is applied to a feature map")
        group.consumers.append((name, 1))
        return []

    @staticmethod
    def _stop(group: ChannelGroup, reason: str) -> list[fx.Node]:
        if group.removable:
            group.removable, group.reason = False, f"its channels reach {reason}"
        return []


def channel_groups(model: nn.Module, input_shape: Sequence[int]) -> list[ChannelGroup]:
    """One group per Conv2d that is not depthwise, in model order (see the module docstring).

    ``input_shape`` (C, H, W) is needed to know how many Linear inputs a flattened channel feeds.
    """
    gm = _trace(model, input_shape)
    walker = _Walker(gm)
    groups = []
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        m = walker.modules[str(node.target)]
        if isinstance(m, nn.Conv2d) and not is_depthwise(m):
            if m.groups != 1:
                raise ValueError(f"{node.target}: grouped convolutions (groups={m.groups}) are not supported")
            group = ChannelGroup(str(node.target), m.out_channels)
            walker.follow(node, group)
            groups.append(group)
    return groups
