"""The path-norm study's typed options that its jobs read back from their rule params: the per-epoch
analysis, a Table 2 bound setting, a pretrained model's analysis. Defaults are stated here once (the
schema repeats them; ``tests/test_study_configs.py`` keeps both equal).

Apart from :mod:`.config` (the section's parser) so that a job's code digest covers only these
classes, not the config parsing: standard library and :mod:`sparselab.config.hparams` only.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from ...config.hparams import Hparams, HparamsError

__all__ = [
    "CONVENTIONS",
    "QS",
    "AnalysisHparams",
    "AnalysisSpec",
    "BoundSetting",
    "Convention",
    "PretrainedOptions",
    "PretrainedSpec",
]

Convention = Literal["exact", "gbrg24"]
QS: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
"""Exponents q of the L^q path-norms (``pathnorm.qs``)."""
CONVENTIONS: tuple[Convention, ...] = ("exact", "gbrg24")
"""The definition, and the original code's numbers that the paper's Table 3 and Figures 4-5 show."""


@dataclasses.dataclass(frozen=True)
class AnalysisHparams(Hparams):
    """``pathnorm.analysis``: what every epoch of an IMP or subset run logs besides the engine's metrics."""

    conventions: tuple[Convention, ...] = CONVENTIONS
    margin_samples: int | None = 10000  # seeded subset of the non-augmented train split; None = all of it
    seed: int = 0
    batch_size: int = 512


@dataclasses.dataclass(frozen=True)
class AnalysisSpec(AnalysisHparams):
    """The per-epoch analysis of a run (rule param ``analysis``): ``pathnorm.analysis`` plus ``pathnorm.qs``."""

    qs: tuple[float, ...] = QS


@dataclasses.dataclass(frozen=True, kw_only=True)
class BoundSetting(Hparams):
    """One ``pathnorm.bound`` setting of Table 2: B, or the normalisation (mean, std) it comes from."""

    name: str
    B: float | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    float32: bool = True  # B rounded through float32, as the reference
    K: int
    P: int
    d_in: int
    d_out: int
    n: int
    archs: dict[str, int]  # architecture name -> depth D

    def validate(self, path: str) -> None:
        if self.B is None and (self.mean is None or self.std is None):
            raise HparamsError(f"{path}: setting {self.name!r}: give B, or mean and std")


@dataclasses.dataclass(frozen=True)
class PretrainedOptions(Hparams):
    """``pathnorm.pretrained`` (but its dataset and models): how each trained model is analysed."""

    margin_samples: int | None = None  # seeded subset of the train split (eval transforms); None = all
    batch_size: int = 256
    hub_dir: str | None = None  # torch hub dir of published weights (default $TORCH_HOME/hub)


@dataclasses.dataclass(frozen=True)
class PretrainedSpec(PretrainedOptions):
    """One pretrained model's analysis (rule param ``options``): its torchvision ``weights`` (None for
    a run of ours), ``pathnorm.qs``, ``pathnorm.conventions`` and ``pathnorm.pretrained``'s options."""

    weights: str | None = None
    qs: tuple[float, ...] = QS
    conventions: tuple[Convention, ...] = CONVENTIONS
