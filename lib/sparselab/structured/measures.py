"""Per-filter importance of every conv layer: the eleven measures of Lubana & Dick (ICLR 2021).

One score per output filter of every ``nn.Conv2d`` (stem, block convs, 1x1 projection shortcuts,
depthwise convs), with the formulas, signs and data conventions of the gradflow notes (§2.2-2.4).
``w`` is a filter's weight flattened, ``g`` the matching gradient slice, ``γ, β`` the affine
parameters of the BatchNorm that normalises the filter's output channel:

* ``mag_based``: ``sqrt(Σ w_i²)``; ``l1``: ``Σ |w_i|``; ``bn``: ``|γ|`` (no data);
* ``loss_based``: ``Σ |w_i ḡ_i|`` (abs inside the sum); ``tfo``: ``|Σ w_i ḡ_i|`` (abs of the sum);
* ``biased_loss``: ``Σ w_i² |ḡ_i|``, or ``Σ |w_i − w⁰_i|·|w_i ḡ_i|`` with ``use_init``;
* ``fisher``: ``Σ w_i² ḡ²_i``; ``nvidia``: ``γ² ḡ²_γ + β² ḡ²_β`` (ḡ, ḡ² with logits / T, T = 5);
* ``grasp``: ``Σ w_i (Hḡ)_i``, signed, on a class-balanced sample with logits / 200;
  ``grad_preserve``: ``|Σ w_i (Hḡ)_i|`` with logits / 1;
* ``biased_loss_tracked``: exponential average of ``Σ w_i² |g_i|`` over training steps (:class:`ImportanceTracker`).

ḡ is the gradient of the mean cross-entropy over all of ``data`` (batch-size-weighted mean of
minibatch-mean gradients); ḡ² is the batch-size-weighted mean of *squared minibatch-mean* gradients
(not of per-sample squares). Both are taken in eval mode (BN running statistics), like the reference
code, and leave the model's parameters, buffers, ``.grad`` fields and train/eval flags as they were.
Smaller scores are less important; ``grasp`` prunes the most negative first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

MEASURES: tuple[str, ...] = (
    "mag_based",
    "l1",
    "bn",
    "loss_based",
    "biased_loss",
    "tfo",
    "fisher",
    "nvidia",
    "grasp",
    "grad_preserve",
    "biased_loss_tracked",
)

_SQUARED_GRAD = frozenset({"fisher", "nvidia"})
_HESSIAN = frozenset({"grasp", "grad_preserve"})

# Modules and functions a conv's output may pass through before reaching its BN (VGG: conv->ReLU->BN).
_PASS_MODULES: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6, nn.Identity)
_PASS_FUNCTIONS = frozenset({F.relu, F.relu6, torch.relu, torch.relu_})
_PASS_METHODS = frozenset({"relu", "relu_"})

Batch = tuple[Tensor, Tensor]
InitWeights = Mapping[str, Tensor] | nn.Module


# ------------------------------------------------------------------ layers
def conv_layers(model: nn.Module) -> dict[str, nn.Conv2d]:
    """Every ``nn.Conv2d`` of ``model`` by module name, in model (registration) order: the prunable layers."""
    convs = {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    if not convs:
        raise ValueError(f"{type(model).__name__} has no nn.Conv2d: nothing to score")
    return convs


def conv_bn_pairs(model: nn.Module) -> dict[str, nn.BatchNorm2d | None]:
    """The BatchNorm2d that consumes each conv's output (directly or through a ReLU), found by tracing.

    Tracing the forward pass, rather than trusting parameter order as the reference code does, keeps the
    pairing right for any registration order (ResNet shortcuts, conv->ReLU->BN). ``None`` marks a conv
    whose output reaches no BN, or more than one.
    """
    convs = conv_layers(model)
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as exc:  # noqa: BLE001 - any tracing failure means the same to the caller
        raise ValueError(
            f"cannot trace {type(model).__name__} with torch.fx to find the BatchNorm of each conv: {exc}"
        ) from exc
    modules = dict(model.named_modules())
    found: dict[str, set[str]] = {name: set() for name in convs}
    for node in graph.nodes:
        if node.op == "call_module" and node.target in found:
            found[node.target] |= _bns_fed_by(node, modules)
    return {name: _only(bns, modules) for name, bns in found.items()}


def _only(bns: set[str], modules: Mapping[str, nn.Module]) -> nn.BatchNorm2d | None:
    return modules[next(iter(bns))] if len(bns) == 1 else None  # type: ignore[return-value]


def _bns_fed_by(node: fx.Node, modules: Mapping[str, nn.Module]) -> set[str]:
    """Names of the BatchNorm2d modules reached from ``node`` through pass-through nodes only."""
    bns: set[str] = set()
    frontier = list(node.users)
    while frontier:
        user = frontier.pop()
        if user.op == "call_module" and isinstance(modules.get(user.target), nn.BatchNorm2d):  # type: ignore[arg-type]
            bns.add(user.target)  # type: ignore[arg-type]
        elif _passes_through(user, modules):
            frontier.extend(user.users)
    return bns


def _passes_through(node: fx.Node, modules: Mapping[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules.get(node.target), _PASS_MODULES)  # type: ignore[arg-type]
    if node.op == "call_function":
        return node.target in _PASS_FUNCTIONS
    return node.op == "call_method" and node.target in _PASS_METHODS


def _require_bns(model: nn.Module, convs: Mapping[str, nn.Conv2d], measure: str) -> dict[str, nn.BatchNorm2d]:
    """The BN of every conv, or a ValueError naming the first conv without one (BN-based measures)."""
    pairs = conv_bn_pairs(model)
    for name, conv in convs.items():
        bn = pairs[name]
        if bn is None:
            raise ValueError(
                f"measure {measure!r} needs the BatchNorm2d of every conv, but the output of conv {name!r} "
                f"reaches no BatchNorm2d (or more than one) in the traced forward pass"
            )
        if bn.weight is None or bn.bias is None or bn.num_features != conv.out_channels:
            raise ValueError(
                f"conv {name!r} ({conv.out_channels} filters) is followed by a BatchNorm2d with "
                f"{bn.num_features} features and affine={bn.affine}; measure {measure!r} needs an affine BN "
                f"of the same width"
            )
    return pairs  # type: ignore[return-value]


def _init_weights(use_init: InitWeights, convs: Mapping[str, nn.Conv2d]) -> dict[str, Tensor]:
    """``w⁰`` of every conv from a state dict or a model, checked against the current shapes."""
    state = use_init.state_dict() if isinstance(use_init, nn.Module) else use_init
    init: dict[str, Tensor] = {}
    for name, conv in convs.items():
        key = f"{name}.weight"
        if key not in state:
            raise ValueError(f"use_init has no {key!r}; it must hold the initial weights of every conv")
        w0 = state[key]
        if tuple(w0.shape) != tuple(conv.weight.shape):
            raise ValueError(
                f"use_init[{key!r}] has shape {tuple(w0.shape)}, the model's conv {tuple(conv.weight.shape)}; "
                f"prune the initial weights in lockstep with the model"
            )
        init[name] = w0.detach().to(device=conv.weight.device, dtype=conv.weight.dtype)
    return init


def _rows(t: Tensor) -> Tensor:
    """One row per output filter."""
    return t.reshape(t.shape[0], -1)


def num_classes_of(model: nn.Module) -> int:
    """``out_features`` of the model's last ``nn.Linear`` (the classifier)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear to infer the class count from; pass num_classes")
    return linears[-1].out_features


