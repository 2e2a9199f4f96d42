"""Sparse training methods: masks that change during training.

Dynamic sparse training (Mostafa & Wang, ICML 2019: DSR, SET, DeepR, static and tied sparse
parameterisations, :mod:`.callbacks`, :mod:`.rewiring`, :mod:`.layers`, :mod:`.tied`), gradual
magnitude pruning (:mod:`.gradual` schedules, :mod:`.gmp` the training), AC/DC (:mod:`.acdc`) and
the L1 penalty (:mod:`.penalties`) and SR-STE N:M training (:mod:`.nm`). Studies compose them; nothing here imports a study.

Nothing is imported here, so a job's code digest covers only the methods it runs.
"""
