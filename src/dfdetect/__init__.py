"""dfdetect: a reproducible deepfake-detection research pipeline.

The library takes arrays, tables and paths as arguments; only ``stages/*.py`` know the
file layout of the DVC pipeline.
"""

__version__ = "0.1.0"
