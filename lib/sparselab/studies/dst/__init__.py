"""Dynamic sparse training study (Mostafa & Wang, ICML 2019): runs of every method from scratch
(:mod:`.sparse`) and gradual pruning of a dense checkpoint (:mod:`.gradual`), with what they share
(:mod:`.common`: the learnable parameter count, the run summary). The methods themselves live in
:mod:`sparselab.dst`; this package only composes them.

Nothing is imported here: gradual pruning never rewires, so its jobs' code digests do not cover
DSR, SET or DeepR.
"""
