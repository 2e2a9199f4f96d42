"""Gradual ("compressed sparse") magnitude pruning of the DSR paper's baseline (Zhu & Gupta), and the
AC/DC repo's GMP ramp that the transfer study's upstreams use.

Pure logic, no training loop: when the prune events happen, how sparse each layer is after
``j`` events (exponential or cubic schedule), what fraction of the *active* weights event ``j``
removes, the per-layer prune event itself, and the MNIST output-layer rule. Reference: dsr.md
§2.6 and §9 item 11. The AC/DC repo's polynomial ramp (:func:`ramp_steps`, :func:`ramp_sparsity`)
has its own clock and levels; see there.

Conventions shared by every function here:

* ``n`` is the number of prune events (``--prune-iterations``); events are numbered
  ``j = 1 … n`` and ``j = 0`` is the dense starting point, so ``sparsity_after(0, …) == 0`` and
  ``sparsity_after(n, …) == target``.
* Epochs are 0-based; an event happens *after* training epoch ``e``.
* Pruning is **per layer** (no global ranking): each layer reaches its own target.

The schedules describe the *intended* sparsity; the reference removes ``int(p·M)+1`` entries per
event, so the realised sparsity runs slightly ahead of the schedule (by up to one entry per event
per layer). That "+1" is part of the protocol and is reproduced by :func:`prune_event`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch

from ..sparsity.magnitude import _keep_largest
from ..sparsity.mask import Mask

Schedule = Literal["cubic", "exponential"]
SCHEDULES: tuple[str, ...] = ("cubic", "exponential")


# ---------------------------------------------------------------------------------- validation
def _check_target(target: float) -> None:
    if not 0.0 <= target < 1.0:
        raise ValueError(f"target sparsity {target} must be in [0, 1): a layer cannot lose every weight")


def _check_n(n: int) -> None:
    if int(n) != n or n < 1:
        raise ValueError(f"number of prune events n={n} must be an integer >= 1")


def _check_schedule(schedule: str) -> None:
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown prune schedule {schedule!r}; use one of {SCHEDULES}")


# ---------------------------------------------------------------------------------- clock
def _check_clock(start: int, freq: int, iterations: int) -> None:
    if int(start) != start or start < 0:
        raise ValueError(f"prune start epoch {start} must be an integer >= 0")
    if int(freq) != freq or freq < 1:
        raise ValueError(f"prune frequency {freq} must be an integer >= 1 (epochs between events)")
    _check_n(iterations)


def event_epochs(start: int, freq: int, iterations: int) -> list[int]:
    """The 0-based epochs after which a prune event happens, in order.

    The reference prunes after epoch ``e`` if ``e >= start``, ``(e - start) % freq == 0`` and fewer
    than ``iterations`` events happened so far, i.e. after ``start, start+freq, …`` (``iterations``
    of them). With the yaml (start 0, freq 2, 20 iterations): 0, 2, …, 38.
    """
    _check_clock(start, freq, iterations)
    return [start + freq * i for i in range(iterations)]


def is_event_epoch(epoch: int, start: int, freq: int, iterations: int) -> bool:
    """Whether a prune event follows training epoch ``epoch`` (the reference's per-epoch test)."""
    _check_clock(start, freq, iterations)
    return epoch >= start and (epoch - start) % freq == 0 and (epoch - start) // freq < iterations


def total_epochs(start: int, freq: int, iterations: int, post_epochs: int) -> int:
    """Length of a gradual-pruning run: ``start + freq·(iterations − 1) + post_epochs``.

    This is the reference's formula, checked against both published setups: WRN/ImageNet
    (0, 2, 20, 10) → 48 epochs with events after 0…38; MNIST (1, 2, 10, 20) → 39. Note that with
    0-based epochs the last event follows epoch ``start + freq·(iterations − 1)``, so only
    ``post_epochs − 1`` whole epochs are trained after it (39…47 in the 48-epoch run); we keep the
    reference's count rather than "fixing" it, so budgets match the paper.
    """
    _check_clock(start, freq, iterations)
    if int(post_epochs) != post_epochs or post_epochs < 1:
        raise ValueError(f"post-prune epochs {post_epochs} must be an integer >= 1")
    return start + freq * (iterations - 1) + post_epochs


# ---------------------------------------------------------------------------------- schedules
def sparsity_after(j: int, n: int, target: float, schedule: Schedule) -> float:
    """Intended sparsity of a layer after ``j`` of ``n`` events (``j = 0`` is dense).

    exponential: ``1 − (1 − s_f)^(j/n)`` (a constant fraction of the survivors each event);
    cubic (Zhu & Gupta with ``s_i = 0``): ``s_f·(1 − (1 − j/n)³)`` (prunes fast early, slow late).
    """
    _check_target(target)
    _check_n(n)
    _check_schedule(schedule)
    if int(j) != j or not 0 <= j <= n:
        raise ValueError(f"event index j={j} must be an integer in [0, n={n}]")
    if schedule == "exponential":
        return 1.0 - (1.0 - target) ** (j / n)
    return target * (1.0 - (1.0 - j / n) ** 3)


def event_fraction(j: int, n: int, target: float, schedule: Schedule) -> float:
    """Fraction of the currently *active* weights that event ``j`` (1-based) removes.

    Chosen so that compounding events 1…j gives exactly ``sparsity_after(j)``: with the density
    ``d_j = 1 − sparsity_after(j)``, event ``j`` keeps ``d_j / d_{j−1}`` of the survivors, so
    ``p_j = 1 − d_j / d_{j−1}``. For the exponential schedule this is the constant
    ``1 − (1 − s_f)^(1/n)``. For cubic the share of the *dense* count removed per event falls
    monotonically, but this share of the survivors first rises, then falls towards 0 (n = 20,
    s_f = 0.9: 0.128 at j = 1, 0.152 at j = 8, 0.001 at j = 20). dsr.md writes the cubic case
    0-based as ``1 − d_{j+1}/d_j``; that is this fraction for the 1-based event ``j+1``.
    """
    _check_n(n)
    if int(j) != j or not 1 <= j <= n:
        raise ValueError(f"event index j={j} must be an integer in [1, n={n}] (events are 1-based)")
    if schedule == "exponential":
        _check_target(target)
        return 1.0 - (1.0 - target) ** (1.0 / n)
    d_prev = 1.0 - sparsity_after(j - 1, n, target, schedule)
    d_now = 1.0 - sparsity_after(j, n, target, schedule)
    return 1.0 - d_now / d_prev  # d_prev >= 1 - target > 0


def event_fractions(j: int, n: int, targets: Mapping[str, float], schedule: Schedule) -> dict[str, float]:
    """:func:`event_fraction` for every layer's own final target (conv/fc targets, MNIST rule)."""
    return {name: event_fraction(j, n, t, schedule) for name, t in targets.items()}


# ---------------------------------------------------------------------------------- AC/DC's GMP ramp
# IST-DASLab/ACDC: policies/manager.py prunes in on_epoch_begin of the 0-based epochs
# range(start, end, freq), before their training; policies/pruners.py GradualPruner gives each step
# the level of _polynomial_schedule. Unlike the DSR clock above, ``epoch`` here counts the epochs
# trained before the step (a step "at epoch e" follows 0-based epoch e - 1).
def _check_ramp_clock(start: int, freq: int, end: int) -> None:
    if int(start) != start or start < 0:
        raise ValueError(f"ramp start {start} must be an integer >= 0 (epochs trained before the first step)")
    if int(freq) != freq or freq < 1:
        raise ValueError(f"ramp frequency {freq} must be an integer >= 1 (epochs between steps)")
    if int(end) != end or end <= start:
        raise ValueError(f"ramp end {end} must be an integer after its start {start}")


def ramp_steps(start: int, freq: int, end: int, *, final_step: bool) -> list[int]:
    """The epochs (counted as epochs trained so far) before which a pruning step happens.

    The original's ``range(start, end, freq)``: ``end`` itself is never a step there, so the ramp
    stops short of its target (``[1, 5, 40]``: steps 1, 6, …, 36, at progress 35/39).
    ``final_step`` adds Zhu & Gupta's last step at ``end`` (progress 1: the target exactly).
    """
    _check_ramp_clock(start, freq, end)
    return list(range(start, end, freq)) + ([end] if final_step else [])


def ramp_sparsity(epoch: int, target: float, *, start: int, end: int, initial_sparsity: float, degree: float) -> float:
    """The level of the step at ``epoch``: ``s_f − (s_f − s_i)·(1 − min(1, (epoch − start)/(end − start)))^degree``.

    This is the original's ``_polynomial_schedule`` (``s_i`` = ``initial_sparsity``; degree 3:
    Zhu & Gupta's cubic). Each level is the sparsity of all pruned tensors together (one global
    threshold) or of each layer (per-layer targets), not a fraction of the survivors.
    """
    _check_target(target)
    _check_ramp_clock(start, 1, end)
    if epoch < start:
        raise ValueError(f"epoch {epoch} is before the ramp's start {start}")
    if not 0.0 <= initial_sparsity <= target:
        raise ValueError(f"initial_sparsity {initial_sparsity} must be in [0, target {target}]: the ramp only prunes")
    if not degree > 0:
        raise ValueError(f"ramp degree {degree} must be > 0")
    progress = min((epoch - start) / (end - start), 1.0)
    return target - (target - initial_sparsity) * (1.0 - progress) ** degree


# ---------------------------------------------------------------------------------- the event
def n_to_prune(fraction: float, active: int) -> int:
    """Entries one event removes from a layer with ``active`` survivors: ``int(p·M) + 1``.

    The ``+1`` is the reference's (at least one entry always goes); the count is capped at
    ``M − 1`` so a layer is never emptied (a layer with one survivor keeps it).
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"prune fraction {fraction} must be in [0, 1]")
    if active < 0:
        raise ValueError(f"active count {active} must be >= 0")
    return max(0, min(int(fraction * active) + 1, active - 1))


@torch.no_grad()
def prune_event(weights: Mapping[str, torch.Tensor], mask: Mask, fraction_by_name: Mapping[str, float]) -> Mask:
    """One prune event: per layer, drop the ``int(p·M_l)+1`` smallest-|w| *active* entries.

    Ranking is within each layer only (a layer of huge weights still loses its share). Entries
    already masked out stay out whatever their stored value (inactive values need not be zero, and
    must not be "re-activated" by a large |w|). Ties go to the lower flat index (stable sort), so
    the result is deterministic. Layers of ``mask`` absent from ``fraction_by_name`` are copied
    unchanged; a fraction for a layer the mask does not hold is an error, not a silent skip.
    """
    unknown = [name for name in fraction_by_name if name not in mask]
    if unknown:
        raise KeyError(f"prune fractions given for layers not in the mask: {sorted(unknown)}")
    out: dict[str, torch.Tensor] = {}
    for name, m in mask.items():
        if name not in fraction_by_name:
            out[name] = m.clone()
            continue
        if name not in weights:
            raise KeyError(f"no weight tensor for masked layer {name!r}")
        w = weights[name]
        if w.shape != m.shape:
            raise ValueError(f"{name}: weight {tuple(w.shape)} vs mask {tuple(m.shape)}")
        active_flat = m.flatten().cpu()
        active = int(active_flat.sum())
        k = n_to_prune(float(fraction_by_name[name]), active)
        # Inactive entries score -1 (< any |w|), so they fill the first (numel - active) slots of
        # the ascending order and the next k are the smallest active ones: magnitude.py's helper.
        scores = w.detach().abs().float().flatten().cpu()
        scores = torch.where(active_flat, scores, torch.full_like(scores, -1.0))
        keep = _keep_largest(scores, (m.numel() - active) + k)
        out[name] = (keep & active_flat).view(m.shape).to(m.device)
    return Mask(out)


# ---------------------------------------------------------------------------------- MNIST rule
def per_layer_targets(
    sizes: Mapping[str, int], target: float, output_layer: str | None, output_cap: float = 0.9
) -> dict[str, float]:
    """Final sparsity of every layer so that the size-weighted total equals ``target``.

    Without an output layer, or when ``target <= output_cap``, every layer gets ``target``. Above
    the cap (the reference's MNIST rule: fc target > 0.9), the output layer is pruned only to
    ``output_cap`` (LeNet's 10×100 layer keeps 100 weights) and the other layers share the rest of
    the pruned budget, ``(target·N − cap·N_out) / (N − N_out)``, so the total still matches.
    Exact in real numbers; realised counts differ only by the per-layer rounding.
    """
    _check_target(target)
    if not 0.0 <= output_cap < 1.0:
        raise ValueError(f"output cap {output_cap} must be in [0, 1)")
    if not sizes:
        raise ValueError("no layers given")
    bad = {n: s for n, s in sizes.items() if int(s) != s or s < 1}
    if bad:
        raise ValueError(f"layer sizes must be positive integers: {bad}")
    if output_layer is not None and output_layer not in sizes:
        raise KeyError(f"output layer {output_layer!r} is not among the layers {sorted(sizes)}")
    if output_layer is None or target <= output_cap:
        return {name: target for name in sizes}
    n_out = sizes[output_layer]
    n_rest = sum(sizes.values()) - n_out
    if n_rest == 0:
        raise ValueError(f"cannot cap the output layer {output_layer!r}: it is the only layer")
    rest = (target * (n_rest + n_out) - output_cap * n_out) / n_rest
    if rest >= 1.0:
        raise ValueError(
            f"target {target} with the output layer capped at {output_cap} needs sparsity {rest:.6f} "
            "in the other layers; it must stay below 1"
        )
    return {name: (output_cap if name == output_layer else rest) for name in sizes}
