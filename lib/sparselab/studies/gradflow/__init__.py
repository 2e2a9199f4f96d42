"""Gradient-flow structured pruning (Lubana & Dick, ICLR 2021): prune+train rounds (:mod:`.prune`),
then the final training of the pruned model (:mod:`.final`), its summary (:mod:`.summary`) and the
study's records (:mod:`.records`).

Nothing is imported here: the final training and the records never score filters, so their jobs'
code digests do not cover the importance measures.
"""
