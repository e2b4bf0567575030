"""The ``molecule-torsion`` domain: torsional diffusion (Jing et al. 2022) of a given molecule.

The data are the torsion angles of a molecule's rotatable bonds (:mod:`.torsions`), a point on
the torus [-pi, pi)^T: ``Domain.period`` = 2 pi, so the core trains on the wrapped-normal
target and wraps the samples (:mod:`diffcore.math.torus`). Everything else of a conformer,
its local structure, comes from a conformer ``pos0``:

* training: each reference conformer is an example; its torsions are x0 and it is its own
  local structure (the network rebuilds it from any torsions, so it learns their distribution
  given bond lengths, angles and ring puckers);
* sampling: each generated conformer starts from a fresh ETKDG v3 embedding of the molecule
  (rdkit; seeded from torch's generator, so ``--seed`` decides it), whose torsions the model
  replaces. Rigid turns about single bonds keep the embedding's stereocentres and double-bond
  configurations, so the output has the input's chirality.

Layout (``T`` = most torsions in the batch, at least 1; ``N`` = most atoms):

``x``      ``[B, T]`` torsion angles (radians); ``mask`` ``[B, T]``, 1 for a real torsion;
``cond``   ``atoms [B, N, F]``, ``pairs [B, N, N, E]``, ``atom_mask [B, N]``, ``heavy [B, N]``
           (heavy atoms come first in every molecule), ``pos0 [B, N, 3]`` (Angstrom),
           ``quads [B, T, 4]``, ``sides [B, T, N]`` (the atoms each torsion turns), ``tmask``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from rdkit import Chem
from rdkit.Chem import AllChem

from pydantic import Field

from diffcore import Batch, Domain

from . import data as D
from .domain import MoleculeDomain, MoleculeOptions, pad_graphs
from .torsions import dihedrals, rotatable_torsions

log = logging.getLogger("diffcore.molecule")


@dataclass
class Torsions:
    quads: torch.Tensor  # [T, 4]
    sides: torch.Tensor  # [T, N]
    heavy: torch.Tensor  # [N]


def heavy_first(mg: D.MolGraph) -> D.MolGraph:
    """``mg`` with its atoms renumbered heavy atoms first (rdkit's AddHs already orders them
    so; an SDF file may not): the network looks at the heavy atoms only, as a prefix."""
    z = [a.GetAtomicNum() for a in mg.mol.GetAtoms()]
    order = [i for i, a in enumerate(z) if a > 1] + [i for i, a in enumerate(z) if a == 1]
    if order == list(range(len(z))):
        return mg
    idx = torch.tensor(order)
    mol = Chem.RenumberAtoms(mg.mol, order)
    coords = mg.coords[:, idx] if mg.coords is not None else None
    return D.MolGraph(mg.name, mg.smiles, mol, mg.atoms[idx], mg.pairs[idx][:, idx], coords)


def torsions_of(mg: D.MolGraph) -> Torsions:
    quads, sides = rotatable_torsions(mg.mol)
    heavy = torch.tensor([a.GetAtomicNum() > 1 for a in mg.mol.GetAtoms()], dtype=torch.float32)
    return Torsions(quads, sides, heavy)


class _Examples(torch.utils.data.Dataset):
    """One item per (molecule, reference conformer): x0 = its torsions, pos0 = itself."""

    def __init__(self, graphs: list[D.MolGraph], tors: list[Torsions]):
        self.graphs, self.tors = graphs, tors
        self.index = [(g, k) for g in range(len(graphs)) for k in range(len(graphs[g].coords))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> Batch:
        g, k = self.index[i]
        mg, tr = self.graphs[g], self.tors[g]
        pos = mg.coords[k]
        return {"x": dihedrals(pos, tr.quads), "cond": _cond(mg, tr, pos)}


def _cond(mg: D.MolGraph, tr: Torsions, pos: torch.Tensor) -> dict:
    return {"atoms": mg.atoms, "pairs": mg.pairs, "pos0": pos.float(), "quads": tr.quads, "sides": tr.sides, "heavy": tr.heavy}


def collate_torsions(items: list[Batch]) -> Batch:
    """Pad atoms (:func:`pad_graphs`) and torsions (to the most in the batch, at least 1)."""
    out = pad_graphs([{"cond": it["cond"]} for it in items])
    n = out["cond"]["atoms"].shape[1]
    t = max(1, max(it["cond"]["quads"].shape[0] for it in items))
    b = len(items)
    quads, sides = torch.zeros(b, t, 4, dtype=torch.long), torch.zeros(b, t, n, dtype=torch.bool)
    tmask, pos0, heavy = torch.zeros(b, t), torch.zeros(b, n, 3), torch.zeros(b, n)
    x = torch.zeros(b, t) if "x" in items[0] else None
    for i, it in enumerate(items):
        c = it["cond"]
        k, m = c["quads"].shape[0], c["atoms"].shape[0]
        quads[i, :k], sides[i, :k, :m], tmask[i, :k] = c["quads"], c["sides"], 1
        pos0[i, :m], heavy[i, :m] = c["pos0"], c["heavy"]
        if x is not None:
            x[i, :k] = it["x"]
    out["cond"].update(pos0=pos0, quads=quads, sides=sides, tmask=tmask, heavy=heavy)
    out["mask"] = tmask
    if x is not None:
        out["x"] = x
    return out


def local_structures(mol: Chem.Mol, num: int, seed: int) -> np.ndarray | None:
    """``[num, N, 3]`` ETKDG v3 embeddings of ``mol`` (no force field: the model sets the
    torsions), retried from random coordinates; ``None`` if rdkit cannot embed it."""
    m = Chem.Mol(mol)
    m.RemoveAllConformers()
    for random_coords in (False, True):
        params = AllChem.ETKDGv3()
        params.randomSeed = int(seed)
        params.useRandomCoords = random_coords
        ids = list(AllChem.EmbedMultipleConfs(m, num, params))
        if ids:
            pos = np.stack([m.GetConformer(i).GetPositions() for i in ids])
            return pos[np.arange(num) % len(ids)]  # too few: reuse (rare)
    return None


class TorsionOptions(MoleculeOptions):
    """The ``data:`` section of the molecule-coords recipe (torsional diffusion)."""

    init_strength: float = Field(1.0, gt=0, le=1, description="Sampling starts from the ETKDG embedding's own torsions noised to this fraction of the steps (SDEdit); 1: from uniform noise, as torsional diffusion.")


class TorsionDomain(MoleculeDomain):
    """Torsion angles on the torus, local structure from rdkit (see the module doc)."""

    name = "molecule-torsion"
    Options = TorsionOptions
    period = 2 * math.pi
    EditOptions = None

    def __init__(self, options=None, *, workdir=None):
        super().__init__(options, workdir=workdir)
        self._tors: list[Torsions] = []

    def setup(self) -> None:
        if self.graphs is not None:
            return
        super().setup()
        self.graphs = [heavy_first(g) for g in self.graphs]
        self._tors = [torsions_of(g) for g in self.graphs]

    def _graphs(self, idx: list[int]) -> list[D.MolGraph]:
        self.setup()
        return [self.graphs[i] for i in idx]

    def train_dataset(self):
        self.setup()
        return _Examples(self._graphs(self.train_idx), [self._tors[i] for i in self.train_idx])

    def val_dataset(self):
        self.setup()
        return _Examples(self._graphs(self.val_idx), [self._tors[i] for i in self.val_idx]) if self.val_idx else None

    def collate(self, items: list[Batch]) -> Batch:
        return collate_torsions(items)

    def noise(self, like: torch.Tensor, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor:
        return Domain.noise(self, like, batch, generator)  # i.i.d. per torsion, zero at padding

    def requested(self, options) -> list[D.MolGraph]:
        return [heavy_first(g) for g in super().requested(options)]

    def graph_batches(self, graphs: list[D.MolGraph], num: int | Sequence[int], batch_size: int) -> Iterable[Batch]:
        """``num`` conformers of each molecule (or ``num[i]`` of ``graphs[i]``), each from its
        own ETKDG local structure, in batches of at most ``batch_size``. A molecule rdkit
        cannot embed is reported and left out."""
        counts = [num] * len(graphs) if isinstance(num, int) else list(num)
        base = int(torch.randint(0, 2**31 - 1, (1,)))  # torch's seed (diffcore --seed) decides the embeddings
        tors = [torsions_of(g) for g in graphs]  # graphs are heavy-first (setup, requested)
        jobs, local = [], {}
        for g, mg in enumerate(graphs):
            if counts[g] <= 0:
                continue
            pos = local_structures(mg.mol, counts[g], base + g)
            if pos is None:
                log.warning("%s (%s): rdkit cannot embed this molecule (impossible stereo or geometry); no conformers", mg.name, mg.smiles)
                continue
            local[g] = torch.as_tensor(pos, dtype=torch.float32)
            jobs += [(g, k) for k in range(counts[g])]
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start : start + batch_size]
            batch = collate_torsions([{"cond": _cond(graphs[g], tors[g], local[g][k])} for g, k in chunk])
            batch["shape"] = tuple(batch["mask"].shape)
            if self.options.init_strength < 1.0:  # start from ETKDG's torsions (SDEdit)
                c = batch["cond"]
                batch["init"] = dihedrals(c["pos0"], c["quads"]) * c["tmask"]
                batch["strength"] = self.options.init_strength
            batch["mol"] = [g for g, _ in chunk]
            batch["conformer"] = [k for _, k in chunk]
            batch["molecules"] = graphs
            batch["coord_scale"] = 1.0
            yield batch
