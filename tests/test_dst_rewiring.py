"""DSR, SET and DeepR mask updates (sparselab.dst.rewiring) against the rules of the DSR notes (§1.2, §2.1-2.2)."""

from __future__ import annotations

import pytest
import torch

from sparselab.dst.rewiring import deepr_step, dsr_step, entry_magnitudes, expand, next_threshold, set_step


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_layers(seed: int, shapes=((30, 20), (50,), (8, 4, 3, 3)), density: float = 0.3):  # type: ignore[no-untyped-def]
    g = gen(seed)
    mags = {f"l{i}": torch.rand(s, generator=g) for i, s in enumerate(shapes)}
    masks = {n: torch.rand(m.shape, generator=g) < density for n, m in mags.items()}
    return mags, masks


# ============================================================================ DSR
def test_dsr_conserves_the_number_of_active_entries_exactly_over_many_steps() -> None:
    mags, masks = random_layers(1)
    total = sum(int(m.sum()) for m in masks.values())
    g, threshold = gen(2), 0.05
    for step in range(60):
        res = dsr_step(mags, masks, threshold, target=20, generator=g)
        assert sum(int(m.sum()) for m in res.masks.values()) == total, step
        assert sum(res.grown.values()) == sum(res.pruned.values())
        masks, threshold = res.masks, res.threshold
        mags = {n: torch.rand(m.shape, generator=g) for n, m in mags.items()}  # the weights move


def test_dsr_prunes_strictly_below_the_threshold_and_never_regrows_there() -> None:
    mags, masks = random_layers(3)
    mags["l0"].view(-1)[:5] = 0.25  # exactly H: kept
    masks["l0"].view(-1)[:5] = True
    res = dsr_step(mags, masks, threshold=0.25, target=50, generator=gen(4))
    for n in masks:
        below = masks[n] & (mags[n] < 0.25)
        assert res.pruned[n] == int(below.sum())
        assert not (res.masks[n] & below).any(), n  # pruned now, and nothing regrown where it was pruned
    assert res.masks["l0"].view(-1)[:5].all()


@pytest.mark.parametrize("pruned, threshold", [(660, 0.01), (661, 0.005), (540, 0.01), (539, 0.02), (600, 0.01)])
def test_threshold_adapts_with_strict_comparisons(pruned: int, threshold: float) -> None:
    # Np = 600, δ = 0.1: halve above 660, double below 540, keep at and between the boundaries
    assert next_threshold(0.01, pruned, 600) == threshold


def test_regrowth_is_proportional_to_survivors_with_the_remainder_in_one_layer() -> None:
    # two layers, survivors 300 and 100 after pruning 40: shares 30 and 10
    masks = {"a": torch.zeros(1000, dtype=torch.bool), "b": torch.zeros(1000, dtype=torch.bool)}
    masks["a"][:320] = True
    masks["b"][:120] = True
    mags = {"a": torch.ones(1000), "b": torch.ones(1000)}
    mags["a"][:20] = 0.0  # 20 pruned in a
    mags["b"][:20] = 0.0  # 20 pruned in b
    res = dsr_step(mags, masks, threshold=0.5, target=40, generator=gen(5))
    assert res.pruned == {"a": 20, "b": 20} and res.grown == {"a": 30, "b": 10}
    # three equal layers, 10 to place: 3 each and the remainder of 1 to one random layer
    masks3 = {n: torch.zeros(100, dtype=torch.bool) for n in "xyz"}
    mags3 = {n: torch.ones(100) for n in "xyz"}
    for n in "xyz":
        masks3[n][:40] = True
    mags3["x"][:10] = 0.0
    res3 = dsr_step(mags3, masks3, threshold=0.5, target=10, generator=gen(6))
    assert sorted(res3.grown.values()) == [3, 3, 4]


def test_a_layer_without_room_spills_its_share_over_to_the_others() -> None:
    masks = {"full": torch.ones(100, dtype=torch.bool), "roomy": torch.zeros(100, dtype=torch.bool)}
    masks["roomy"][:10] = True
    mags = {"full": torch.ones(100), "roomy": torch.ones(100)}
    mags["full"][:5] = 0.0  # 5 pruned in "full": its only free positions are the ones just pruned
    res = dsr_step(mags, masks, threshold=0.5, target=5, generator=gen(7))
    assert res.grown == {"full": 0, "roomy": 5}
    assert int(res.masks["full"].sum()) + int(res.masks["roomy"].sum()) == 110


def test_a_layer_whose_every_entry_is_below_the_threshold_keeps_its_lowest_index_one() -> None:
    masks = {"a": torch.zeros(10, dtype=torch.bool), "b": torch.zeros(50, dtype=torch.bool)}
    masks["a"][[2, 5, 7]] = True
    masks["b"][:10] = True
    mags = {"a": torch.zeros(10), "b": torch.ones(50)}
    res = dsr_step(mags, masks, threshold=0.5, target=3, generator=gen(8))
    assert res.pruned["a"] == 2 and bool(res.masks["a"][2])


def test_dsr_is_reproducible_from_its_generator_seed() -> None:
    mags, masks = random_layers(9)
    a = dsr_step(mags, masks, 0.1, 30, gen(10))
    b = dsr_step(mags, masks, 0.1, 30, gen(10))
    assert all(torch.equal(a.masks[n], b.masks[n]) for n in masks)


