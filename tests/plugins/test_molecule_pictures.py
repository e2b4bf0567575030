"""benchmarks/molecule_pictures.py: the ring-shape printout tells a chair from a boat."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rdkit")
from rdkit import Chem  # noqa: E402
from rdkit.Chem import AllChem  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_ring_shapes_tells_a_chair_from_a_boat():
    spec = importlib.util.spec_from_file_location("molecule_pictures", ROOT / "benchmarks" / "molecule_pictures.py")
    pictures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pictures)
    mol = Chem.AddHs(Chem.MolFromSmiles("NC1CCC(CC1)c1ccccc1"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    AllChem.MMFFOptimizeMolecule(mol)
    heavy = Chem.RemoveHs(mol)
    (ring, shape), = pictures.ring_shapes(heavy)  # the benzene ring is not saturated: not listed
    assert shape == "c"  # the force-field minimum of a cyclohexane is a chair
    # reflect ring atom 1 through the plane of atoms 2, 3, 5, 6: both ends on one side, a boat
    pos = heavy.GetConformer().GetPositions()
    a1, a2, a3, _, a5, a6 = ring
    centre = pos[[a2, a3, a5, a6]].mean(0)
    normal = np.linalg.svd(pos[[a2, a3, a5, a6]] - centre)[2][2]
    moved = pos[a1] - 2 * np.dot(pos[a1] - centre, normal) * normal
    boat = Chem.Conformer(heavy.GetConformer())
    boat.SetAtomPosition(a1, moved.tolist())
    heavy.AddConformer(boat, assignId=True)
    assert pictures.ring_shapes(heavy) == [(ring, "cb")]
