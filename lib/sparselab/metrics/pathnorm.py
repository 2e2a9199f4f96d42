"""L^q path-norms of ReLU networks with BatchNorm, max-pooling and skips (Gonon et al., ICLR 2024).

The L^q path-norm is the L^q norm of the path-lifting: over every path from an input neuron or
from a biased neuron to an output neuron, the product of the edge weights, with the biases as
weights of the paths' first edge. Replacing every weight and bias by its q-th absolute power and
summing the outputs of one forward pass on an all-ones input gives the sum of those products'
q-th powers (Theorem A.1 of the paper), provided each kind of neuron is handled by its definition:

* BatchNorm (always eval-mode semantics) is one affine neuron per channel, ``a = gamma/sqrt(var+eps)``
  and ``b = beta - mean*a``, giving ``|a|^q`` and ``|b|^q`` (applied as that affine map, never
  through ``F.batch_norm``: see :func:`_channel_affine`);
* a max-pool neuron has an edge of weight 1 from every input of its window: the pass sums the window;
* an average-pool neuron has edges of weight ``1/K``: the pass sums the window times ``(1/K)^q``;
* ReLU is the activation of a neuron, identity skips and concatenations are edges of weight 1;
* functional pooling is its module; a mean over non-batch dimensions (``x.mean((2, 3))``) is an
  average-pool neuron, a maximum (``amax``) a max-pool neuron, a sum a neuron with edges of weight 1;
* re-indexing (reshapes, transposes, ShuffleNet's channel shuffle, chunks, splits, slices) moves
  neurons without computing: the walk applies it to its tensors as the model does;
* a constant factor ``c`` is an edge of weight ``c``, an added constant a bias (Inception v3's input
  transform); products of activations (gates), SiLU, GELU, LayerNorm or attention are refused by
  :mod:`.path_graph` before any computation;
* q = 0 counts the paths whose weights are all non-zero (``|0|^0 = 0``, so pruned weights stay pruned).

Numerics. All values are kept as a tensor times ``exp(scale)`` with the scale a Python float.
Powered weights are scaled to a maximum of ``exp(30)`` (float32, q > 2) and the output of every
weighted layer is renormalised whenever its maximum leaves ``exp(+-limit)``: the norm never
overflows (ResNet-152's L1 is about 6e194) and a tensor's largest values never vanish. The scale is
one per tensor, and values below the smallest normal float count as 0 (subnormals would make CPU
arithmetic tens of times slower; see ``_Exact.power``), so in float32 at large q an entry far below
its tensor's maximum is lost (weights below about 6.5e-4 of their tensor's maximum at q = 16,
activations below about 1e-38 of theirs); when such entries carry the dominant paths (contrived, see
tests/test_pathnorm.py) only ``dtype=torch.float64`` is exact. Real networks agree with float64 to
about 1e-7. Speed: a pass costs about 1.2x (q <= 2) to 1.5x (q = 16) a plain forward pass on CPU
(bench/pathnorm.py): a weight tensor is read once for q <= 2 and powered in place by squaring,
activations are freed as soon as the walk is past their last reader.
The model is never modified, not even temporarily: the walk reads its weights and computes with
functional ops on new tensors, so it also works during training, under ``torch.no_grad`` or not.

``convention="gbrg24"`` instead reproduces the numbers of the original code (pathnorm_toolkit,
used for the paper's Table 3 and Figures 4-5); see :class:`_Gbrg24`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd

from ..divergence import check_finite
from . import path_graph as pg
from .denormals import flush_denormals
from .path_graph import UnsupportedModelError, effective_bias, effective_weight, node_args

CONVENTIONS = ("exact", "gbrg24")
DEFAULT_QS = (1.0, 2.0, 4.0, 8.0, 16.0)
# Renormalise activations when their maximum leaves exp(+-limit). Powered weights are scaled so
# that their maximum is exp(top) (q > 2): small entries keep top more e-folds of range before they
# underflow, and a product of a weight and an activation summed over a layer's fan-in still stays
# inside the dtype's range (float32: activations below exp(24) between two checks, see renorm,
# 24 + 30 + log(fan-in) < 88).
_LIMITS = {torch.float32: 10.0, torch.float64: 200.0}
_WEIGHT_TOPS = {torch.float32: 30.0, torch.float64: 300.0}

__all__ = ["CONVENTIONS", "DEFAULT_QS", "PathNorm", "UnsupportedModelError", "path_norm", "path_norms"]


@dataclasses.dataclass(frozen=True)
class PathNorm:
    """One path-norm: ``log10`` is exact even where ``value`` does not fit a float."""

    q: float
    log10: float  # log10 of the norm (of the path count for q = 0); -inf for 0, nan if undefined
    convention: str = "exact"

    @property
    def value(self) -> float:
        if math.isnan(self.log10) or self.log10 == -math.inf:
            return math.nan if math.isnan(self.log10) else 0.0
        try:
            return 10.0**self.log10
        except OverflowError:
            return math.inf


@dataclasses.dataclass
class _Scaled:
    """A non-negative tensor of values ``t * exp(s)``."""

    t: torch.Tensor
    s: float = 0.0


# ------------------------------------------------------------------------------------ pooling maps
def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _pool_out(size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    """Output length of a pooling window sweep, by PyTorch's formula (ceil_mode included)."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    return out


def _window_sum(x: torch.Tensor, kernel: Any, stride: Any, padding: Any, dilation: Any, ceil: bool) -> torch.Tensor:
    """Sum of each pooling window (zero padding: padded positions are no neurons, hence no paths)."""
    k, s, p, d = _pair(kernel), _pair(stride if stride not in (None, ()) else kernel), _pair(padding), _pair(dilation)
    if d == (1, 1):
        return F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=True, divisor_override=1)
    h, w = x.shape[-2:]
    out_h, out_w = _pool_out(h, k[0], s[0], p[0], d[0], ceil), _pool_out(w, k[1], s[1], p[1], d[1], ceil)
    extra_h = max(0, (out_h - 1) * s[0] + d[0] * (k[0] - 1) + 1 - (h + 2 * p[0]))
    extra_w = max(0, (out_w - 1) * s[1] + d[1] * (k[1] - 1) + 1 - (w + 2 * p[1]))
    x = F.pad(x, (p[1], p[1] + extra_w, p[0], p[0] + extra_h))
    channels = x.shape[1]
    ones = torch.ones(channels, 1, *k, dtype=x.dtype, device=x.device)
    return F.conv2d(x, ones, stride=s, dilation=d, groups=channels)[..., :out_h, :out_w]


