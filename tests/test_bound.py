"""Theorem 3.1's first factor against the reference's printed Table 2 values and hand computations."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from sparselab.metrics.bound import (
    BoundConstants,
    bound_table_rows,
    normalisation_sup_norm,
    theorem31_first_part,
    theorem31_sharpened,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
B_REF = 2.640000104904175
N_REF = 1268355
IMAGENET = dict(B=B_REF, K=9, P=1, d_in=224 * 224 * 3, d_out=1000, n=N_REF)
# Printed by the reference script (compute_1st_part_bound_resnets.py --B 2.640000104904175).
TABLE_2 = {
    "resnet18": (18, 0.08809270689612651, 0.059894063776311394),
    "resnet34": (34, 0.11452172480017804, 0.07164311899280605),
    "resnet50": (50, 0.1359048413196843, 0.0817200961966754),
    "resnet101": (101, 0.18851756166452713, 0.10772305485320452),
    "resnet152": (152, 0.229363502366329, 0.128570365836841),
}


def test_reference_constants():
    assert int(0.99 * 1281167) == N_REF  # the 99% train split, not the full 1,281,167
    assert IMAGENET["d_in"] == 150528


def test_sup_norm_reproduces_reference_B_bit_exactly():
    assert normalisation_sup_norm(IMAGENET_MEAN, IMAGENET_STD, float32=True) == B_REF
    # In float64 it is the exact (1 - 0.406) / 0.225, a float32 rounding away from the reference.
    assert normalisation_sup_norm(IMAGENET_MEAN, IMAGENET_STD) == (1 - 0.406) / 0.225
    assert normalisation_sup_norm(IMAGENET_MEAN, IMAGENET_STD) == pytest.approx(B_REF, rel=1e-7)


def test_sup_norm_hand_cases():
    # The low end wins when the mean is close to high.
    assert normalisation_sup_norm([0.9], [0.5]) == pytest.approx(1.8)
    assert normalisation_sup_norm([0.5, 0.0], [0.25, 2.0]) == pytest.approx(2.0)
    assert normalisation_sup_norm([0.0], [1.0], low=-3.0, high=2.0) == 3.0
    with pytest.raises(ValueError, match="std"):
        normalisation_sup_norm([0.5], [0.0])
    with pytest.raises(ValueError, match="length"):
        normalisation_sup_norm([0.5, 0.5], [1.0])
    with pytest.raises(ValueError, match="low"):
        normalisation_sup_norm([0.5], [1.0], low=1.0, high=0.0)


@pytest.mark.parametrize("arch", list(TABLE_2))
def test_table_2_values(arch):
    depth, bound, sharpened = TABLE_2[arch]
    c = BoundConstants(D=depth, **IMAGENET)
    assert math.isclose(theorem31_first_part(c), bound, rel_tol=1e-12, abs_tol=0)
    assert math.isclose(theorem31_sharpened(c), sharpened, rel_tol=1e-12, abs_tol=0)
    assert theorem31_sharpened(c) == theorem31_sharpened(c, M=1)


def test_table_rows():
    rows = bound_table_rows({name: d for name, (d, _, _) in TABLE_2.items()}, **IMAGENET)
    assert [r["arch"] for r in rows] == list(TABLE_2)
    for row in rows:
        depth, bound, sharpened = TABLE_2[row["arch"]]
        assert set(row) == {"arch", "D", "B", "K", "P", "d_in", "d_out", "n", "bound", "sharpened"}
        assert (row["D"], row["B"], row["K"], row["P"], row["n"]) == (depth, B_REF, 9, 1, N_REF)
        assert math.isclose(row["bound"], bound, rel_tol=1e-12)
        assert math.isclose(row["sharpened"], sharpened, rel_tol=1e-12)
    with pytest.raises(ValueError, match="D"):
        bound_table_rows({"bad": 0}, **IMAGENET)


def test_small_case_by_hand():
    # P = 0, K = 1: C^2 = D ln 3 + ln(3 (d_in + 1) d_out) = 2 ln 3 + ln(3 * 2 * 1) = ln 54.
    c = BoundConstants(B=1.0, D=2, K=1, P=0, d_in=1, d_out=1, n=4)
    assert theorem31_first_part(c) == pytest.approx(4 * math.sqrt(math.log(54)) / 2, rel=1e-15)
    # C'^2 = 2 ln 3 + 1 ln 1 + ln 2 = ln 18; M only matters through ln K, which is 0 here.
    assert theorem31_sharpened(c) == pytest.approx(2 * math.sqrt(math.log(18)), rel=1e-15)
    assert theorem31_sharpened(c, M=5) == theorem31_sharpened(c)
    # P = 1, K = 4, M = 2: C^2 = D ln 20 + ln(5/2 * 3 * 2), C'^2 = D ln 3 + 2 ln 4 + ln 6.
    c = BoundConstants(B=0.5, D=3, K=4, P=1, d_in=2, d_out=2, n=9)
    assert theorem31_first_part(c) == pytest.approx(4 * 0.5 * math.sqrt(3 * math.log(20) + math.log(15)) / 3)
    assert theorem31_sharpened(c, M=2) == pytest.approx(
        4 * 0.5 * math.sqrt(3 * math.log(3) + 2 * math.log(4) + math.log(6)) / 3
    )


def test_bound_scales_as_inverse_sqrt_n():
    base = dict(B=2.0, D=10, K=9, P=1, d_in=100, d_out=10)
    small, large = BoundConstants(n=100, **base), BoundConstants(n=400, **base)
    assert theorem31_first_part(small) == pytest.approx(2 * theorem31_first_part(large))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("B", 0.0),
        ("B", -1.0),
        ("B", math.inf),
        ("B", math.nan),
        ("D", 0),
        ("K", 0),
        ("P", -1),
        ("d_in", 0),
        ("d_out", 0),
        ("n", 0),
        ("n", 1.5),
        ("D", True),
        ("K", "9"),
    ],
)
def test_validation_names_the_field(field, value):
    kwargs = dict(B=1.0, D=1, K=1, P=0, d_in=1, d_out=1, n=1)  # the smallest valid constants
    BoundConstants(**kwargs)
    with pytest.raises(ValueError, match=rf"^{field} must"):
        BoundConstants(**{**kwargs, field: value})


def test_sharpened_validates_m():
    c = BoundConstants(B=1.0, D=1, K=9, P=0, d_in=1, d_out=1, n=1)
    with pytest.raises(ValueError, match="^M must"):
        theorem31_sharpened(c, M=-1)
    assert theorem31_sharpened(c, M=0) < theorem31_sharpened(c, M=1)


def test_constants_are_frozen():
    c = BoundConstants(B=1, D=1, K=1, P=0, d_in=1, d_out=1, n=1)
    assert isinstance(c.B, float)
    with pytest.raises(AttributeError):
        c.n = 2  # type: ignore[misc]


def test_module_is_stdlib_only():
    """Loaded on its own (the metrics package __init__ imports torch), it pulls in neither torch nor numpy."""
    import sparselab.metrics.bound as bound

    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('bound', {bound.__file__!r})\n"
        "mod = sys.modules['bound'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(mod)\n"
        "b = mod.normalisation_sup_norm([0.406], [0.225], float32=True)\n"
        "print(b, 'torch' in sys.modules, 'numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [repr(B_REF), "False", "False"]