def test_kernel_and_row_granularity_use_the_mean_magnitude_of_the_slice() -> None:
    w = torch.randn(4, 3, 3, 3)
    assert torch.allclose(entry_magnitudes(w, "kernel"), w.abs().mean(dim=(2, 3)))
    assert torch.allclose(entry_magnitudes(w, "row"), w.abs().mean(dim=3))
    assert torch.equal(entry_magnitudes(w, "element"), w.abs())
    assert entry_magnitudes(torch.randn(5, 6), "kernel").shape == (5, 6)  # Linear: always per element
    m = torch.rand(4, 3) < 0.5
    assert torch.equal(expand(m, w)[:, :, 1, 2], m) and expand(m, w).shape == w.shape


# ============================================================================ SET
def test_set_keeps_every_tensor_count_and_drops_its_smallest_active_entries() -> None:
    mags, masks = random_layers(11, density=0.4)
    res = set_step(mags, masks, fraction=0.1, generator=gen(12))
    for n, mask in masks.items():
        active = int(mask.sum())
        count = int(0.1 * active) + 1
        assert res.removed[n] == count and int(res.masks[n].sum()) == active
        kept_old = mask & res.masks[n]
        dropped = mask & ~res.masks[n]
        assert int(dropped.sum()) == count  # none of the regrown landed where entries were dropped
        assert mags[n][dropped].max() <= mags[n][kept_old].min()


# ============================================================================ DeepR
def test_deepr_removes_exactly_the_sign_crossing_connections() -> None:
    w = torch.tensor([[0.5, -0.2, 0.0, 0.3], [0.1, -0.4, 0.2, 0.0]])
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    before = torch.tensor([[1.0, 1.0, 0.0, -1.0], [1.0, -1.0, 1.0, 0.0]])  # 0: new connection (never flagged)
    res, signs = deepr_step({"w": w}, {"w": mask}, {"w": before}, gen(13))
    flipped = torch.tensor([[False, True, False, True], [False, False, False, False]])
    assert res.removed["w"] == 2
    assert not (res.masks["w"] & flipped).any()  # removed, and not regrown in place
    assert int(res.masks["w"].sum()) == int(mask.sum())  # as many regrown in the same tensor
    assert torch.equal(signs["w"][res.masks["w"] & mask], torch.sign(w)[res.masks["w"] & mask])


def test_regrowth_shares_round_halves_to_even_as_the_original() -> None:
    """K = 5 regrown over survivors 3, 1, 4: K*R/sum R = 1.875, 0.625, 2.5. The original rounds with
    np.round (halves to even): 2, 1, 2, which already sums to K; rounding halves up gives 2, 1, 3
    and then takes one back from a random layer."""
    from sparselab.dst.rewiring import _shares

    for seed in range(5):  # no remainder, so the random layer never matters
        got = _shares(5, {"a": 3, "b": 1, "c": 4}, torch.Generator().manual_seed(seed))
        assert got == {"a": 2, "b": 1, "c": 2}
    # Halves of equal layers: both round to even (2, 2 and 4, 4), the random layer gives one back.
    assert sorted(_shares(3, {"a": 1, "b": 1}, torch.Generator()).values()) == [1, 2]
    assert sorted(_shares(7, {"a": 1, "b": 1}, torch.Generator()).values()) == [3, 4]


def test_per_layer_regrowth_gives_each_tensor_back_what_it_lost() -> None:
    """Only a[0] falls below H: per layer, a regrows one entry among its free positions 3-5 (never
    the one just pruned) and b stays exactly as it was; the proportional split would hand the one
    regrown entry to a random tensor (survivors 2 and 2: shares 0.5 and 0.5 round to 0 and 0)."""
    masks = {"a": torch.tensor([1, 1, 1, 0, 0, 0], dtype=torch.bool), "b": torch.tensor([1, 1, 0, 0], dtype=torch.bool)}
    mags = {"a": torch.tensor([5e-4, 0.5, 0.6, 0.0, 0.0, 0.0]), "b": torch.tensor([0.7, 0.8, 0.0, 0.0])}
    for seed in range(8):
        res = dsr_step(mags, masks, 1e-3, target=1, generator=torch.Generator().manual_seed(seed), regrowth="per_layer")
        assert res.pruned == {"a": 1, "b": 0} and res.grown == {"a": 1, "b": 0}
        assert torch.equal(res.masks["b"], masks["b"])
        assert res.masks["a"][:3].tolist() == [False, True, True] and int(res.masks["a"][3:].sum()) == 1
    moved = {
        n
        for seed in range(20)
        for n, g in dsr_step(mags, masks, 1e-3, target=1, generator=torch.Generator().manual_seed(seed)).grown.items()
        if g
    }
    assert moved == {"a", "b"}  # proportional: the one regrown entry lands in either tensor


def test_per_layer_regrowth_refuses_a_tensor_without_room() -> None:
    masks = {"full": torch.ones(3, dtype=torch.bool), "b": torch.tensor([1, 0], dtype=torch.bool)}
    mags = {"full": torch.tensor([5e-4, 0.5, 0.6]), "b": torch.tensor([0.7, 0.0])}
    with pytest.raises(ValueError, match="full"):
        dsr_step(mags, masks, 1e-3, target=1, generator=torch.Generator(), regrowth="per_layer")
    dsr_step(mags, masks, 1e-3, target=1, generator=torch.Generator())  # proportional: b has room