# ------------------------------------------------------------------ data and gradients
@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (BN running statistics) for the estimate; every module's own flag restored afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in flags:
            m.training = training


def _batches(data: Iterable[Any]) -> Iterator[Batch]:
    for item in data:
        yield item[0], item[1]


def _on(x: Tensor, y: Tensor, ref: Tensor) -> Batch:
    """Inputs and targets on the model's device; floating inputs in the model's dtype."""
    x = x.to(device=ref.device, dtype=ref.dtype) if x.is_floating_point() else x.to(ref.device)
    return x, y.to(ref.device)


def _loss(model: nn.Module, x: Tensor, y: Tensor, temperature: float) -> Tensor:
    return F.cross_entropy(model(x) / temperature, y)


def _gradient_moment(
    model: nn.Module, params: Sequence[Tensor], data: Iterable[Any], temperature: float, squared: bool
) -> list[Tensor]:
    """Batch-size-weighted mean over all of ``data`` of the minibatch-mean gradient (or of its square)."""
    total = [torch.zeros_like(p) for p in params]
    seen = 0
    for x, y in _batches(data):
        x, y = _on(x, y, params[0])
        grads = torch.autograd.grad(_loss(model, x, y, temperature), params, materialize_grads=True)
        n = int(y.shape[0])
        for acc, g in zip(total, grads):
            acc.add_(g.square() if squared else g, alpha=n)
        seen += n
    if seen == 0:
        raise ValueError("data yielded no samples; gradient-based measures need (inputs, targets) minibatches")
    return [acc / seen for acc in total]


