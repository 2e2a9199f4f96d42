"""The gradient-flow study's pruning options, typed, with their defaults stated once.

Its own module (standard library only) because two layers read it: the config parser at
Snakemake parse time and the pruning job (``PruneSpec`` derives from it), whose code digest
should not cover the parser.
"""

from __future__ import annotations

import dataclasses

from ...config.hparams import Hparams, HparamsError


@dataclasses.dataclass(frozen=True, kw_only=True)
class GradflowOptions(Hparams):
    """How every pruning phase of one experiment runs, with the original's defaults (gradflow notes
    §1-§3); the one statement of these defaults: ``PruneSpec`` (the job's spec) derives from it
    (keyword-only, so that its measure, target and rounds come first)."""

    warmup_epochs: int = 0  # the original trains warmup_epochs - 1 extra epochs before round 1
    importance_batches: int = 20  # minibatches of the augmented, shuffled train loader
    importance_batch_size: int = 128
    grasp_temperature: float = 200.0
    min_fraction: float = 0.05  # each layer keeps int(min_fraction * dense width) + 1 (0: one filter)
    protect: tuple[str, ...] = ()  # producer convs never pruned (a ResNet stem)
    use_init: bool = False  # biased_loss: distance from initialisation instead of magnitude
    use_l2: bool = False
    track_batches: int = 20  # biased_loss_tracked: the last minibatches of each round's training
    alpha: float = 0.8  # biased_loss_tracked: weight of the new value in the running average
    preserve_momentum: bool = False  # carry SGD momentum into the next round, cut like the weights

    def validate(self, path: str) -> None:
        if self.importance_batches * self.importance_batch_size < 1:
            raise HparamsError(f"{path}: importance_batches and importance_batch_size must be >= 1")
