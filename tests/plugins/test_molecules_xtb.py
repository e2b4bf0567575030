"""benchmarks/molecules_xtb.py: the GFN2-xTB reference ensembles of the independent test
benchmark are at xTB minima, in energy order within the window, pruned, and keep the graph's
stereo and bonds; the thorough MMFF94 ones are the lowest distinct minima of many embeddings."""

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
    settings = {"level": "xtb", "embeddings": 3, "gtol": 5e-4, "max_iter": 1000, "window": 10.0, "prune": 0.5, "conformers": 3}
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


def test_thorough_mmff_references_are_the_lowest_distinct_minima_of_many_embeddings(xtb):
    """``--level mmff``: MMFF94 minima (gradient ~0, the energy of these coordinates), lowest
    first within the window, pruned at 0.5 A, at most ``--keep``; the search saw every embedding."""
    from rdkit.Chem import AllChem

    from diffcore_molecule import druglike as G
    from diffcore_molecule.writer import with_conformers

    mol = Chem.AddHs(Chem.MolFromSmiles("CCCC[C@H](N)C(=O)OCCOC"))
    settings = {"level": "mmff", "embeddings": 40, "window": 10.0, "prune": 0.5, "conformers": 4}
    name, _, coords, energies, info = xtb.references(("m", mol.ToBinary(), 0, settings))
    assert name == "m" and len(coords) == 4 and info["embedded"] == 40 and info["distinct_in_window"] > 4
    assert np.all(np.diff(energies) >= 0) and energies[-1] - energies[0] <= 10.0
    m = with_conformers(mol, coords)
    props = AllChem.MMFFGetMoleculeProperties(m)
    for k, e in enumerate(energies):
        ff = AllChem.MMFFGetMoleculeForceField(m, props, confId=k)
        assert abs(ff.CalcEnergy() - e) < 1e-3 and np.abs(ff.CalcGrad()).max() < 0.05
    heavy = Chem.RemoveHs(m)
    assert min(G.heavy_rmsd(heavy, heavy, i, j) for i in range(4) for j in range(i)) >= 0.5
    every = Chem.Mol(mol)  # the same 40 embeddings minimised by rdkit's own call: the lowest is the first reference
    every.RemoveAllConformers()
    ids = G.embed_conformers(every, 40, xtb.SEED, threads=1)
    want = G._stereo(every)
    found = [e for k, (_, e) in enumerate(AllChem.MMFFOptimizeMoleculeConfs(every, numThreads=1, maxIters=2000))
             if G.keeps_stereo(every, ids[k], want)]
    assert len(ids) == 40 and abs(min(found) - energies[0]) < 1e-3


def test_the_xtb_caches_keep_their_names(xtb):
    """Adding the mmff level left the xTB cache key as it was: a built cache is still found."""
    a = {"level": "xtb", "embeddings": 15, "gtol": 5e-4, "max_iter": 1000, "window": 10.0, "prune": 0.5, "conformers": 5,
         "molecules": "charged", "count": 20}
    assert xtb.cache_path(Path("RUN"), a) == Path("RUN/cache/xtb-charged20-references-c88cd4dac0a6.sdf")
    assert xtb.cache_path(Path("RUN"), dict(a, level="mmff", molecules="test", embeddings=300, conformers=20)) == \
        Path("RUN/cache/mmff-test-references-8abe4e27a345.sdf")


def test_score_splits_the_rows_by_formal_charge(xtb, tmp_path):
    """The charged / neutral means come from evaluate's per-molecule table, each row's own
    columns, and a molecule without a value (nan) is left out of that mean only."""
    from diffcore_molecule.metrics import write_table

    rows = [{"name": "a", "cov_r": 1.0, "amr_r": 0.5, "etkdg_cov_r": 0.0},
            {"name": "b", "cov_r": 0.5, "amr_r": 0.7, "etkdg_cov_r": float("nan")},
            {"name": "c", "cov_r": 0.0, "amr_r": 1.3, "etkdg_cov_r": 1.0}]
    write_table(rows, tmp_path / "molecule_metrics.csv")
    got = xtb.by_charge(tmp_path / "molecule_metrics.csv", {"c"})
    assert got["ionised_cov_r"] == 0.0 and got["ionised_amr_r"] == 1.3 and got["ionised_etkdg_cov_r"] == 1.0
    assert got["neutral_cov_r"] == 0.75 and abs(got["neutral_amr_r"] - 0.6) < 1e-12 and got["neutral_etkdg_cov_r"] == 0.0
    assert "neutral_start_cov_r" not in got  # no such column: no entry
    assert [xtb.ionised(Chem.MolFromSmiles(s)) for s in ("C[NH3+]", "CC(=O)[O-]", "[NH3+]CC(=O)[O-]", "c1ccccc1[N+](=O)[O-]", "CC")] == \
        [True, True, True, False, False]  # a nitro group is not an ion


def test_the_charged_tuning_molecules_are_unseen_and_charged_as_at_ph_7(xtb, tmp_path):
    """``--molecules charged``: molecules of the training source the run never saw (not among
    its graphs, not a test ligand), 17+ heavy atoms, each with a protonated aliphatic amine or a
    carboxylate where the neutral source molecule had the amine or the acid."""
    from diffcore_molecule import data as D
    from diffcore_molecule.torsion_domain import TorsionDomain, TorsionOptions

    domain = TorsionDomain(TorsionOptions(max_molecules=4, test_set=False, conformers=1, oversample=1), workdir=tmp_path)
    got = xtb.charged(domain, 3)
    assert len(got) == 3
    seen = {g.smiles for g in domain.graphs}
    from diffcore_molecule import druglike as G

    for g in got:
        heavy = Chem.RemoveHs(g.mol)
        assert heavy.GetNumHeavyAtoms() >= 17 and g.smiles not in seen and not ({g.smiles} & G.test_keys())
        assert xtb.ionised(heavy)
        sites = [a for a in heavy.GetAtoms() if a.GetFormalCharge()]
        assert sites and all((a.GetSymbol(), a.GetFormalCharge()) in (("N", 1), ("O", -1)) for a in sites)
        neutral = Chem.MolFromSmiles(g.smiles)
        for a in sites:
            neutral.GetAtomWithIdx(a.GetIdx()).SetFormalCharge(0)
            neutral.GetAtomWithIdx(a.GetIdx()).SetNoImplicit(False)
            neutral.GetAtomWithIdx(a.GetIdx()).SetNumExplicitHs(0)
        Chem.SanitizeMol(neutral)
        assert neutral.HasSubstructMatch(Chem.MolFromSmarts(xtb.AMINE)) or neutral.HasSubstructMatch(Chem.MolFromSmarts(xtb.ACID))
        assert D._canonical(neutral) not in seen  # the source molecule itself was not trained on either
        assert len(sites) <= 2  # at most one amine and one acid ionised; none ionised before
