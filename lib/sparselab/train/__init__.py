"""The training engine: one loop with callbacks (:mod:`.callbacks`), optimizers and schedules
(:mod:`.optim`), resumable state (:mod:`.state`), the loop itself (:mod:`.engine`) and a run's
data + model + engine + checkpoint (:mod:`.run`).

Nothing is imported here: mechanisms that only define callbacks (AC/DC, rewiring) import
:mod:`.callbacks` without making their jobs' code digests cover the engine.
"""
