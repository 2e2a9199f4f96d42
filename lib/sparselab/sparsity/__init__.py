"""Unstructured sparsity: the Mask object (:mod:`.mask`) and magnitude pruning layerwise and global
(:mod:`.magnitude`), N:M masks by magnitude (:mod:`.nm`). Plain tensors over a module's parameters: no architecture, no training loop
(the sparse training methods that change masks while training live in :mod:`sparselab.dst`).

Nothing is imported here: loading a masked checkpoint needs :mod:`.mask` only, so a job's code
digest covers magnitude pruning only where the job prunes by magnitude.
"""
