"""sparselab: one reproducible pipeline for research on sparse neural networks.

The package is deliberately light to import: subpackages load torch and friends only when
used, so Snakemake can parse the workflow (which imports :mod:`sparselab.config`) quickly.
"""

__version__ = "0.1.0"
