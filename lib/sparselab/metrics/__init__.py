"""Metrics of models: accuracy and loss (:mod:`.classification`), exact L^q path-norms
(:mod:`.pathnorm`), per-sample margins and their quantiles (:mod:`.margin_stats`), the Theorem 3.1
bound constants of the path-norm study (:mod:`.bound`, stdlib only), parameters and FLOPs
(:mod:`.complexity`) and checkpoint-level evaluation (:mod:`.checkpoint_eval`).

Nothing is imported here: a job's code digest covers the modules it imports (and their packages'
``__init__``), so the training engine, which needs only :mod:`.classification`, never depends on
the path-norm code.
"""