def _class_balanced(data: Iterable[Any], num_classes: int, per_class: int) -> list[Batch]:
    """The first ``per_class`` samples of each class in reading order, one batch per class (§2.3)."""
    if per_class < 1:
        raise ValueError(f"class-balanced sample of {per_class} per class for {num_classes} classes: need more data")
    kept: list[list[Tensor]] = [[] for _ in range(num_classes)]
    for x, y in _batches(data):
        for i, label in enumerate(y.tolist()):
            if not 0 <= label < num_classes:
                raise ValueError(f"target {label} is outside 0..{num_classes - 1}; pass the right num_classes")
            if len(kept[label]) < per_class:
                kept[label].append(x[i])
        if all(len(k) == per_class for k in kept):
            break
    short = {c: len(k) for c, k in enumerate(kept) if len(k) < per_class}
    if short:
        raise ValueError(
            f"the class-balanced GraSP sample needs {per_class} samples of each of the {num_classes} classes, but "
            f"data held only {short} (class: count); pass more data (e.g. the whole training loader) and the "
            f"sample size as grasp_samples"
        )
    return [(torch.stack(k), torch.full((per_class,), c, dtype=torch.long)) for c, k in enumerate(kept)]


def _hessian_gradient(
    model: nn.Module, weights: Sequence[Tensor], batches: Sequence[Batch], temperature: float
) -> list[Tensor]:
    """``Hḡ`` at ``weights``: ḡ = class mean of per-class gradients over ALL trainable parameters,
    then the class mean of ``∇(∇CE_c · stopgrad(ḡ))`` (double back-prop), as in the reference code."""
    params = [p for p in model.parameters() if p.requires_grad]
    k = len(batches)
    g_bar = [torch.zeros_like(p) for p in params]
    for x, y in batches:
        x, y = _on(x, y, params[0])
        for acc, g in zip(g_bar, torch.autograd.grad(_loss(model, x, y, temperature), params, materialize_grads=True)):
            acc.add_(g, alpha=1.0 / k)
    hg = [torch.zeros_like(w) for w in weights]
    for x, y in batches:
        x, y = _on(x, y, params[0])
        grads = torch.autograd.grad(_loss(model, x, y, temperature), params, create_graph=True, allow_unused=True)
        dot = sum((g * gb).sum() for g, gb in zip(grads, g_bar) if g is not None)
        if not isinstance(dot, torch.Tensor):
            raise ValueError("GraSP: no trainable parameter reaches the loss")
        for acc, h in zip(hg, torch.autograd.grad(dot, weights, materialize_grads=True)):
            acc.add_(h.detach(), alpha=1.0 / k)
    return hg


def _grasp_sample(data: Iterable[Any], num_classes: int, grasp_samples: int | None) -> list[Batch]:
    """Per-class batches of ``int(N / K)`` samples; N = ``grasp_samples`` or, by default, all of ``data``."""
    if grasp_samples is None:
        batches = list(_batches(data))
        grasp_samples = sum(int(y.shape[0]) for _, y in batches)
        data = batches
    return _class_balanced(data, num_classes, int(grasp_samples / num_classes))


# ------------------------------------------------------------------ the measures
def _check_options(measure: str, use_init: InitWeights | None, use_l2: bool, tracker: ImportanceTracker | None) -> None:
    """Reject unknown measures and options that would silently have no effect."""
    if measure not in MEASURES:
        raise ValueError(f"unknown importance measure {measure!r}; choose one of: {', '.join(MEASURES)}")
    if tracker is not None and measure != "biased_loss_tracked":
        raise ValueError(f"tracker is only used by 'biased_loss_tracked', not by {measure!r}")
    if measure == "biased_loss_tracked":
        if use_init is not None:
            raise ValueError("for 'biased_loss_tracked' give use_init to the ImportanceTracker, not to importance()")
        return
    if use_l2 and measure != "loss_based":
        raise ValueError(
            f"use_l2 needs a per-parameter importance |w_i ḡ_i| (measures 'loss_based' and 'biased_loss_tracked'), "
            f"not {measure!r}"
        )
    if use_init is not None and not (measure == "biased_loss" or use_l2):
        raise ValueError(f"use_init only affects 'biased_loss' and use_l2, not {measure!r}")


