"""The molecule data pipeline on real drug-like input: salts, radicals, unknown elements,
bad lines, SDF records without hydrogens, the shipped drug-like sets, and the reference
ensembles of the classical search (MMFF94 minima, energy window, distinct, stereo kept)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

pytest.importorskip("rdkit")

from rdkit import Chem  # noqa: E402
from rdkit.Chem import AllChem, rdMolAlign  # noqa: E402

from diffcore.errors import UserError  # noqa: E402
from diffcore_molecule import data as D  # noqa: E402
from diffcore_molecule import druglike as G  # noqa: E402

RULES = D.Rules(max_atoms=200)  # the ten elements, hydrogens; room for 60 heavy atoms
# 2-amino-hex-4-en-1-ol-like: two specified stereocentres and an E double bond, 9 heavy atoms
STEREO = "C[C@@H](O)C/C=C/C[C@H](N)CO"


def _heavy(mol: Chem.Mol) -> int:
    return mol.GetNumHeavyAtoms()


# ------------------------------------------------------------------------ input rules
def test_elements_are_the_ten_and_charges_and_stereo_are_kept():
    assert D.DEFAULT_ELEMENTS == ("H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I")
    mol = D.from_smiles("C[N+](C)(C)CC(=O)[O-]", RULES)
    assert sorted(a.GetFormalCharge() for a in mol.GetAtoms() if a.GetFormalCharge()) == [-1, 1]
    mol = D.from_smiles(STEREO, RULES)
    assert Chem.MolToSmiles(Chem.RemoveHs(mol)) == Chem.MolToSmiles(Chem.MolFromSmiles(STEREO))
    assert "@" in D.to_graph("x", mol, RULES).smiles and "/" in D.to_graph("x", mol, RULES).smiles
    big = "CCOC(=O)c1ccc(NC(=O)c2ccc(OCc3ccc(Cl)cc3)c(OC)c2)cc1"
    assert _heavy(D.from_smiles(big, RULES)) == 31
    chain = "C" * 60
    assert _heavy(D.from_smiles(chain, D.Rules(max_atoms=200))) == 60  # 182 atoms with H


def test_salts_keep_the_largest_fragment_and_say_so(caplog):
    with caplog.at_level(logging.WARNING, logger="diffcore.molecule"):
        mol = D.from_smiles("CC(=O)[O-].[Na+]", RULES, "--smiles acetate")
        assert Chem.MolToSmiles(Chem.RemoveHs(mol)) == "CC(=O)[O-]"
        mol = D.from_smiles("Cl.CN(C)CCOC(c1ccccc1)c1ccccc1", RULES, "--smiles diphenhydramine-HCl")
        assert _heavy(mol) == 19 and "Cl" not in {a.GetSymbol() for a in mol.GetAtoms()}
    assert "--smiles acetate: 2 fragments" in caplog.text and "kept the largest" in caplog.text
    assert "--smiles diphenhydramine-HCl" in caplog.text


@pytest.mark.parametrize(
    "smiles, words",
    [
        ("[CH3]", ["radical", "[CH3]"]),
        ("CC[O]", ["radical", "CC[O]"]),
        ("CC[Se]C", ["unsupported element", "Se", "CC[Se]C"]),
        ("C[Si](C)(C)C", ["unsupported element", "Si"]),
        ("C1CC(", ["invalid SMILES", "C1CC("]),
        ("c1cccc1", ["invalid SMILES", "c1cccc1"]),
    ],
)
def test_bad_molecules_are_refused_naming_the_input(smiles, words):
    with pytest.raises(UserError) as err:
        D.from_smiles(smiles, RULES, f"--smiles {smiles!r}")
    assert isinstance(err.value, D.MoleculeError)
    text = str(err.value)
    assert "\n" not in text and f"--smiles {smiles!r}" in text
    for w in words:
        assert w in text


def test_a_bad_line_is_reported_by_number_and_the_good_lines_kept(tmp_path, caplog):
    path = tmp_path / "drugs.smi"
    path.write_text("CC(=O)Nc1ccc(O)cc1 paracetamol\nC1CC( broken\n[CH2]CC radical\n"
                    "CC(C)Cc1ccc(C(C)C(=O)O)cc1 ibuprofen\nC[Ge](C)C germanium\nClc1ccccc1 chlorobenzene\n")
    with caplog.at_level(logging.WARNING, logger="diffcore.molecule"):
        mols = D.read_smiles_file(path, RULES)
    assert [n for n, _ in mols] == ["paracetamol", "ibuprofen", "chlorobenzene"]
    assert f"{path}:2" in caplog.text and "invalid SMILES" in caplog.text
    assert f"{path}:3" in caplog.text and "radical" in caplog.text
    assert f"{path}:5" in caplog.text and "Ge" in caplog.text
    assert "skipped 3 bad line(s), kept 3" in caplog.text


def test_a_header_line_of_column_names_is_skipped_but_only_as_the_first_line(tmp_path, caplog):
    path = tmp_path / "with_header.smi"
    path.write_text("# from a spreadsheet\nSMILES\tName\nCCO ethanol\nSMILES again\n")
    with caplog.at_level(logging.WARNING, logger="diffcore.molecule"):
        mols = D.read_smiles_file(path, RULES)
    assert [n for n, _ in mols] == ["ethanol"]
    assert f"{path}:2" not in caplog.text and f"{path}:4" in caplog.text  # a later 'SMILES' line is a bad line


def test_a_molecule_etkdg_cannot_embed_is_skipped_naming_its_line(tmp_path, caplog):
    path = tmp_path / "mix.smi"
    path.write_text("CCO ethanol\n[C@H]12C[C@@H]1C2 impossible\nCC(=O)N acetamide\n")
    with caplog.at_level(logging.WARNING, logger="diffcore.molecule"):
        graphs = D.build(D.Source(smiles=path), RULES, conformers=2, seed=0, mmff=True, max_molecules=None,
                         workdir=None)
    assert [g.name for g in graphs] == ["ethanol", "acetamide"]
    assert f"{path}:2" in caplog.text and "could not embed" in caplog.text


def _write_sdf(path, mols):
    with Chem.SDWriter(str(path)) as w:
        for name, m in mols:
            m.SetProp("_Name", name)
            w.write(m)


def test_sdf_records_without_hydrogens_get_them_with_3d_coordinates(tmp_path, caplog):
    full = Chem.AddHs(Chem.MolFromSmiles("CC(=O)Nc1ccc(O)cc1"))
    AllChem.EmbedMolecule(full, randomSeed=7)
    AllChem.MMFFOptimizeMolecule(full)
    bare = Chem.RemoveHs(full)
    flat = Chem.MolFromSmiles("CCOC(=O)C")
    AllChem.Compute2DCoords(flat)
    path = tmp_path / "in.sdf"
    _write_sdf(path, [("para", bare), ("para2", Chem.Mol(bare)), ("ester", flat)])
    with caplog.at_level(logging.WARNING, logger="diffcore.molecule"):
        mols = dict(D.read_sdf(path, RULES))
    para = mols["para"]
    assert para.GetNumAtoms() == full.GetNumAtoms() and para.GetNumConformers() == 2
    pos = para.GetConformer().GetPositions()
    assert np.abs(pos[:, 2]).max() > 0.1  # 3D
    for b in para.GetBonds():
        if 1 in (b.GetBeginAtom().GetAtomicNum(), b.GetEndAtom().GetAtomicNum()):
            d = np.linalg.norm(pos[b.GetBeginAtomIdx()] - pos[b.GetEndAtomIdx()])
            assert 0.9 < d < 1.2  # a real X-H bond, placed in 3D
    assert np.allclose(pos[: bare.GetNumAtoms()], bare.GetConformer().GetPositions(), atol=1e-3)
    assert caplog.text.count("without hydrogens") == 1 and "2 3D record(s)" in caplog.text
    assert mols["ester"].GetNumConformers() == 0  # 2D: the graph only
    assert "without 3D coordinates (first: record 3)" in caplog.text


# ------------------------------------------------------------------- the shipped sets
def test_test_set_is_fixed_drug_like_and_disjoint_from_training():
    test = G.test_molecules()
    assert len(test) == 40 and [n for n, _ in test] == sorted(n for n, _ in test)
    assert [Chem.MolToSmiles(m) for _, m in test] == [Chem.MolToSmiles(m) for _, m in G.test_molecules()]
    sizes = [_heavy(m) for _, m in test]
    assert min(sizes) >= 17 and max(sizes) <= 35
    symbols = {a.GetSymbol() for _, m in test for a in m.GetAtoms()}
    assert {"S", "Cl", "F", "N", "O", "H"} <= symbols
    assert any(a.GetFormalCharge() for _, m in test for a in m.GetAtoms())
    assert all(len(Chem.GetMolFrags(m)) == 1 for _, m in test)
    assert all(any(a.GetAtomicNum() == 1 for a in m.GetAtoms()) for _, m in test)  # hydrogens added

    train = G.training_molecules(max_heavy=60)
    assert len(train) > 10_000
    sizes = np.array([_heavy(m) for _, m in train])
    assert sizes.min() >= 6 and sizes.max() <= 60
    test_keys = {k for _, m in test for k in G.keys(m)}
    train_keys = [G.keys(m) for _, m in train]
    assert not any(iso in test_keys or flat in test_keys for iso, flat in train_keys)
    assert len({iso for iso, _ in train_keys}) == len(train)  # deduplicated
    assert all(a.GetSymbol() in G.ELEMENTS and not a.GetNumRadicalElectrons() for _, m in train[::50]
               for a in m.GetAtoms())
    small = G.training_molecules(max_heavy=20, min_heavy=10)
    assert all(10 <= _heavy(m) <= 20 for _, m in small) and len(small) < len(train)


# ------------------------------------------------------------- reference ensembles
def test_references_are_distinct_mmff_minima_within_the_window_keeping_stereo(tmp_path):
    mol = D.from_smiles(STEREO, RULES)
    coords, energies = G.search(mol, 6, seed=3, oversample=3, energy_window=10.0, prune_rms=0.5, threads=1)
    assert 2 <= len(coords) <= 6 and coords.shape[1:] == (mol.GetNumAtoms(), 3)
    assert np.all(np.diff(energies) >= 0) and energies[-1] - energies[0] <= 10.0
    props = AllChem.MMFFGetMoleculeProperties(mol)
    m = Chem.Mol(mol)
    for c, e in zip(coords, energies):
        conf = Chem.Conformer(m.GetNumAtoms())
        for i, p in enumerate(c.tolist()):
            conf.SetAtomPosition(i, p)
        m.RemoveAllConformers()
        cid = m.AddConformer(conf, assignId=True)
        ff = AllChem.MMFFGetMoleculeForceField(m, props, confId=cid)
        assert abs(ff.CalcEnergy() - e) < 1e-3  # the energy reported is this conformer's
        ff.Minimize(maxIts=2000)
        assert e - ff.CalcEnergy() < 1e-3  # already at a local minimum
        probe = Chem.Mol(mol)
        probe.RemoveAllConformers()
        probe.AddConformer(Chem.Conformer(conf), assignId=True)
        Chem.AssignStereochemistryFrom3D(probe)
        got = Chem.MolToSmiles(Chem.RemoveHs(probe))
        assert got == Chem.MolToSmiles(Chem.MolFromSmiles(STEREO))  # R/S and E kept
    heavy = Chem.RemoveHs(mol)
    heavy.RemoveAllConformers()
    hidx = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    for c in coords:
        conf = Chem.Conformer(heavy.GetNumAtoms())
        for i, p in enumerate(c[hidx].tolist()):
            conf.SetAtomPosition(i, p)
        heavy.AddConformer(conf, assignId=True)
    for i in range(len(coords)):
        for j in range(i):
            assert rdMolAlign.GetBestRMS(Chem.Mol(heavy), heavy, i, j) >= 0.5
    again = G.search(mol, 6, seed=3, oversample=3, energy_window=10.0, prune_rms=0.5, threads=1)
    assert np.array_equal(again[0], coords)  # seeded
    both_cores = G.search(mol, 6, seed=3, oversample=3, energy_window=10.0, prune_rms=0.5, threads=0)
    assert np.allclose(both_cores[0], coords, atol=1e-6)  # and independent of the thread count


def test_a_molecule_etkdg_embeds_slowly_keeps_what_it_made_by_the_timeout(monkeypatch, caplog):
    """A strained PubChem molecule (an azirine ester; rdkit's ETKDG needs minutes for 15
    embeddings) stops at druglike.EMBED_TIMEOUT with what it has and a warning naming it,
    instead of stalling a whole build."""
    monkeypatch.setattr(G, "EMBED_TIMEOUT", 1)
    mol = D.from_smiles("CCN(CC)S(=O)(=O)C[C@@]12CC[C@H](C[C@H]1OC(=O)C1=NC1)C2(C)C", D.Rules(("H", "C", "N", "O", "S"), 200, True))
    with caplog.at_level("WARNING", logger="diffcore.molecule"):
        found = G.search(mol, 10, seed=0, oversample=3, threads=1, what="azirine")
    said = [r.getMessage() for r in caplog.records if "stopped after 1 s" in r.getMessage()]
    assert said and said[0].startswith("azirine:"), [r.getMessage() for r in caplog.records]
    assert found is None or 1 <= len(found[0]) < 10


def test_build_caches_references_and_energies(tmp_path, capfd):
    path = tmp_path / "mols.smi"
    path.write_text(f"{STEREO} stereo\nCCCCO butanol\n")
    kw = dict(conformers=3, seed=0, mmff=True, max_molecules=None, workdir=tmp_path / "cache")
    a = D.build(D.Source(smiles=path), RULES, **kw)
    assert "building reference conformers" in capfd.readouterr().err
    b = D.build(D.Source(smiles=path), RULES, **kw)
    assert "building reference conformers" not in capfd.readouterr().err
    assert len(list((tmp_path / "cache").glob("molecules-*.sdf"))) == 1
    for ga, gb in zip(a, b):
        assert ga.coords.shape == gb.coords.shape and 1 <= len(ga.coords) <= 3
        assert np.allclose(ga.coords.numpy(), gb.coords.numpy(), atol=1e-3)
        assert np.allclose(ga.energies.numpy(), gb.energies.numpy())
        assert ga.smiles == gb.smiles
    c = D.build(D.Source(smiles=path), RULES, **{**kw, "prune_rms": 1.0})  # another option: rebuilt
    assert len(list((tmp_path / "cache").glob("molecules-*.sdf"))) == 2 and len(c) == 2


def test_embed_keeps_its_plain_contract():
    mol = D.from_smiles("CCCCCO", RULES)
    plain = D.embed(mol, 4, seed=0, mmff=False)
    assert plain.shape == (4, mol.GetNumAtoms(), 3)
    assert np.abs(plain[0] - plain[1]).max() > 0.1  # distinct embeddings (even with seed 0)
    assert D.embed(Chem.AddHs(Chem.MolFromSmiles("[C@H]12C[C@@H]1C2")), 2, seed=0) is None
