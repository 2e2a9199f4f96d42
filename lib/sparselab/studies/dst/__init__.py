"""Dynamic sparse training study (Mostafa & Wang, ICML 2019): runs of every method from scratch
(:mod:`.sparse`) and gradual pruning of a dense checkpoint (:mod:`.gradual`), with what they share
(:mod:`.common`: per-layer sparsities, the learnable parameter count, the run summary).

Nothing is imported here: gradual pruning (also the transfer study's GMP) never rewires, so its
jobs' code digests do not cover DSR, SET or DeepR.
"""