def _avgpool_divisors(m: nn.AvgPool2d, h: int, w: int) -> torch.Tensor:
    """The divisor of every output position of ``m`` (it varies with count_include_pad=False and
    ceil_mode), as window sum over window average of an all-ones map, in float64."""
    ones = torch.ones(1, 1, h, w, dtype=torch.float64)
    total = _window_sum(ones, m.kernel_size, m.stride, m.padding, 1, m.ceil_mode)
    mean = F.avg_pool2d(ones, m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad, m.divisor_override)
    return total / mean


def _adaptive_sizes(size: int, out: int) -> torch.Tensor:
    """Window lengths of adaptive pooling: [floor(i*size/out), ceil((i+1)*size/out))."""
    return torch.tensor([-(-(i + 1) * size // out) - (i * size // out) for i in range(out)], dtype=torch.float64)


def _adaptive_out(m: nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d, h: int, w: int) -> tuple[int, int]:
    size = m.output_size  # an int or a pair; None (alone or in the pair) keeps the input's length
    oh, ow = (size, size) if size is None or isinstance(size, int) else size
    return (h if oh is None else int(oh)), (w if ow is None else int(ow))


# ------------------------------------------------------------------------------------ semantics
def _channel_affine(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``scale * x + shift`` per channel (dimension 1) in one fused op, a new tensor.

    BatchNorm as the affine map it is in eval mode, written directly: ``F.batch_norm`` with unit
    statistics would need eps 0, which torch accepts only from 2.14 on (older releases raise
    ``ValueError: batch_norm eps must be positive``), and BatchNorms with eps 0 exist."""
    shape = (-1, *[1] * (x.dim() - 2))
    return torch.addcmul(shift.view(shape), x, scale.view(shape))


def _running_stats(m: _BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """(running_mean, running_var); the trace already rejects BatchNorms without them."""
    if m.running_mean is None or m.running_var is None:
        raise UnsupportedModelError(f"{type(m).__name__} without running statistics (not an affine map in eval mode)")
    return m.running_mean, m.running_var


class _Semantics:
    """How one walk computes each operation; the common parts are edges of weight 1."""

    def __init__(self, q: float, dtype: torch.dtype) -> None:
        self.q, self.dtype = q, dtype
        self._handlers: dict[type, Callable[[Any, _Scaled], _Scaled]] = {}

    def module(self, m: nn.Module, x: _Scaled) -> _Scaled:
        handler = self._handlers.get(type(m))
        if handler is None:
            handler = self._handlers[type(m)] = self._handler(m)
        return handler(m, x)

    def _handler(self, m: nn.Module) -> Callable[[Any, _Scaled], _Scaled]:
        """How modules of ``type(m)`` are walked (looked up once per type)."""
        if isinstance(m, nn.Flatten):
            return lambda m, x: _Scaled(m(x.t), x.s)
        if isinstance(m, (nn.Identity, _DropoutNd)):
            return lambda m, x: x
        if isinstance(m, nn.ReLU):
            return lambda m, x: self.relu(x)
        if isinstance(m, nn.MaxPool2d):
            return self.max_pool
        kinds: dict[type, Callable[[Any, _Scaled], _Scaled]] = {
            nn.Conv2d: self.conv,
            nn.Linear: self.linear,
            nn.BatchNorm1d: self.batch_norm,
            nn.BatchNorm2d: self.batch_norm,
            nn.AvgPool2d: self.avg_pool,
            nn.AdaptiveAvgPool2d: self.adaptive_avg_pool,
            nn.AdaptiveMaxPool2d: self.adaptive_max_pool,
        }
        for kind, fn in kinds.items():
            if isinstance(m, kind):
                return fn
        raise UnsupportedModelError(f"{type(m).__name__} is not supported by path-norms")

    def max_pool(self, m: nn.MaxPool2d, x: _Scaled) -> _Scaled:
        return _Scaled(_window_sum(x.t, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode), x.s)

    def adaptive_max_pool(self, m: nn.AdaptiveMaxPool2d, x: _Scaled) -> _Scaled:
        """Max neurons over adaptive windows: each window's sum (its mean times its size)."""
        h, w = x.t.shape[-2:]
        oh, ow = _adaptive_out(m, h, w)
        sizes = torch.outer(_adaptive_sizes(h, oh), _adaptive_sizes(w, ow)).to(x.t.device, x.t.dtype)
        return self.renorm(F.adaptive_avg_pool2d(x.t, (oh, ow)) * sizes, x.s)

    def reduce(self, kind: str, x: _Scaled, dims: tuple[int, ...], keepdim: bool) -> _Scaled:
        """A mean, sum or maximum over non-batch dimensions: one average-pool, sum or max-pool
        neuron per remaining position (a max neuron's window is summed, as in :meth:`max_pool`)."""
        total = self.renorm(x.t.sum(dims, keepdim=keepdim), x.s)
        if kind != pg.MEAN:
            return total
        count = math.prod(x.t.shape[d] for d in dims)
        return self.mean_of(total, count)

    def mean_of(self, total: _Scaled, count: int) -> _Scaled:
        """An average neuron from the sum of its ``count`` inputs (edges of weight 1/count)."""
        raise NotImplementedError

    def scale(self, x: _Scaled, c: float) -> _Scaled:
        """``c * x``: an edge of weight ``c`` from every neuron of ``x``."""
        raise NotImplementedError

    def add_constant(self, x: _Scaled, c: float) -> _Scaled:
        """``x + c``: neurons with bias ``c`` (a fresh tensor)."""
        raise NotImplementedError

    def add(self, a: _Scaled, b: _Scaled, into: torch.Tensor | None = None) -> _Scaled:
        """``a + b``; ``into`` is an operand's tensor that nothing else reads (written in place)."""
        hi, lo = (a, b) if a.s >= b.s else (b, a)
        alpha = math.exp(lo.s - hi.s)
        if into is not None and a.t.shape == b.t.shape:
            return _Scaled(torch.add(hi.t, lo.t, alpha=alpha, out=into), hi.s)
        return _Scaled(torch.add(hi.t, lo.t, alpha=alpha), hi.s)

    def cat(self, join: Callable[..., torch.Tensor], parts: Sequence[_Scaled], *args: Any, **kwargs: Any) -> _Scaled:
        """``torch.cat``/``stack`` (``join``) of activations, brought to their largest scale."""
        s = max(p.s for p in parts)
        return _Scaled(join([p.t if p.s == s else p.t * math.exp(p.s - s) for p in parts], *args, **kwargs), s)

    def renorm(self, t: torch.Tensor, s: float) -> _Scaled:
        return _Scaled(t, s)

    # overridden per convention
    def relu(self, x: _Scaled) -> _Scaled:
        raise NotImplementedError

    def conv(self, m: nn.Conv2d, x: _Scaled) -> _Scaled:
        raise NotImplementedError

    def linear(self, m: nn.Linear, x: _Scaled) -> _Scaled:
        raise NotImplementedError

    def batch_norm(self, m: _BatchNorm, x: _Scaled) -> _Scaled:
        raise NotImplementedError

    def avg_pool(self, m: nn.AvgPool2d, x: _Scaled) -> _Scaled:
        raise NotImplementedError

    def adaptive_avg_pool(self, m: nn.AdaptiveAvgPool2d, x: _Scaled) -> _Scaled:
        raise NotImplementedError

    def finish(self, out: _Scaled) -> float:
        """log10 of the path-norm from the output of the walk."""
        raise NotImplementedError


def _sampled_max(w: torch.Tensor, blocks: int = 16, block: int = 1024) -> float:
    """``max|w|`` over ``blocks`` evenly spaced runs of ``block`` entries (all of a small tensor):
    a lower bound of the maximum that reads a few cache lines instead of the whole tensor."""
    flat = w.reshape(-1)
    n = flat.numel()
    if n == 0:
        return 0.0
    if n > blocks * block:
        flat = flat.as_strided((blocks, block), ((n - block) // (blocks - 1), 1))
    lo, hi = torch.aminmax(flat)
    return max(-float(lo), float(hi))


def _power_of_two(q: float) -> int | None:
    """k with q = 2**k for q in {2, 4, 8, ...} (computed by repeated squaring, exact and fast)."""
    if q >= 2 and q == int(q) and int(q) & (int(q) - 1) == 0:
        return int(q).bit_length() - 1
    return None


class _Folded:
    """What the walks of one call share, whatever q: per-layer max |w|, BatchNorm folded into
    ``(a, b)`` in float64, and one buffer for powered weights, kept with the model's trace
    (fresh weight-sized tensors cost more in page faults than the powers themselves)."""

    def __init__(self, graph: pg.PathGraph, dtype: torch.dtype, device: torch.device) -> None:
        self.graph, self.dtype, self.device = graph, dtype, device
        sizes = [effective_weight(m).numel() for m in graph.modules.values() if isinstance(m, (nn.Conv2d, nn.Linear))]
        key = ("powered weights", dtype, device)
        if key not in graph.buffers or graph.buffers[key].numel() < max(sizes, default=0):
            graph.buffers[key] = torch.empty(max(sizes, default=0), dtype=dtype, device=device)
        self.scratch = graph.buffers[key]
        self.zero = torch.zeros((), dtype=dtype, device=device)  # addcmul's "input" (broadcast)
        self._max: dict[int, float] = {}
        self._fold_batch_norms([m for m in graph.modules.values() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))])

    def _fold_batch_norms(self, bns: Sequence[_BatchNorm]) -> None:
        """Every eval-mode BatchNorm as one affine neuron per channel, ``a*x + b`` with
        ``a = gamma/sqrt(var+eps)`` and ``b = beta - mean*a``, for all layers in a few ops."""
        self.bn_index = {id(m): i for i, m in enumerate(bns)}
        self.bn_counts = [m.num_features for m in bns]
        key = ("batch-norm layout", tuple(self.bn_counts), self.device)
        if key not in self.graph.buffers:  # the same at every call on this trace: computed once
            lengths = torch.tensor(self.bn_counts, device=self.device, dtype=torch.long)
            segment = torch.repeat_interleave(torch.arange(len(bns), device=self.device), lengths)
            starts = [sum(self.bn_counts[:i]) for i in range(len(bns))]
            self.graph.buffers[key] = (lengths, segment, starts)
        self.bn_lengths, self.bn_segment, self.bn_starts = self.graph.buffers[key]
        if not bns:
            self.bn_a = self.bn_b = torch.zeros(0, dtype=torch.float64, device=self.device)
            return

        def gather(get: Callable[[_BatchNorm], torch.Tensor]) -> torch.Tensor:
            return torch.cat([get(m).detach().to(self.device) for m in bns]).to(torch.float64)

        ones = lambda m: torch.ones(m.num_features)  # noqa: E731  (non-affine BatchNorm)
        var = gather(lambda m: _running_stats(m)[1])
        eps = torch.tensor([m.eps for m in bns], dtype=torch.float64, device=self.device)
        a = gather(lambda m: m.weight if m.weight is not None else ones(m)) * torch.rsqrt(var + eps[self.bn_segment])
        b = gather(lambda m: m.bias if m.bias is not None else ones(m) * 0) - gather(lambda m: _running_stats(m)[0]) * a
        self.bn_a, self.bn_b = a, b

    def weight_max(self, m: nn.Module, w: torch.Tensor) -> float:
        if id(m) not in self._max:
            lo, hi = torch.aminmax(w) if w.numel() else (torch.zeros(()), torch.zeros(()))
            self._max[id(m)] = max(-float(lo), float(hi))  # aminmax: faster than abs().amax()
        return self._max[id(m)]


class _Exact(_Semantics):
    """The path-norm by its definition, in scaled ``dtype`` arithmetic."""

    def __init__(self, q: float, folded: _Folded, cut: bool = True, safe: bool = False) -> None:
        super().__init__(q, folded.dtype)
        self.cut = cut  # set subnormal powered weights to 0 explicitly (no flush-to-zero mode)
        self.safe = safe  # scale every weight tensor by its exact maximum (see _affine)
        self.limit, self.weight_top = _LIMITS[folded.dtype], _WEIGHT_TOPS[folded.dtype]
        self.folded = folded
        self._bn_powers: tuple[tuple[torch.Tensor, torch.Tensor, list[float]], ...] | None = None

    def renorm(self, t: torch.Tensor, s: float) -> _Scaled:
        """Keep the maximum inside ``exp(+-limit)``; called on the output of every weighted layer
        (Conv2d, Linear). In between, values change by bounded factors only: BatchNorm factors and
        shifts are at most ``exp(2*limit)`` (:meth:`segment_powers`), a sum at most doubles, a
        window sum grows by its size, so nothing overflows before the next check."""
        m = float(t.amax()) if t.numel() else 0.0
        if not math.isfinite(m):
            raise FloatingPointError("path-norm walk produced a non-finite value (non-finite weights?)")
        if m > 0 and abs(math.log(m)) > self.limit:
            t, s = t.div_(m), s + math.log(m)  # t is always a fresh tensor of the walk
        return _Scaled(t, s)

    def _pow(self, w: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``|w|^q`` into ``out``, unscaled (q <= 2, where it stays in range for any sensible
        weights; :meth:`power` otherwise)."""
        q = self.q
        if q == 0:
            return out.copy_(w != 0)
        if q == 1:
            return torch.abs(w, out=out)
        if q == 2:
            return torch.square(w, out=out)
        return torch.abs(w, out=out).pow_(q)

    def power(self, w: torch.Tensor, out: torch.Tensor, top: Callable[[], float]) -> _Scaled:
        """``|w|^q`` into ``out`` as a scaled tensor; ``top()`` returns ``max|w|``.

        The powers are taken of ``c*|w|`` with ``(c*max|w|)^q = exp(top)``, so the largest is
        ``exp(top)`` whatever the weights' magnitude. Values below the dtype's smallest normal
        number become 0: subnormal floats make CPU arithmetic tens of times slower (a convolution
        with 1% subnormal weights runs 25x slower), and such a value lies ``exp(top)`` below the
        float range's bottom relative to its tensor's maximum (float32, q = 16: ``|w| < 6.5e-4 *
        max|w|``), the per-tensor limit described in the module docstring. The CPU's flush-to-zero
        mode does that for free (:func:`~sparselab.metrics.denormals.flush_denormals`); without it
        (``self.cut``) they are cut before the last steps, one more pass.
        """
        q = self.q
        w = w.to(out.dtype)
        if q == 0:
            return _Scaled(self._pow(w, out), 0.0)
        m = top()
        if not math.isfinite(m):
            raise FloatingPointError("non-finite weights: the path-norm is undefined")
        if m == 0:
            return _Scaled(out.zero_(), 0.0)
        if q <= 2:  # no underflow worth a cut: |w| / max|w| >= 1e-19 for any sensible weights
            torch.abs(w, out=out).div_(m)
            if q != 1:
                out.square_() if q == 2 else out.pow_(q)
            return _Scaled(out, q * math.log(m))
        log_c = self.weight_top / q - math.log(m)
        tiny = torch.finfo(out.dtype).tiny
        k = _power_of_two(q)
        if k is not None:  # (c w)^2 in one pass, cut, then squared k - 1 times
            torch.addcmul(self.folded.zero, w, w, value=math.exp(2 * log_c), out=out)
            if self.cut:
                torch.threshold_(out, tiny ** (2 / q), 0.0)
            for _ in range(k - 1):
                out.square_()
        else:
            torch.abs(w, out=out).mul_(math.exp(log_c))
            if self.cut:
                torch.threshold_(out, tiny ** (1 / q), 0.0)
            out.pow_(q)
        return _Scaled(out, -q * log_c)

    def vector_power(self, v: torch.Tensor) -> _Scaled:
        """``|v|^q`` of a small per-neuron vector (biases), computed and kept in float64; cast with
        :meth:`narrow` where it is used."""
        v = v.detach().to(torch.float64)
        return self.power(v, torch.empty_like(v), lambda: float(v.abs().max()) if v.numel() else 0.0)

    def narrow(self, v: torch.Tensor, factor: float = 1.0) -> torch.Tensor:
        """A float64 vector times ``factor`` in the walk's dtype, values below its smallest normal
        number set to 0 (a subnormal bias or BatchNorm factor slows every element it touches)."""
        v = v * factor if factor != 1.0 else v
        if self.dtype == torch.float64:
            return v
        return torch.threshold_(v.to(self.dtype), torch.finfo(self.dtype).tiny, 0.0)

    def segment_powers(self, v: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
        """``|v|^q`` of consecutive segments (all BatchNorm layers at once), each with its own
        scale, in float64: logs, per-segment maxima, then ``exp`` of the difference."""
        if self.q == 0:
            return (v != 0).to(torch.float64), [0.0] * len(self.folded.bn_counts)
        if not torch.isfinite(v).all():
            raise FloatingPointError("non-finite BatchNorm statistics: the path-norm is undefined")
        logs = self.q * torch.log(v.abs())
        tops = torch.segment_reduce(logs, "max", lengths=self.folded.bn_lengths).tolist()
        # an all-zero segment (-inf) takes any scale: -inf marks it, so that it never sets the scale
        scales = [t if math.isinf(t) or abs(t) > self.limit else 0.0 for t in tops]
        if not any(scales):
            return torch.exp(logs), scales
        finite = [t if math.isfinite(t) else 0.0 for t in scales]
        shift = torch.tensor(finite, dtype=torch.float64, device=v.device)[self.folded.bn_segment]
        return torch.exp(logs - shift), scales

    def relu(self, x: _Scaled) -> _Scaled:
        return x  # every value of the walk is >= 0

    def _affine(self, fn: Callable[..., torch.Tensor], m: nn.Module, x: _Scaled) -> _Scaled:
        """A weighted layer. The fast walk skips a pass over the weights: unscaled powers for
        q <= 2 (in range for any sensible weights), and for q > 2 a scale from ``max|w|`` over a
        sample (:func:`_sampled_max`), a lower bound, so that a miss can only overflow; any overflow makes the
        walk non-finite, and :func:`path_norms` then redoes it with ``safe`` (exact maxima)."""
        w = effective_weight(m)
        out = self.folded.scratch[: w.numel()].view(w.shape)  # consumed at once: buffer reuse
        if self.safe or self.q == 0:
            weight = self.power(w, out, lambda: self.folded.weight_max(m, w))
        elif self.q <= 2:
            weight = _Scaled(self._pow(w.to(out.dtype), out), 0.0)
        else:
            weight = self.power(w, out, lambda: _sampled_max(w) or self.folded.weight_max(m, w))
        return self._apply(fn, m, x, weight)

    def _apply(self, fn: Callable[..., torch.Tensor], m: nn.Module, x: _Scaled, weight: _Scaled) -> _Scaled:
        bias = effective_bias(m)
        s = x.s + weight.s
        if bias is None or not bool(bias.any()):  # a zero bias starts no path: its scale means nothing
            return self.renorm(fn(x.t, weight.t, None), s)
        b = self.vector_power(bias)
        shift = b.s - s
        if shift <= self.limit:
            return self.renorm(fn(x.t, weight.t, self.narrow(b.t, math.exp(shift))), s)
        out = fn(x.t, weight.t, None) * math.exp(-shift)  # the bias dominates: work at its scale
        return self.renorm(out + self.narrow(b.t).view(-1, *[1] * (out.dim() - 2)), b.s)

    def conv(self, m: nn.Conv2d, x: _Scaled) -> _Scaled:
        return self._affine(m._conv_forward, m, x)

    def linear(self, m: nn.Linear, x: _Scaled) -> _Scaled:
        return self._affine(F.linear, m, x)

    def batch_norm(self, m: _BatchNorm, x: _Scaled) -> _Scaled:
        folded = self.folded
        if self._bn_powers is None:
            (pa, sa), (pb, sb) = self.segment_powers(folded.bn_a), self.segment_powers(folded.bn_b)
            self._bn_powers = (pa, self.narrow(pa), sa), (pb, self.narrow(pb), sb)
        (pa, pa_narrow, sa), (pb, pb_narrow, sb) = self._bn_powers
        i = folded.bn_index[id(m)]
        span = slice(folded.bn_starts[i], folded.bn_starts[i] + folded.bn_counts[i])
        if math.isinf(sa[i]):  # every factor is 0 (gamma = 0): no path goes through, shifts start some
            s = 0.0 if math.isinf(sb[i]) else sb[i]
            return _Scaled(_channel_affine(x.t, torch.zeros_like(pa_narrow[span]), self.narrow(pb[span])), s)
        s_in = x.s + sa[i]
        if math.isinf(sb[i]) or sb[i] - s_in <= self.limit:  # (no shift at all: nothing to add)
            factor = 0.0 if math.isinf(sb[i]) else math.exp(sb[i] - s_in)
            # without flush-to-zero (self.cut), a product that turns subnormal must be cut
            shift = self.narrow(pb[span], factor) if self.cut else pb_narrow[span] * factor
            s, scale = s_in, pa_narrow[span]
        else:  # the shifts dominate: work at their scale
            s, scale, shift = sb[i], self.narrow(pa[span], math.exp(s_in - sb[i])), self.narrow(pb[span])
        return _Scaled(_channel_affine(x.t, scale, shift), s)

    def _scaled_map(self, divisors: torch.Tensor, exponent: float) -> _Scaled:
        """``divisors**exponent`` (float64) as a scaled tensor shaped to broadcast over channels."""
        log_map = exponent * torch.log(divisors)
        top = float(log_map.max())
        return _Scaled(self.narrow(torch.exp(log_map - top)), top)

    def avg_pool(self, m: nn.AvgPool2d, x: _Scaled) -> _Scaled:
        h, w = x.t.shape[-2:]
        total = _window_sum(x.t, m.kernel_size, m.stride, m.padding, 1, m.ceil_mode)
        factor = self._scaled_map(_avgpool_divisors(m, h, w).to(x.t.device), -self.q)
        return _Scaled(total * factor.t, x.s + factor.s)

    def adaptive_avg_pool(self, m: nn.AdaptiveAvgPool2d, x: _Scaled) -> _Scaled:
        h, w = x.t.shape[-2:]
        oh, ow = _adaptive_out(m, h, w)
        sizes = torch.outer(_adaptive_sizes(h, oh), _adaptive_sizes(w, ow)).to(x.t.device)
        # mean * size is the window sum; each edge then weighs size**-q
        factor = self._scaled_map(sizes, 1.0 - self.q)
        return _Scaled(F.adaptive_avg_pool2d(x.t, (oh, ow)) * factor.t, x.s + factor.s)

    def mean_of(self, total: _Scaled, count: int) -> _Scaled:
        return _Scaled(total.t, total.s - self.q * math.log(count))

    def scale(self, x: _Scaled, c: float) -> _Scaled:
        if c == 0:
            return _Scaled(torch.zeros_like(x.t), 0.0)
        return _Scaled(x.t, x.s + self.q * math.log(abs(c)))

    def add_constant(self, x: _Scaled, c: float) -> _Scaled:
        if c == 0:  # no bias, no paths (also for q = 0)
            return _Scaled(x.t.clone(), x.s)
        log_b = self.q * math.log(abs(c))
        if log_b - x.s <= self.limit:
            return self.renorm(x.t + math.exp(log_b - x.s), x.s)
        return self.renorm(x.t * math.exp(x.s - log_b) + 1.0, log_b)  # the bias dominates

    def finish(self, out: _Scaled) -> float:
        total = float(out.t.to(torch.float64).sum())
        if not math.isfinite(total):
            raise FloatingPointError("path-norm walk produced a non-finite value (non-finite weights?)")
        if total == 0:
            return -math.inf
        log_sum = math.log(total) + out.s
        return (log_sum if self.q == 0 else log_sum / self.q) / math.log(10)


class _Gbrg24(_Semantics):
    """The original code's conventions (pathnorm_toolkit ``get_path_norm``), kept to reconcile with
    the paper's Table 3 and Figures 4-5. It differs from the definition in three ways:

    * BatchNorm: each stored tensor is powered separately (``|gamma|^q``, ``|beta|^q``, ``|mean|^q``,
      ``var^q``, eps unchanged) and the layer run in eval mode; the shift can turn negative and the
      following ReLU then clips it. Right for q = 1 only when mean and beta are 0.
    * Average pooling keeps its weights 1/K inside the pass and the result is multiplied by
      ``(1/K)^(q-1)`` after the q-th root (K = window size of each AdaptiveAvgPool2d), which for
      q >= 2 is off by ``K^((q-1)^2/q)`` on pooled paths and wrongly scales the fc-bias paths.
    * Plain float32: L1 of ResNet-34 and larger overflows to inf/NaN, as in the paper.

    q = 0 returns the raw output sum; pruned (zero) weights stay zero, as they did there.
    """

    def __init__(self, q: float, dtype: torch.dtype) -> None:
        super().__init__(q, torch.float32)
        self.avg_factor = 1.0

    def _pow(self, w: torch.Tensor) -> torch.Tensor:
        w = w.to(torch.float32)
        return (w != 0).to(torch.float32) if self.q == 0 else w.abs().pow(self.q)

    def relu(self, x: _Scaled) -> _Scaled:
        return _Scaled(F.relu(x.t))

    def conv(self, m: nn.Conv2d, x: _Scaled) -> _Scaled:
        bias = effective_bias(m)
        return _Scaled(m._conv_forward(x.t, self._pow(effective_weight(m)), None if bias is None else self._pow(bias)))

    def linear(self, m: nn.Linear, x: _Scaled) -> _Scaled:
        bias = effective_bias(m)
        return _Scaled(F.linear(x.t, self._pow(effective_weight(m)), None if bias is None else self._pow(bias)))

    def batch_norm(self, m: _BatchNorm, x: _Scaled) -> _Scaled:
        def powered(t: torch.Tensor) -> torch.Tensor:
            return t.detach().to(torch.float32).abs().pow(self.q)  # torch: 0**0 == 1

        # eval-mode F.batch_norm, written out: (x - mean) / sqrt(var + eps) * weight + bias
        mean, var = (powered(t) for t in _running_stats(m))
        scale = torch.rsqrt(var + m.eps)
        if m.weight is not None:
            scale = scale * powered(m.weight)
        shift = -mean * scale if m.bias is None else powered(m.bias) - mean * scale
        return _Scaled(_channel_affine(x.t, scale, shift))

    def avg_pool(self, m: nn.AvgPool2d, x: _Scaled) -> _Scaled:
        return _Scaled(m(x.t))

    def adaptive_avg_pool(self, m: nn.AdaptiveAvgPool2d, x: _Scaled) -> _Scaled:
        h, w = x.t.shape[-2:]
        oh, ow = _adaptive_out(m, h, w)
        self.avg_factor *= (oh * ow) / (h * w)
        return _Scaled(F.adaptive_avg_pool2d(x.t, (oh, ow)))

    def mean_of(self, total: _Scaled, count: int) -> _Scaled:
        self.avg_factor /= count  # as for AdaptiveAvgPool2d: 1/K in the pass, K^(1-q) at the end
        return _Scaled(total.t / count)

    def _power(self, c: float) -> float:
        return float(c != 0) if self.q == 0 else abs(c) ** self.q

    def scale(self, x: _Scaled, c: float) -> _Scaled:
        return _Scaled(x.t * self._power(c))

    def add_constant(self, x: _Scaled, c: float) -> _Scaled:
        return _Scaled(x.t + self._power(c))

    def finish(self, out: _Scaled) -> float:
        total = out.t.sum()
        value = total if self.q == 0 else total.pow(1.0 / self.q) * self.avg_factor ** (self.q - 1)
        value = float(value)
        if math.isnan(value) or value < 0:
            return math.nan
        return math.log10(value) if value > 0 else -math.inf


# ------------------------------------------------------------------------------------ the walk
def _unwrapped(value: Any) -> Any:
    """``value`` with every scaled activation replaced by its tensor (for size arithmetic)."""
    if isinstance(value, _Scaled):
        return value.t
    if isinstance(value, (tuple, list)):
        return type(value)(_unwrapped(v) for v in value)
    return value


def _holds_activation(value: Any) -> bool:
    if isinstance(value, _Scaled):
        return True
    if isinstance(value, (tuple, list)):
        return any(_holds_activation(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_activation(v) for v in value.values())
    return isinstance(value, slice) and any(_holds_activation(v) for v in (value.start, value.stop, value.step))


def _constant(node: fx.Node, value: Any) -> float:
    """A Python number operand of an arithmetic operation on activations."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UnsupportedModelError(
            f"{node.name} in {pg.where(node)}: arithmetic between activations and a {type(value).__name__} "
            "(only Python numbers are constant edge weights or biases)"
        )
    if not math.isfinite(value):
        raise UnsupportedModelError(f"{node.name} in {pg.where(node)}: a non-finite constant {value}")
    return float(value)


def _index(node: fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A re-indexing of one activation (reshape, transpose, chunk, slice): computed on its tensor,
    every result keeps its scale. An element of a chunked tuple is just that element."""
    x, rest = args[0], args[1:]
    if node.target is operator.getitem and isinstance(x, (tuple, list)):
        return x[rest[0]]
    if not isinstance(x, _Scaled) or _holds_activation((rest, kwargs)):
        raise UnsupportedModelError(f"{node.name} in {pg.where(node)}: indexing that depends on activations")
    if node.op == "call_method":
        out = getattr(x.t, str(node.target))(*rest, **kwargs)
    else:
        out = node.target(x.t, *rest, **kwargs)  # type: ignore[operator]
    if isinstance(out, torch.Tensor):
        return _Scaled(out, x.s)
    return tuple(_Scaled(o, x.s) for o in out)


def _sum(sem: _Semantics, node: fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any], graph: pg.PathGraph) -> _Scaled:
    """``a + alpha*b`` and ``a - alpha*b``: a sum neuron (edges of weight 1 and |alpha|) when both
    are activations; otherwise an activation plus a constant (a bias) or a constant minus one."""
    a, b = args[0], args[1]
    alpha = kwargs.get("alpha", 1)
    if isinstance(a, _Scaled) and isinstance(b, _Scaled):
        other = b if alpha == 1 else sem.scale(b, _constant(node, alpha))
        into = a.t if _disposable(node.args[0], graph) else b.t if _disposable(node.args[1], graph) else None
        return sem.add(a, other, into)
    if isinstance(a, _Scaled):
        return sem.add_constant(a, _constant(node, b) * _constant(node, alpha))
    if isinstance(b, _Scaled):
        return sem.add_constant(sem.scale(b, _constant(node, alpha)), _constant(node, a))
    raise UnsupportedModelError(f"{node.name} in {pg.where(node)}: a sum without activations")


def _product(sem: _Semantics, node: fx.Node, args: tuple[Any, ...], kind: str) -> _Scaled:
    """An activation times (or divided by) a constant: an edge of that weight."""
    a, b = args[0], args[1]
    if kind == pg.DIV:
        if not isinstance(a, _Scaled) or isinstance(b, _Scaled):
            raise UnsupportedModelError(f"{node.name} in {pg.where(node)}: division by an activation")
        c = _constant(node, b)
        if c == 0:
            raise UnsupportedModelError(f"{node.name} in {pg.where(node)}: division by zero")
        return sem.scale(a, 1.0 / c)
    if isinstance(a, _Scaled) == isinstance(b, _Scaled):
        raise UnsupportedModelError(f"{node.name} in {pg.where(node)}: product of two activations (not homogeneous)")
    x, c = (a, b) if isinstance(a, _Scaled) else (b, a)
    return sem.scale(x, _constant(node, c))


def _reduced_dims(
    node: fx.Node, x: _Scaled, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[int, ...], bool]:
    """The dimensions a mean/sum/amax reduces (never the batch's) and its ``keepdim``."""
    dims = args[1] if len(args) > 1 else kwargs.get("dim", kwargs.get("axis"))
    keepdim = bool(args[2] if len(args) > 2 else kwargs.get("keepdim", False))
    ndim = x.t.dim()
    if dims is None or (isinstance(dims, (tuple, list)) and len(dims) == 0):
        raise UnsupportedModelError(f"{node.name} in {pg.where(node)}: a reduction over the batch dimension")
    resolved = tuple(sorted({int(d) % ndim for d in ((dims,) if isinstance(dims, int) else dims)}))
    if 0 in resolved:
        raise UnsupportedModelError(f"{node.name} in {pg.where(node)}: a reduction over the batch dimension")
    return resolved, keepdim


# Functional pooling, bound to the module that computes the same thing (the functions' signatures).
Size = Any  # an int or a pair


def _max_pool2d(
    input: Any,
    kernel_size: Size,
    stride: Size = None,
    padding: Size = 0,
    dilation: Size = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> nn.Module:
    return nn.MaxPool2d(kernel_size, stride or None, padding, dilation, return_indices, ceil_mode)


def _avg_pool2d(
    input: Any,
    kernel_size: Size,
    stride: Size = None,
    padding: Size = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> nn.Module:
    return nn.AvgPool2d(kernel_size, stride or None, padding, ceil_mode, count_include_pad, divisor_override)


def _adaptive_avg_pool2d(input: Any, output_size: Size) -> nn.Module:
    return nn.AdaptiveAvgPool2d(output_size)


def _adaptive_max_pool2d(input: Any, output_size: Size, return_indices: bool = False) -> nn.Module:
    return nn.AdaptiveMaxPool2d(output_size, return_indices)


_POOL_MODULES: dict[str, Callable[..., nn.Module]] = {
    pg.MAX_POOL: _max_pool2d,
    pg.AVG_POOL: _avg_pool2d,
    pg.ADAPTIVE_AVG_POOL: _adaptive_avg_pool2d,
    pg.ADAPTIVE_MAX_POOL: _adaptive_max_pool2d,
}


def _call(node: fx.Node, sem: _Semantics, env: dict[fx.Node, Any], graph: pg.PathGraph) -> Any:
    if node.op == "call_module":
        x = env.get(node.args[0]) if node.args and isinstance(node.args[0], fx.Node) else None
        if not isinstance(x, _Scaled):
            raise UnsupportedModelError(f"{node.target} is called on a non-tensor")
        return sem.module(graph.modules[str(node.target)], x)
    args, kwargs = node_args(node, env)
    kind = graph.kinds[node]
    if kind == pg.META:  # size arithmetic: on Python values and activations' shapes
        plain_args, plain_kwargs = _unwrapped(args), _unwrapped(kwargs)
        if node.op == "call_method":
            return getattr(plain_args[0], str(node.target))(*plain_args[1:], **plain_kwargs)
        return node.target(*plain_args, **plain_kwargs)  # type: ignore[operator]
    if kind == pg.INDEX:
        return _index(node, args, kwargs)
    if kind in (pg.RELU, pg.DROPOUT, pg.NEG):
        return sem.relu(args[0]) if kind == pg.RELU else args[0]
    if kind == pg.CAT:
        parts = args[0] if args else kwargs.pop("tensors")
        if not all(isinstance(p, _Scaled) for p in parts):
            raise UnsupportedModelError(f"{node.name} in {pg.where(node)}: concatenating activations with constants")
        return sem.cat(node.target, list(parts), *args[1:], **kwargs)  # type: ignore[arg-type]
    if kind in (pg.ADD, pg.SUB):
        return _sum(sem, node, args, kwargs, graph)
    if kind in (pg.MUL, pg.DIV):
        return _product(sem, node, args, kind)
    x = args[0]
    if not isinstance(x, _Scaled):
        raise UnsupportedModelError(f"{node.name} in {pg.where(node)}: {kind} of a non-activation")
    if kind in pg.REDUCTIONS:
        dims, keepdim = _reduced_dims(node, x, args, kwargs)
        return sem.reduce(kind, x, dims, keepdim)
    if kind in _POOL_MODULES:
        module = _POOL_MODULES[kind](*args, **kwargs)
        if getattr(module, "return_indices", False):
            raise UnsupportedModelError(f"{node.name} in {pg.where(node)}: {kind}(return_indices=True)")
        return sem.module(module, x)
    raise UnsupportedModelError(f"{node.name}: {node.target} is not supported")


# Modules whose output is a new tensor (not their input, nor a view of it).
_FRESH_MODULES = (
    nn.Conv2d,
    nn.Linear,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
)


def _disposable(arg: Any, graph: pg.PathGraph) -> bool:
    """Whether ``arg``'s value is a tensor of its own read by one node only (safe to overwrite)."""
    if not isinstance(arg, fx.Node) or len(arg.users) != 1:
        return False
    if arg.op == "call_module":
        return isinstance(graph.modules[str(arg.target)], _FRESH_MODULES)
    return graph.kinds.get(arg) in (pg.ADD, pg.SUB)  # sums always return a tensor of their own


def _device_of(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _last_uses(graph: pg.PathGraph) -> dict[fx.Node, list[fx.Node]]:
    """For each node, the earlier nodes whose value it is the last to read (computed once per
    trace): the walk drops them there, so activations are freed as in a forward pass and their
    memory is reused while still in cache, instead of fresh pages for every activation."""
    if "last uses" not in graph.buffers:
        last: dict[fx.Node, fx.Node] = {}
        for node in graph.nodes():
            for read in node.all_input_nodes:
                last[read] = node
        freed: dict[fx.Node, list[fx.Node]] = {}
        for read, reader in last.items():
            freed.setdefault(reader, []).append(read)
        graph.buffers["last uses"] = freed
    return graph.buffers["last uses"]


def _walk(graph: pg.PathGraph, sem: _Semantics, x: _Scaled) -> float:
    env: dict[fx.Node, Any] = {}
    freed = _last_uses(graph)
    inputs = 0
    for node in graph.nodes():
        if node.op == "placeholder":
            if inputs == 0:
                env[node] = x
            elif node.args:
                env[node] = node.args[0]  # optional argument left at its default
            else:
                raise UnsupportedModelError(f"forward takes a second required input {node.name!r}")
            inputs += 1
        elif node.op == "output":
            out = env[node.args[0]] if isinstance(node.args[0], fx.Node) else None
            if not isinstance(out, _Scaled):
                raise UnsupportedModelError("the model must return a single tensor")
            return sem.finish(out)
        else:
            env[node] = _call(node, sem, env, graph)
            for read in freed.get(node, ()):
                del env[read]
    raise UnsupportedModelError("the traced graph has no output")


def _check_q(q: float) -> float:
    q = float(q)
    if not (q >= 0 and math.isfinite(q)):
        raise ValueError(f"path-norm exponent q must be a finite number >= 0, got {q}")
    return q


def _check_weights(model: nn.Module) -> None:
    """Non-finite weights or statistics: :class:`~sparselab.divergence.DivergenceError` naming the
    first such tensor (checked only once a walk has failed: the usual path reads no extra tensor)."""
    net = pg.unwrap(model)
    check_finite(net.state_dict().items(), f"path-norm of {type(net).__name__}", "the path-norm is undefined")


def path_norms(
    model: nn.Module,
    qs: Iterable[float] = DEFAULT_QS,
    input_shape: Sequence[int] = (3, 224, 224),
    convention: str = "exact",
    dtype: torch.dtype = torch.float32,
) -> list[PathNorm]:
    """L^q path-norms of ``model`` for every q in ``qs`` (one trace, one pass per q).

    ``input_shape`` excludes the batch dimension; it fixes the spatial sizes and so the number of
    paths (K of the average pool, for instance). ``dtype`` is the arithmetic of the exact
    convention (float32 agrees with float64 to about 1e-7 relative, see bench/pathnorm.py).
    Non-finite weights raise :class:`~sparselab.divergence.DivergenceError` (exact convention).
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown path-norm convention {convention!r}; choose one of {CONVENTIONS}")
    if dtype not in _LIMITS:
        raise ValueError(f"path-norm dtype must be torch.float32 or torch.float64, got {dtype}")
    qs = [_check_q(q) for q in qs]
    graph = pg.trace(model)
    device = _device_of(pg.unwrap(model))
    results = []
    # CPU: subnormal values count as 0 (see _Exact.power); the original convention keeps them
    flush = flush_denormals() if convention == "exact" and device.type == "cpu" else contextlib.nullcontext(False)
    with torch.no_grad(), flush as flushing:
        folded: dict[torch.dtype, _Folded] = {}
        for q in qs:
            if convention == "exact":
                # path counts (q = 0) are integers far beyond float32's 24 bits: count in float64
                work = torch.float64 if q == 0 else dtype
                if work not in folded:
                    folded[work] = _Folded(graph, work, device)
                cut = device.type == "cpu" and not flushing
                sem: _Semantics = _Exact(q, folded[work], cut=cut)
            else:
                sem = _Gbrg24(q, dtype)
            x = _Scaled(torch.ones((1, *input_shape), dtype=sem.dtype, device=device))
            try:
                log10 = _walk(graph, sem, x)
            except FloatingPointError:
                if convention != "exact":
                    raise
                _check_weights(model)  # non-finite weights or statistics: DivergenceError naming them
                # else a sampled weight maximum was too low (see _Exact._affine): exact maxima
                sem = _Exact(q, folded[work], cut=cut, safe=True)
                log10 = _walk(graph, sem, _Scaled(torch.ones((1, *input_shape), dtype=sem.dtype, device=device)))
            results.append(PathNorm(q, log10, convention))
    return results


def path_norm(
    model: nn.Module,
    q: float = 1.0,
    input_shape: Sequence[int] = (3, 224, 224),
    convention: str = "exact",
    dtype: torch.dtype = torch.float32,
) -> float:
    """The L^q path-norm of ``model`` (q = 0: the number of paths with non-zero weights).

    Returns ``inf`` only when the value itself exceeds the float range; use :func:`path_norms`
    for the log10 value, which is always exact.
    """
    return path_norms(model, [q], input_shape, convention, dtype)[0].value
