"""benchmarks/molecules_xtb.py: the GFN2-xTB reference ensembles of the independent test
benchmark are at xTB minima, in energy order within the window, pruned, and keep the graph's
stereo and bonds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def xtb():  # tblite (GFN2-xTB) comes with the dev extra
    spec = importlib.util.spec_from_file_location("molecules_xtb", ROOT / "benchmarks" / "molecules_xtb.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_xtb_references_are_pruned_minima_in_energy_order_with_the_graphs_stereo(xtb):
    from tblite.interface import Calculator

    from diffcore_molecule import druglike as G
    from diffcore_molecule import metrics as M
    from diffcore_molecule.writer import with_conformers

    mol = Chem.AddHs(Chem.MolFromSmiles("CC[C@H](N)C(=O)OCC"))
    settings = {"embeddings": 3, "gtol": 5e-4, "max_iter": 1000, "window": 10.0, "prune": 0.5, "conformers": 3}
    name, _, coords, energies, info = xtb.references(("m", mol.ToBinary(), 0, settings))
    assert name == "m" and 1 <= len(coords) <= 3 and info["embedded"] == 3
    assert np.all(np.diff(energies) >= 0) and energies[-1] - energies[0] <= 10.0
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    for x, e in zip(coords, energies):
        calc = Calculator("GFN2-xTB", z, x / xtb.BOHR, charge=0.0)
        calc.set("verbosity", 0)
        calc.add("alpb-solvation", "water")
        res = calc.singlepoint()
        assert abs(res.get("energy") * xtb.HARTREE_KCAL - e) < 1e-6  # the energy of these very coordinates
        assert np.abs(res.get("gradient")).max() < 5e-3  # at a minimum: L-BFGS stopped at a projected gradient of 5e-4
        assert M.connectivity_ok(mol, x)
    assert M.stereo_kept(mol, coords).all()
    heavy = Chem.RemoveHs(with_conformers(mol, coords))
    for i in range(len(coords)):
        for j in range(i):
            assert G.heavy_rmsd(heavy, heavy, i, j) >= 0.5  # pruned as the MMFF94 references are
