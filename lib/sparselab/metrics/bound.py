"""The architecture/data factor of the path-norm generalisation bound (Theorem 3.1, ICLR 2024).

The full bound multiplies this factor by the L1 path-norm of the trained network. Stdlib only (no
torch), so report and table jobs that only need these numbers stay light.
"""

from __future__ import annotations

import math
import numbers
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def _f32(x: float) -> float:
    """Round to the nearest float32 (returned as a Python float)."""
    return struct.unpack("f", struct.pack("f", x))[0]


def normalisation_sup_norm(
    mean: Sequence[float],
    std: Sequence[float],
    low: float = 0.0,
    high: float = 1.0,
    *,
    float32: bool = False,
) -> float:
    """B: the largest L-infinity norm of an input in [low, high] after ``(x - mean_c) / std_c``.

    Needs no data pass: the reference's ``get_B`` scans ImageNet, but its answer is a pixel at
    ``low`` or ``high`` in the worst channel. ``float32=True`` rounds the inputs and every step
    through float32, like ``Normalize`` on a float32 tensor, which reproduces the reference's
    B = 2.640000104904175 bit for bit (each step is computed in double and rounded once, which
    is exactly float32 arithmetic for subtraction and division).
    """
    if len(mean) != len(std) or not mean:
        raise ValueError(f"mean and std must be non-empty and of equal length, got {len(mean)} and {len(std)}")
    if any(not s > 0 for s in std):
        raise ValueError(f"std must be positive, got {list(std)}")
    if not low <= high:
        raise ValueError(f"need low <= high, got low={low}, high={high}")
    r = _f32 if float32 else float
    low, high = r(low), r(high)
    return max(r(max(abs(r(low - r(m))), abs(r(high - r(m)))) / r(s)) for m, s in zip(mean, std))


@dataclass(frozen=True)
class BoundConstants:
    """Constants of Theorem 3.1's first factor.

    B: sup (L-infinity) norm of the normalised inputs (see :func:`normalisation_sup_norm`).
    D: depth of the network (the reference uses the nominal ResNet depth, 18 ... 152).
    K: max-pool kernel size as the number of inputs of a pooling window (9 for 3x3).
    P: number of distinct kinds of max-pooling neurons (0 for none, 1 for ResNets).
    d_in: input dimension (224*224*3 = 150528 for ImageNet).
    d_out: output dimension (number of classes).
    n: number of training samples the bound is about.
    """

    B: float
    D: int
    K: int
    P: int
    d_in: int
    d_out: int
    n: int

    def __post_init__(self) -> None:
        if isinstance(self.B, bool) or not isinstance(self.B, numbers.Real) or not (0 < self.B < math.inf):
            raise ValueError(f"B must be a positive finite number, got {self.B!r}")
        object.__setattr__(self, "B", float(self.B))
        for name, minimum in (("D", 1), ("K", 1), ("P", 0), ("d_in", 1), ("d_out", 1), ("n", 1)):
            object.__setattr__(self, name, _checked_int(name, getattr(self, name), minimum))


def _checked_int(name: str, value: object, minimum: int) -> int:
    """``value`` as an int >= ``minimum``; ValueError naming the field otherwise (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def theorem31_first_part(c: BoundConstants) -> float:
    """4·B·C/sqrt(n), C = sqrt(D·ln((3+2P)·K) + ln((3+2P)/(1+P)·(d_in+1)·d_out)).

    Same operation order as the reference script, so its printed values come out bit for bit.
    """
    term_1 = c.D * math.log((3 + 2 * c.P) * c.K)
    term_2 = math.log((3 + 2 * c.P) / (1 + c.P) * (c.d_in + 1) * c.d_out)
    return math.sqrt(term_1 + term_2) * c.B * 4 / math.sqrt(c.n)


def theorem31_sharpened(c: BoundConstants, M: int = 1) -> float:
    """Remark 3.1's sharpening: 4·B·C'/sqrt(n), C' = sqrt(D·ln 3 + M·ln K + ln((d_in+1)·d_out)).

    M is the number of max-pooling layers met along a path (1 for ResNets, the reference's value).
    """
    M = _checked_int("M", M, 0)
    term_1 = c.D * math.log(3) + M * math.log(c.K)
    term_2 = math.log((c.d_in + 1) * c.d_out)
    return math.sqrt(term_1 + term_2) * c.B * 4 / math.sqrt(c.n)


def bound_table_rows(
    archs: Mapping[str, int], *, B: float, K: int, P: int, d_in: int, d_out: int, n: int
) -> list[dict]:
    """One row per architecture (name -> depth D), in mapping order: the constants, bound and sharpened."""
    rows = []
    for arch, depth in archs.items():
        c = BoundConstants(B=B, D=depth, K=K, P=P, d_in=d_in, d_out=d_out, n=n)
        rows.append(
            {
                "arch": arch,
                "D": c.D,
                "B": c.B,
                "K": c.K,
                "P": c.P,
                "d_in": c.d_in,
                "d_out": c.d_out,
                "n": c.n,
                "bound": theorem31_first_part(c),
                "sharpened": theorem31_sharpened(c),
            }
        )
    return rows
