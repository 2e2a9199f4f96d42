"""The path-norm study (Gonon, Brisebarre, Riccietti, Gribonval, ICLR 2024) on the shared engine:
the per-epoch analysis (:mod:`.analysis`), IMP with rewinding (:mod:`.imp`), growing training
subsets (:mod:`.subsets`), path-norms and margins of trained and pretrained models
(:mod:`.pretrained`).

Nothing is imported here, so that a job's code digest covers only the part of the study it runs.
"""
