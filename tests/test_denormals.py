"""flush_denormals: subnormal floats count as zero inside the block, in every compute thread, and
the caller's setting is back afterwards."""

from __future__ import annotations

import pytest
import torch

from sparselab.metrics.denormals import flush_denormals

TINY = torch.finfo(torch.float32).tiny


def _subnormal_products() -> int:
    """How many of 4M products of 1e-20 * 1e-20 (= 1e-40, subnormal) stay non-zero; the tensor is
    large enough for PyTorch to split it across all its threads."""
    x = torch.full((4_000_000,), 1e-20)
    return int(((x * x) != 0).sum())


@pytest.fixture()
def two_threads():  # type: ignore[no-untyped-def]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def test_subnormals_are_zero_inside_and_kept_after(two_threads: None) -> None:
    assert _subnormal_products() == 4_000_000
    with flush_denormals() as everywhere:
        if not everywhere:
            pytest.skip("no flush-to-zero mode on this CPU/C library")
        assert _subnormal_products() == 0  # all threads' shares, not only the caller's
        assert float(torch.tensor(1e-20) * torch.tensor(1e-20)) == 0.0
    assert _subnormal_products() == 4_000_000
    assert 0 < float(torch.tensor(1e-20) * torch.tensor(1e-20)) < TINY


def test_a_callers_flush_setting_survives_the_block(two_threads: None) -> None:
    if not torch.set_flush_denormal(True):
        pytest.skip("no flush-to-zero mode on this CPU")
    try:
        with flush_denormals():
            pass
        assert float(torch.tensor(1e-20) * torch.tensor(1e-20)) == 0.0  # still on in this thread
    finally:
        torch.set_flush_denormal(False)
    assert float(torch.tensor(1e-20) * torch.tensor(1e-20)) > 0.0


def test_the_block_restores_the_setting_when_it_raises(two_threads: None) -> None:
    with pytest.raises(RuntimeError, match="inside"):
        with flush_denormals():
            raise RuntimeError("inside")
    assert _subnormal_products() == 4_000_000
