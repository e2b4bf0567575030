"""Conformer metrics of the molecule domain: the symmetry-aware RMSD matrix equals rdkit's
GetBestRMS, coverage / AMR on hand-built ensembles, stereo kept or broken, steric clashes,
and evaluate_model's keys, baseline rows and per-molecule timing."""

from __future__ import annotations

import csv
import time

import numpy as np
import pytest
import torch

pytest.importorskip("rdkit")

from rdkit import Chem  # noqa: E402
from rdkit.Chem import rdMolAlign, rdMolTransforms  # noqa: E402

from diffcore_molecule import data as D  # noqa: E402
from diffcore_molecule import metrics as M  # noqa: E402
from diffcore_molecule.writer import with_conformers  # noqa: E402

RULES = D.Rules(("H", "C", "N", "O", "F", "S", "Cl"), 200, True)
DRUGS = {
    "ibuprofen": "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O",
    "naproxen": "C[C@@H](C(=O)O)c1ccc2cc(OC)ccc2c1",
    "salicylic-acid": "OC(=O)c1ccccc1O",  # intramolecular hydrogen bond
    "di-tert-butylphenol": "CC(C)(C)c1ccc(O)cc1C(C)(C)C",  # 36 symmetric orderings of the heavy atoms
    "morphine": "CN1CC[C@]23c4c5ccc(O)c4O[C@H]2[C@@H](O)C=C[C@H]3[C@H]1C5",
    "sildenafil": "CCCc1nn(C)c2c(=O)[nH]c(-c3cc(S(=O)(=O)N4CCN(C)CC4)ccc3OCC)nc12",  # N-H...O at 1.8 A
    "chlorobenzamide": "CC(C)CNC(=O)c1ccccc1Cl",  # N-H...Cl at 2.2 A
}


def mol(smiles: str) -> Chem.Mol:
    return D.from_smiles(smiles, RULES)


def confs(m: Chem.Mol, num: int, seed: int, mmff: bool = False) -> np.ndarray:
    c = D.embed(m, num, seed=seed, mmff=mmff)
    assert c is not None and len(c) == num
    return c


def best_rms_loop(m: Chem.Mol, refs: np.ndarray, gens: np.ndarray, **kw) -> np.ndarray:
    ref = Chem.RemoveHs(with_conformers(m, refs), sanitize=False)
    gen = Chem.RemoveHs(with_conformers(m, gens), sanitize=False)
    return np.array([[rdMolAlign.GetBestRMS(gen, ref, prbId=j, refId=i, **kw) for j in range(len(gens))] for i in range(len(refs))])


def rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


# ------------------------------------------------------------------------ RMSD
@pytest.mark.parametrize("name", ["ibuprofen", "salicylic-acid", "di-tert-butylphenol", "morphine"])
def test_rmsd_matrix_equals_get_best_rms(name):
    m = mol(DRUGS[name])
    refs, gens = confs(m, 3, seed=1, mmff=True), confs(m, 4, seed=2)
    got = M.rmsd_matrix(m, refs, gens)
    want = best_rms_loop(m, refs, gens)
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert want.max() > 0.05  # distinct conformers: the comparison is not trivially all zeros


def test_rmsd_matrix_falls_back_to_capped_get_best_rms():
    m = mol(DRUGS["di-tert-butylphenol"])
    refs, gens = confs(m, 2, seed=3), confs(m, 2, seed=4)
    capped = M.rmsd_matrix(m, refs, gens, max_matches=4)
    np.testing.assert_allclose(capped, best_rms_loop(m, refs, gens, maxMatches=4), atol=1e-6)
    assert (capped >= M.rmsd_matrix(m, refs, gens) - 1e-9).all()  # fewer orderings: never better


def test_rmsd_is_symmetry_aware():
    """Swapping two equivalent atoms' coordinates (the methyls of an isopropyl) changes the
    plain RMSD, not the symmetry-aware one."""
    m = mol("CC(C)c1ccccc1")
    ref = confs(m, 1, seed=0, mmff=True)
    swapped = ref.copy()
    swapped[0, [0, 2]] = swapped[0, [2, 0]]
    heavy = [a.GetIdx() for a in m.GetAtoms() if a.GetAtomicNum() > 1]
    assert np.sqrt(((swapped[0, heavy] - ref[0, heavy]) ** 2).sum(-1).mean()) > 0.5
    assert M.rmsd_matrix(m, ref, swapped)[0, 0] < 1e-4


