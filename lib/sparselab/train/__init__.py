"""The training engine: one loop with callbacks, schedules, resumable state and metrics CSV."""

from .callbacks import Callback, TrainContext
from .engine import METRIC_COLUMNS, TrainResult, train, write_metrics_csv
from .optim import build_optimizer, build_scheduler, lr_factor_fn
from .state import RESUME_FILE, TrainState

__all__ = [
    "Callback",
    "METRIC_COLUMNS",
    "RESUME_FILE",
    "TrainContext",
    "TrainResult",
    "TrainState",
    "build_optimizer",
    "build_scheduler",
    "lr_factor_fn",
    "train",
    "write_metrics_csv",
]
