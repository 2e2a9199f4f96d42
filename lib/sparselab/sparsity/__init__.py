"""Unstructured sparsity: the Mask object (:mod:`.mask`), magnitude pruning layerwise and global
(:mod:`.magnitude`) and AC/DC's alternating phases (:mod:`.acdc`).

Nothing is imported here: loading a masked checkpoint needs :mod:`.mask` only, so a job's code
digest covers magnitude pruning only where the job prunes by magnitude.
"""
