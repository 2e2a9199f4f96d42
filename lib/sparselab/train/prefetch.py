"""Batches onto the training device without stalling it (issue 16, point 3).

A copy from pageable host memory to a GPU makes the host wait for the device's queue to drain
(CUDA synchronises the stream before such a copy), so a loop that moves each CPU batch with a plain
``.to("cuda")`` can never run ahead of the GPU. :class:`DevicePrefetcher` instead copies each
CPU-resident batch from pinned memory (the DataLoader's pinned batches as they are, any other
batch pinned once), with ``non_blocking=True``, on a side CUDA stream, one batch ahead: batch
``k + 1`` travels while batch ``k`` computes. Off CUDA, and for batches already on the device
(device-resident datasets), it is a plain pass-through that moves nothing ahead of time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized

import torch

from ..compute import to_device

Batch = tuple[torch.Tensor, torch.Tensor]


class DevicePrefetcher:
    """Iterates ``(x, y)`` batches of ``loader`` on ``device`` (``x`` channels_last where asked);
    its length is the loader's."""

    def __init__(self, loader: Iterable[Batch], device: torch.device, channels_last: bool = False) -> None:
        self.loader, self.device, self.channels_last = loader, torch.device(device), channels_last

    def __len__(self) -> int:
        assert isinstance(self.loader, Sized)
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        if self.device.type != "cuda":
            for x, y in self.loader:
                yield self._move(x, y)
            return
        yield from self._prefetched()

    def _move(self, x: torch.Tensor, y: torch.Tensor) -> Batch:
        return to_device(x, self.device, self.channels_last), y.to(self.device, non_blocking=True)

    def _prefetched(self) -> Iterator[Batch]:
        """CUDA: the next batch's copy is queued on a side stream before this one is handed out."""
        side = torch.cuda.Stream(device=self.device)
        compute = torch.cuda.current_stream(self.device)
        batches = iter(self.loader)

        def start_next() -> tuple[Batch, bool] | None:
            batch = next(batches, None)
            if batch is None:
                return None
            x, y = batch
            if _on(x, self.device) and _on(y, self.device):
                return self._move(x, y), False  # device-resident data: nothing to copy
            with torch.cuda.stream(side):
                return self._move(_pinned(x), _pinned(y)), True

        pending = start_next()
        while pending is not None:
            (x, y), copied = pending
            if copied:
                compute.wait_stream(side)  # the compute stream reads the batch only after its copy
                x.record_stream(compute)  # made on the side stream, freed after the compute stream used it
                y.record_stream(compute)
            pending = start_next()  # overlaps this batch's compute
            yield x, y


def _pinned(t: torch.Tensor) -> torch.Tensor:
    """A CPU tensor in page-locked memory (only those copy to the GPU asynchronously)."""
    return t.pin_memory() if t.device.type == "cpu" and not t.is_pinned() else t


def _on(t: torch.Tensor, device: torch.device) -> bool:
    """Whether ``t`` is on ``device`` (``cuda`` without an index: any GPU, as the current one)."""
    return t.device.type == device.type and (device.index is None or t.device.index == device.index)