def _first_order(measure: str, w: Tensor, g: Tensor, w0: Tensor | None, use_l2: bool) -> Tensor:
    """loss_based / biased_loss / tfo / fisher of each filter from its weight and ḡ (or ḡ²)."""
    w, g = _rows(w), _rows(g)
    if measure == "tfo":
        return (w * g).sum(dim=1).abs()
    if measure == "fisher":
        return (w.square() * g).sum(dim=1)
    per_param = (w * g).abs()
    if measure == "biased_loss" or use_l2:
        bias = w.abs() if w0 is None else (w - _rows(w0)).abs()
        return (bias * per_param).sum(dim=1)
    return per_param.sum(dim=1)


def importance(
    model: nn.Module,
    measure: str,
    data: Iterable[Any] | None,
    temperature: float = 5.0,
    *,
    grasp_temperature: float = 200.0,
    num_classes: int | None = None,
    use_init: InitWeights | None = None,
    use_l2: bool = False,
    grasp_samples: int | None = None,
    tracker: ImportanceTracker | None = None,
) -> dict[str, Tensor]:
    """Per-filter scores ``{conv name: float32 CPU tensor of length out_channels}`` in model order.

    ``data`` yields ``(inputs, targets)`` minibatches and is read in full by the first-order measures
    (the study passes 20 augmented batches of 128); it is ignored by ``mag_based``, ``l1`` and ``bn``.
    ``temperature`` divides the logits of the first-order measures (the training T, default 5);
    ``grasp_temperature`` those of ``grasp`` (200); ``grad_preserve`` always uses 1 (§2.3).
    GraSP's class-balanced sample keeps the first ``int(N / K)`` samples of each of the K classes
    (``num_classes``, default the last Linear's width), N = ``grasp_samples`` or by default every sample
    in ``data``; with ``grasp_samples`` set, reading stops once every class is full, so ``data`` may be a
    whole training loader. ``use_init`` (a state dict or model of initial weights) switches
    ``biased_loss`` to ``Σ |w_i − w⁰_i|·|w_i ḡ_i|``; ``use_l2`` turns ``loss_based``'s per-parameter
    ``|w_i ḡ_i|`` into ``Σ |w_i|·|w_i ḡ_i|`` (or with ``use_init`` ``Σ |w_i − w⁰_i|·|w_i ḡ_i|``), §2.4.
    ``biased_loss_tracked`` returns ``tracker.scores()`` of an :class:`ImportanceTracker` on ``model``.
    """
    _check_options(measure, use_init, use_l2, tracker)
    if measure == "biased_loss_tracked":
        if tracker is None:
            raise ValueError("'biased_loss_tracked' returns tracked scores: pass tracker=ImportanceTracker(model)")
        if tracker.model is not model:
            raise ValueError("the tracker was built on a different model")
        return tracker.scores()
    convs = conv_layers(model)
    if measure in ("mag_based", "l1"):
        scores = _magnitude(convs, measure)
    elif measure == "bn":
        scores = {n: bn.weight.abs() for n, bn in _require_bns(model, convs, measure).items()}
    else:
        if data is None:
            raise ValueError(f"measure {measure!r} needs data: an iterable of (inputs, targets) minibatches")
        _require_trainable(convs)
        with _eval_mode(model), torch.enable_grad():
            if measure == "nvidia":
                scores = _nvidia(model, convs, data, temperature)
            elif measure in _HESSIAN:
                k = num_classes if num_classes is not None else num_classes_of(model)
                t = 1.0 if measure == "grad_preserve" else grasp_temperature
                scores = _hessian_scores(model, convs, measure, _grasp_sample(data, k, grasp_samples), t)
            else:
                init = _init_weights(use_init, convs) if use_init is not None else {}
                scores = _first_order_scores(model, convs, measure, data, temperature, init, use_l2)
    return {name: s.detach().to(device="cpu", dtype=torch.float32) for name, s in scores.items()}


def _require_trainable(convs: Mapping[str, nn.Conv2d]) -> None:
    frozen = [name for name, conv in convs.items() if not conv.weight.requires_grad]
    if frozen:
        raise ValueError(f"gradient-based measures need conv weights with requires_grad; frozen: {frozen}")


def _magnitude(convs: Mapping[str, nn.Conv2d], measure: str) -> dict[str, Tensor]:
    """``mag_based`` (L2 norm) or ``l1`` of each filter's weights."""
    p = 2 if measure == "mag_based" else 1
    return {n: _rows(conv.weight).norm(p=p, dim=1) for n, conv in convs.items()}


