"""diffcore's molecule-coords plugin: diffusion over 3D atomic coordinates.

Generates conformers of a given molecule conditioned on its molecular graph (the task of
GeoDiff and torsional diffusion) with an E(n)-equivariant graph network (Satorras et al.
2021) and Gaussian noise in the zero-centre-of-mass subspace (Hoogeboom et al. 2022).
Registered through the ``diffcore`` entry-point group as ``molecule-coords``; see
``docs/domains/molecules.md``.
"""

__all__ = ["MoleculeDomain", "EGNN"]


def __getattr__(name):  # lazy: importing the package must not import rdkit for nothing
    if name == "MoleculeDomain":
        from .domain import MoleculeDomain

        return MoleculeDomain
    if name == "EGNN":
        from .backbone import EGNN

        return EGNN
    raise AttributeError(name)
