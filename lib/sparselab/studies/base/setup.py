"""The run setup every study job starts with: seeds of the replicate, data splits, architecture
(fresh or from a checkpoint) and the hparams record, built one way.

The generic part lives in :mod:`sparselab.train.setup` (the plain training rules use it too);
studies import it from here.
"""

from __future__ import annotations

from ...train.setup import RunSetup, build_seeded, hparams_record, model_record

__all__ = ["RunSetup", "build_seeded", "hparams_record", "model_record"]
