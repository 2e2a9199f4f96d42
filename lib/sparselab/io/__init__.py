"""Checkpoints (:mod:`.checkpoint`: safetensors + JSON sidecar) and atomic writes (:mod:`.atomic`).

Import from the submodules. This file imports nothing, so code that only writes files atomically
(tables, figures) does not depend on the checkpoint code: the workflow derives each rule's code
dependencies from imports, and a light package keeps reruns precise.
"""
