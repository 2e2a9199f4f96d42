"""Full training state at an epoch boundary, for resuming after a kill and for rewinding (IMP).

The state holds model, optimizer, scheduler, RNG states, the epoch/step counters, the metric
history, the mask and the callbacks' own state. It is written atomically with ``torch.save``
and read back with ``torch.load(weights_only=True)``: only tensors and plain Python containers,
never arbitrary pickled objects.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from ..io.atomic import atomic_path

RESUME_FILE = "resume.pt"


@dataclasses.dataclass
class TrainState:
    fingerprint: str  # identifies the run; a state from another configuration is not resumed
    epoch: int  # completed epochs
    step: int  # completed optimizer steps
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Any]
    history: list[dict[str, Any]]
    mask: dict[str, torch.Tensor] | None = None
    callbacks: dict[str, Any] = dataclasses.field(default_factory=dict)
    best: dict[str, Any] | None = None  # select=best_val: epoch, val_top1 and weights of the best epoch

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp:
            torch.save(dataclasses.asdict(self), tmp)

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> TrainState:
        data = torch.load(path, map_location=map_location, weights_only=True)
        return cls(**data)


def capture_rng() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