# ------------------------------------------------------------------- COV / AMR
def test_references_against_themselves_and_moved_copies():
    m = mol(DRUGS["naproxen"])
    refs = confs(m, 3, seed=5, mmff=True)
    for gens in (refs, np.stack([c @ rotation(k).T + np.array([3.0, -1.0, 7.0]) * k for k, c in enumerate(refs)])):
        s = M.score(m, refs, gens, delta=0.1)
        assert s["cov_r"] == s["cov_p"] == 1.0
        assert s["amr_r"] < 1e-4 and s["amr_p"] < 1e-4
        assert s["connectivity"] == 1.0 and s["chirality"] == 1.0 and s["clashes"] == 0.0
        assert s["bond_mae"] < 0.01  # against the mean over the references


def test_known_perturbation_gives_the_expected_rmsd():
    """A copy scaled by s about the heavy atoms' centroid: the best rotation is the identity,
    so its RMSD is (s - 1) x the heavy atoms' RMS distance to their centroid."""
    m = mol(DRUGS["naproxen"])
    ref = confs(m, 1, seed=6, mmff=True)
    heavy = np.array([a.GetAtomicNum() > 1 for a in m.GetAtoms()])
    centre = ref[0, heavy].mean(0)
    s = 1.1
    gen = (ref - centre) * s + centre
    expected = (s - 1) * np.sqrt(((ref[0, heavy] - centre) ** 2).sum(-1).mean())
    assert M.rmsd_matrix(m, ref, gen)[0, 0] == pytest.approx(expected, rel=1e-6)
    far = gen.copy()
    far[0, heavy] = (ref[0, heavy] - centre) * 1.5 + centre  # a second, worse conformer
    gens = np.concatenate([gen, far])
    above = M.score(m, ref, gens, delta=expected * 1.01)
    below = M.score(m, ref, gens, delta=expected * 0.99)
    assert above["cov_r"] == 1.0 and below["cov_r"] == 0.0
    assert above["amr_r"] == pytest.approx(expected, rel=1e-6)
    assert above["cov_p"] == 0.5  # the far conformer is near no reference
    assert above["amr_p"] == pytest.approx((expected + 5 * expected) / 2, rel=1e-6)


# ---------------------------------------------------------------------- stereo
def test_mirror_image_breaks_the_specified_centres():
    for name in ("naproxen", "morphine"):
        m = mol(DRUGS[name])
        c = confs(m, 3, seed=7)
        assert M.stereo_kept(m, c).all()
        assert not M.stereo_kept(m, c * np.array([-1.0, 1.0, 1.0])).any()
        assert M.score(m, c, c * np.array([-1.0, 1.0, 1.0]), 0.75)["chirality"] == 0.0
    flat = mol("CC(N)O")  # the centre is not specified: any handedness keeps it
    c = confs(flat, 2, seed=0)
    assert M.stereo_kept(flat, c * np.array([-1.0, 1.0, 1.0])).all()


def test_flipped_double_bond_breaks_the_specified_e_z():
    e, z = mol("C/C(=C\\c1ccccc1)C(=O)O"), mol("C/C(=C/c1ccccc1)C(=O)O")  # same atom order, E and Z
    assert [a.GetSymbol() for a in e.GetAtoms()] == [a.GetSymbol() for a in z.GetAtoms()]
    ce, cz = confs(e, 3, seed=0), confs(z, 3, seed=0)
    assert M.stereo_kept(e, ce).all() and M.stereo_kept(z, cz).all()
    assert not M.stereo_kept(e, cz).any() and not M.stereo_kept(z, ce).any()
    # mixed: one conformer of the wrong isomer among three
    assert M.score(e, ce, np.concatenate([ce[:2], cz[:1]]), 0.75)["chirality"] == pytest.approx(2 / 3)


def test_geometric_e_z_agrees_with_rdkit_3d_perception():
    for smi in ("F/C=C/F", "C/C=C\\CO", "OC/C(C)=C(/Cl)C", "O/N=C/c1ccccc1", "CC/C=C/C(=O)O"):
        m = mol(smi)
        _, quads, _ = M.specified_stereo(m)
        assert len(quads) == 1, smi
        for c in confs(m, 2, seed=1):
            m3 = with_conformers(m, [c])
            Chem.AssignStereochemistryFrom3D(m3)
            want = all(a.GetStereo() == b.GetStereo() for a, b in zip(m.GetBonds(), m3.GetBonds()) if a.GetStereo() != Chem.BondStereo.STEREONONE)
            assert M.stereo_kept(m, c[None])[0] == want, smi


# --------------------------------------------------------------------- clashes
def test_etkdg_mmff_conformers_of_drugs_have_no_clash():
    for name, smi in DRUGS.items():
        m = mol(smi)
        assert not M.has_clash(m, confs(m, 4, seed=11, mmff=True)).any(), name


