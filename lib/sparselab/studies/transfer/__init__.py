"""The sparse-transfer study (Iofinova et al., CVPR 2022) as workflow jobs, one module per kind.

Upstreams: AC/DC from scratch (:mod:`.acdc`), GMP of the dense upstream (:mod:`.gmp`), imported
checkpoints (:mod:`.imported`). Transfer: features of an upstream on a downstream dataset extracted
once and cached (:mod:`.features`), linear heads trained on them per seed (:mod:`.linear`), full
finetuning with the backbone masks kept (:mod:`.full`) and the from-scratch baseline (:mod:`.scratch`). Every job
ends with a small ``summary.json`` (test top-1 and mean per-class accuracy, the measured backbone
sparsity) that the records rule collects (:mod:`.records`; tables and the figure: :mod:`.report`).

Nothing is imported here, and each job's module imports only what it runs: a linear head's job
never depends on the engine, a GMP job never on AC/DC.
"""
