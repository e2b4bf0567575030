"""diffcore-points: an example third-party diffcore plugin (see README.md).

The hooks live in :mod:`diffcore_points.plugin`; the rest of the package is plain code that
uses diffcore's public API only.
"""

__version__ = "0.1.0"