def test_a_torsion_rotated_onto_the_molecule_clashes():
    """Pentane's two torsions set to 0 degrees (eclipsed twice, all-syn): its ends meet."""
    m = mol("CCCCC")
    c = confs(m, 1, seed=0, mmff=True)
    assert not M.has_clash(m, c)[0]
    m3 = with_conformers(m, c)
    conf = m3.GetConformer()
    rdMolTransforms.SetDihedralDeg(conf, 0, 1, 2, 3, 0.0)
    rdMolTransforms.SetDihedralDeg(conf, 1, 2, 3, 4, 0.0)
    bad = conf.GetPositions()
    assert np.linalg.norm(bad[0] - bad[4]) < 2.0
    assert M.has_clash(m, bad[None])[0]
    assert M.score(m, c, np.stack([c[0], bad]), 0.75)["clashes"] == 0.5
    # an atom pair 1 or 2 bonds apart never counts, however close
    i, j, limit = M.clash_pairs(m)
    hops = Chem.GetDistanceMatrix(m)
    assert (hops[i, j] >= 3).all() and len(i) == int((np.triu(hops, 1) >= 3).sum())


# --------------------------------------------------------------- evaluate_model
@pytest.fixture
def domain(tmp_path):
    from diffcore_molecule.domain import MoleculeDomain, MoleculeOptions

    path = tmp_path / "mols.smi"
    path.write_text("CCO ethanol\nC[C@H](N)C(=O)O alanine\nc1ccccc1O phenol\nC/C=C/CO crotyl\n")
    d = MoleculeDomain(MoleculeOptions(smiles=path, conformers=2, val_fraction=0.5, delta=0.75), workdir=tmp_path / "cache")
    d.setup()
    return d


def test_evaluate_model_reports_model_and_both_baselines(domain, tmp_path):
    graphs = [domain.graphs[i] for i in range(len(domain.graphs))]
    pause = 0.01

    def sample_fn(batch):  # stand-in for a model: each molecule's references, in data units, and a known wall time
        time.sleep(pause * len(batch["mol"]))
        x = torch.zeros(batch["shape"])
        for i, (g, k) in enumerate(zip(batch["mol"], batch["conformer"])):
            mg = batch["molecules"][g]
            x[i, : mg.num_atoms] = mg.coords[k % len(mg.coords)] / batch["coord_scale"]
        return x

    torch.manual_seed(0)
    out = M.evaluate_model(domain, graphs, sample_fn, tmp_path / "eval", batch_size=3)
    assert all(isinstance(v, float) for v in out.values())
    for prefix in ("", "etkdg_", "etkdg_mmff_"):
        for key in ("cov_r", "amr_r", "cov_p", "amr_p", "connectivity", "chirality", "clashes", "seconds_per_molecule"):
            assert prefix + key in out, prefix + key
    counts = [2 * len(g.coords) for g in graphs]  # eval_factor 2
    assert out["num_molecules"] == 4 and out["num_conformers"] == sum(counts) and out["delta"] == 0.75
    assert out["cov_r"] == 1.0 and out["amr_r"] < 1e-3 and out["chirality"] == 1.0 and out["clashes"] == 0.0
    assert out["etkdg_num_molecules"] == 4 and out["etkdg_mmff_chirality"] == 1.0 and out["etkdg_mmff_clashes"] == 0.0
    mean = pause * np.mean(counts)
    assert mean <= out["seconds_per_molecule"] < mean + 0.5
    assert 0 < out["etkdg_seconds_per_molecule"] < 5 and 0 < out["etkdg_mmff_seconds_per_molecule"] < 5
    rows = list(csv.DictReader(open(tmp_path / "eval" / "molecule_metrics.csv")))
    assert len(rows) == 4 and {"chirality", "clashes", "seconds_per_molecule", "etkdg_cov_r", "etkdg_mmff_amr_p"} <= set(rows[0])
    assert [int(r["generated"]) for r in rows] == counts
    for r, n in zip(rows, counts):  # each molecule's share of the batches' time: its conformers
        assert pause * n <= float(r["seconds_per_molecule"]) < pause * n + 0.5
    # the baselines' seed follows the sampling seed (diffcore evaluate --seed), reproducibly
    torch.manual_seed(1)
    s1 = M.baseline_seed(0)
    torch.manual_seed(0)
    assert M.baseline_seed(0) != s1
    again = M.evaluate_model(domain, graphs, sample_fn, tmp_path / "eval2", batch_size=3)
    assert {k: v for k, v in again.items() if "seconds" not in k} == {k: v for k, v in out.items() if "seconds" not in k}