def _nvidia(
    model: nn.Module, convs: Mapping[str, nn.Conv2d], data: Iterable[Any], temperature: float
) -> dict[str, Tensor]:
    """``γ² ḡ²_γ + β² ḡ²_β`` of the BN channel after each filter."""
    bns = _require_bns(model, convs, "nvidia")
    affine = [t for bn in bns.values() for t in (bn.weight, bn.bias)]
    sq = iter(_gradient_moment(model, affine, data, temperature, squared=True))
    return {n: bn.weight.square() * next(sq) + bn.bias.square() * next(sq) for n, bn in bns.items()}


def _hessian_scores(
    model: nn.Module, convs: Mapping[str, nn.Conv2d], measure: str, batches: Sequence[Batch], temperature: float
) -> dict[str, Tensor]:
    """``grasp`` (signed) or ``grad_preserve`` (absolute) ``Σ w_i (Hḡ)_i`` of each filter."""
    weights = [conv.weight for conv in convs.values()]
    hg = _hessian_gradient(model, weights, batches, temperature)
    signed = {n: (_rows(w) * _rows(h)).sum(dim=1) for n, w, h in zip(convs, weights, hg)}
    return signed if measure == "grasp" else {n: s.abs() for n, s in signed.items()}


def _first_order_scores(
    model: nn.Module,
    convs: Mapping[str, nn.Conv2d],
    measure: str,
    data: Iterable[Any],
    temperature: float,
    init: Mapping[str, Tensor],
    use_l2: bool,
) -> dict[str, Tensor]:
    """loss_based / biased_loss / tfo from ḡ, fisher from ḡ², of each filter."""
    weights = [conv.weight for conv in convs.values()]
    grads = _gradient_moment(model, weights, data, temperature, squared=measure in _SQUARED_GRAD)
    return {n: _first_order(measure, w, g, init.get(n), use_l2) for n, w, g in zip(convs, weights, grads)}


# ------------------------------------------------------------------ tracking (§2.4)
class ImportanceTracker:
    """Exponential average of ``Σ w_i² |g_i|`` (or ``Σ |w_i − w⁰_i|·|w_i g_i|``) over training steps.

    Call :meth:`update` right after ``optimizer.step()``: it multiplies the gradient left in ``.grad``
    (taken at the pre-step weights) with the post-step weights, as the reference's tracked measure does,
    and folds the score in as ``m ← α·new + (1 − α)·m`` (α weighs the NEW value), starting from zeros.
    Call :meth:`reset` after every pruning round (the reference restarts at zero with the new widths).
    ``use_init`` may be a model pruned in lockstep: its current weights are read at every update.
    """

    def __init__(self, model: nn.Module, alpha: float = 0.8, use_init: InitWeights | None = None) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
        self.model = model
        self.alpha = float(alpha)
        self.use_init = use_init
        self._scores: dict[str, Tensor] = {}
        self.reset()

    def reset(self) -> None:
        """Zeros of the model's current conv widths."""
        self._scores = {
            name: torch.zeros(conv.out_channels, device=conv.weight.device, dtype=conv.weight.dtype)
            for name, conv in conv_layers(self.model).items()
        }

    def update(self) -> None:
        """Fold in the score of the current weights and ``.grad`` of every conv."""
        convs = conv_layers(self.model)
        widths = {name: conv.out_channels for name, conv in convs.items()}
        if widths != {name: s.numel() for name, s in self._scores.items()}:
            raise ValueError("the model's convs changed since the tracker was reset; call reset() after pruning")
        init = _init_weights(self.use_init, convs) if self.use_init is not None else {}
        with torch.no_grad():
            for name, conv in convs.items():
                if conv.weight.grad is None:
                    raise ValueError(f"conv {name!r} has no .grad; call update() after backward() and optimizer.step()")
                w = conv.weight.detach()
                bias = w.abs() if name not in init else (w - init[name]).abs()
                new = _rows(bias * (w * conv.weight.grad).abs()).sum(dim=1)
                self._scores[name] = self.alpha * new + (1.0 - self.alpha) * self._scores[name]

    def scores(self) -> dict[str, Tensor]:
        """The current averages as float32 CPU copies, in model order."""
        return {name: s.detach().to(device="cpu", dtype=torch.float32).clone() for name, s in self._scores.items()}
