"""Torsional diffusion for molecules: rotatable bonds, setting torsions, the network's symmetries,
the domain's layout, and the recipe end to end through the CLI on a drug with S and Cl."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("rdkit")

import torch  # noqa: E402
from rdkit import Chem  # noqa: E402
from rdkit.Chem import AllChem, rdMolTransforms  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from diffcore.cli import app  # noqa: E402
from diffcore_molecule import data as D  # noqa: E402
from diffcore_molecule import druglike as G  # noqa: E402
from diffcore_molecule.torsion_domain import TorsionDomain, TorsionOptions, collate_torsions, heavy_first, torsions_of  # noqa: E402
from diffcore_molecule.backbone import TorsionNet, TorsionNetOptions  # noqa: E402
from diffcore_molecule.torsions import dihedrals, rotatable_torsions, set_torsions  # noqa: E402
from diffcore_molecule.writer import decode  # noqa: E402

# a 25-heavy-atom drug-like molecule with S, Cl and a stereocentre
DRUG = "Clc1ccc(cc1)CN[C@@H](C)C1CCN(CC1)S(=O)(=O)c1cccs1"


def embedded(smiles: str, seed: int = 1) -> Chem.Mol:
    m = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(m, randomSeed=seed) == 0
    return m


@pytest.mark.parametrize("smiles,count", [("CCCC", 1), ("CC", 0), ("c1ccccc1-c1ccccc1", 1), ("C1CCCCC1", 0),
                                          ("CC#CC", 0), ("CCO", 0), ("CC(=O)NC", 1), ("CCCCC", 2)])
def test_rotatable_bonds(smiles, count):
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    quads, sides = rotatable_torsions(mol)
    assert quads.shape == (count, 4) and sides.shape == (count, mol.GetNumAtoms())
    for (a, b, c, d), side in zip(quads.tolist(), sides):
        assert mol.GetBondBetweenAtoms(b, c) is not None and side[c] and not side[b] and side[d] and not side[a]
        assert int(side.sum()) <= mol.GetNumAtoms() - int(side.sum())  # the smaller side turns


def test_set_torsions_sets_every_angle_and_keeps_local_structure_and_chirality():
    mol = embedded(DRUG)
    quads, sides = rotatable_torsions(mol)
    assert len(quads) >= 5
    pos = torch.tensor(mol.GetConformer().GetPositions())[None]
    conf = mol.GetConformer()
    ref = torch.tensor([rdMolTransforms.GetDihedralRad(conf, *map(int, q)) for q in quads], dtype=torch.float64)
    assert torch.allclose(dihedrals(pos, quads[None])[0], ref, atol=1e-6)  # rdkit's dihedral convention
    target = torch.rand(1, len(quads), generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 * math.pi - math.pi
    new = set_torsions(pos, quads[None], sides[None], target)
    err = torch.remainder(dihedrals(new, quads[None]) - target + math.pi, 2 * math.pi) - math.pi
    assert float(err.abs().max()) < 1e-9
    bonds = torch.tensor([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()])
    length = lambda p: (p[0, bonds[:, 0]] - p[0, bonds[:, 1]]).norm(dim=-1)  # noqa: E731
    assert torch.allclose(length(new), length(pos), atol=1e-9)
    angles = [(n1.GetIdx(), a.GetIdx(), n2.GetIdx()) for a in mol.GetAtoms() for n1 in a.GetNeighbors() for n2 in a.GetNeighbors()
              if n1.GetIdx() < n2.GetIdx()]
    new_mol = Chem.Mol(mol)
    for i, p in enumerate(new[0].tolist()):
        new_mol.GetConformer().SetAtomPosition(i, p)
    for i, j, k in angles:
        assert abs(rdMolTransforms.GetAngleRad(new_mol.GetConformer(), i, j, k) - rdMolTransforms.GetAngleRad(conf, i, j, k)) < 1e-9
    Chem.AssignStereochemistryFrom3D(new_mol)
    assert Chem.FindMolChiralCenters(new_mol) == Chem.FindMolChiralCenters(Chem.MolFromSmiles(DRUG)) == [(9, "S")]


def _batch(smiles_list, seed=0):
    rules = D.Rules(elements=("H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I"), max_atoms=200)
    items = []
    for k, s in enumerate(smiles_list):
        mol = embedded(s, seed + k)
        mg = heavy_first(D.to_graph(s, mol, rules, mol.GetConformer().GetPositions()[None]))
        tr = torsions_of(mg)
        items.append({"x": dihedrals(mg.coords[0], tr.quads), "cond": {"atoms": mg.atoms, "pairs": mg.pairs, "pos0": mg.coords[0],
                                                                       "quads": tr.quads, "sides": tr.sides, "heavy": tr.heavy}})
    return collate_torsions(items), rules


def test_network_is_periodic_invariant_to_rigid_motions_and_odd_under_reflection():
    torch.manual_seed(0)
    batch, rules = _batch([DRUG, "CCCCOc1ccccc1C(=O)N"])
    net = TorsionNet(D.atom_feature_dim(len(rules.elements)), D.PAIR_FEATURE_DIM, TorsionNetOptions(hidden=16, layers=2)).double()
    for p in net.force[-1].parameters():  # the output layer starts at zero: give it weights
        torch.nn.init.normal_(p, std=0.5)
    cond = {k: (v.double() if v.is_floating_point() else v) for k, v in batch["cond"].items()}
    x = torch.randn(batch["x"].shape, dtype=torch.float64) * 2
    t = torch.tensor([0.3, 0.7])
    out = net(x, t, cond)
    assert out.abs().max() > 1e-3 and bool((out[batch["mask"] == 0] == 0).all())
    assert torch.allclose(net(x + 2 * math.pi * torch.randint(-2, 3, x.shape).double(), t, cond), out, atol=1e-8)  # periodic
    q = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0]
    q = q * torch.sign(torch.linalg.det(q))  # a proper rotation
    moved = dict(cond, pos0=(cond["pos0"] @ q.T + torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)) * cond["atom_mask"][..., None])
    assert torch.allclose(net(x, t, moved), out, atol=1e-8)
    mirror = dict(cond, pos0=cond["pos0"] * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    # the mirror image of the conformer with torsions x has torsions -x: the score flips sign
    assert torch.allclose(net(-x, t, mirror), -out, atol=1e-8)


def test_decoding_the_reference_torsions_gives_back_the_reference():
    batch, _ = _batch([DRUG])
    batch.update(mol=[0], molecules=[type("G", (), {"num_atoms": batch["cond"]["pos0"].shape[1], "mol": Chem.AddHs(Chem.MolFromSmiles(DRUG))})()],
                 coord_scale=1.0)
    (_, coords, ok), = decode(batch["x"], batch)
    assert np.allclose(coords, batch["cond"]["pos0"][0].numpy(), atol=1e-5) and ok


def test_domain_has_the_torus_period_and_iid_noise():
    assert TorsionDomain.period == pytest.approx(2 * math.pi)
    batch, _ = _batch([DRUG, "CCCC"])
    eps = TorsionDomain().noise(batch["x"], batch, torch.Generator().manual_seed(0))
    assert bool((eps[batch["mask"] == 0] == 0).all()) and float(eps[batch["mask"] == 1].abs().sum()) > 0


# ----------------------------------------------------------------- the CLI
TINY = ["--set", "training.max_steps=3", "--set", "training.batch_size=4", "--set", "training.preview_num=1",
        "--set", "training.checkpoint_every=0", "--set", "sampling.steps=15", "--set", "data.conformers=2",
        "--set", "backbone.hidden=16", "--set", "backbone.layers=1", "--no-progress"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("torsion")
    smi = tmp / "mols.smi"
    smi.write_text("CCCCO butanol\nCCOC(=O)CC ester\nc1ccccc1CCN phenethylamine\nCC(C)CC(=O)O acid\nCCN(CC)CCO amino\n")
    res = CliRunner().invoke(app, ["train", "--plugin", "molecule-coords", "--out", str(tmp / "run"), "--set", f"data.smiles={smi}", *TINY])
    assert res.exit_code == 0, res.output
    return tmp / "run"


def test_cli_train_then_sample_a_drug_with_s_and_cl_keeps_its_chirality(run, tmp_path):
    out = tmp_path / "s"
    res = CliRunner().invoke(app, ["sample", "--run", str(run), "--smiles", DRUG, "--num", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    mols = list(Chem.SDMolSupplier(str(out / "smiles-1.sdf"), removeHs=False))
    assert len(mols) == 3
    want = Chem.FindMolChiralCenters(Chem.MolFromSmiles(DRUG))
    for m in mols:
        assert m is not None and m.GetNumHeavyAtoms() == 25
        Chem.AssignStereochemistryFrom3D(m)
        assert Chem.FindMolChiralCenters(Chem.RemoveHs(m)) == want


def test_cli_smiles_with_a_name_names_its_file(run, tmp_path):
    out = tmp_path / "s"
    res = CliRunner().invoke(app, ["sample", "--run", str(run), "--smiles", "CCOC(=O)c1ccccc1 ethyl benzoate",
                                   "--smiles", "CCCCO", "--num", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.glob("*.sdf")) == ["ethyl_benzoate.sdf", "smiles-2.sdf"]
    (m,) = Chem.SDMolSupplier(str(out / "ethyl_benzoate.sdf"), removeHs=False)
    assert m.GetProp("_Name") == "ethyl benzoate" and m.GetNumHeavyAtoms() == 11


def test_a_molecule_above_the_default_training_size_is_warned(caplog, tmp_path):
    from diffcore_molecule.domain import MoleculeSampleOptions

    ask = MoleculeSampleOptions(smiles=["C" * 40, "CCCCO"])  # 40 heavy atoms, more than data.max_heavy = 35
    TorsionDomain(TorsionOptions()).requested(ask)
    warned = [r.getMessage() for r in caplog.records if "data.max_heavy" in r.getMessage()]
    assert len(warned) == 1 and "40 heavy atoms" in warned[0] and "smiles-1" in warned[0]
    caplog.clear()  # a run on the user's own molecules is not filtered by size: nothing to compare with
    TorsionDomain(TorsionOptions(smiles=str(tmp_path / "own.smi"))).requested(ask)
    assert not [r for r in caplog.records if "data.max_heavy" in r.getMessage()]


def test_unspecified_stereo_is_warned_once_per_molecule_with_what_is_open(caplog):
    from diffcore_molecule.domain import MoleculeSampleOptions

    ask = MoleculeSampleOptions(smiles=["CC(C)Cc1ccc(C(C)C(=O)O)cc1 ibuprofen", "CC(N)C(O)CC=CC open", "CCC=CC bond",
                                        "C[C@H](N)[C@@H](O)C/C=C/C closed", "CCCCO", "C[NH+](CC)CCC amine"])
    TorsionDomain(TorsionOptions()).requested(ask)
    warned = [r.getMessage() for r in caplog.records if "unspecified" in r.getMessage()]
    assert warned == [
        "ibuprofen: 1 stereocentre unspecified: each conformer gets whichever ETKDG draws (R in some, S in others); "
        "specify it in the SMILES (@/@@) to fix it",
        "open: 2 stereocentres and 1 double bond unspecified: each conformer gets whichever ETKDG draws (R in some, S in "
        "others; E in some, Z in others); specify them in the SMILES (@/@@ and / and \\) to fix it",
        "bond: 1 double bond unspecified: each conformer gets whichever ETKDG draws (E in some, Z in others); specify it "
        "in the SMILES (/ and \\) to fix it",
    ]  # a protonated amine's N (its proton exchanges) is no stereocentre
    caplog.clear()
    domain = TorsionDomain(TorsionOptions())
    domain.held_out_smiles = [("test-ligand", "CC(N)C(O)CC=CC")]  # as a sampled run restores them
    assert len(domain.requested(MoleculeSampleOptions(held_out=1))) == 1  # held out: not the user's to specify
    assert not [r for r in caplog.records if "unspecified" in r.getMessage()]


def test_cli_smiles_file_gives_each_bad_line_its_message_and_samples_the_rest(run, tmp_path, caplog):
    smi = tmp_path / "in.smi"
    smi.write_text("CC(=O)Nc1ccc(O)cc1 paracetamol\nC1CC( broken\nC[Ge](C)C germane\nC[CH2] radical\n"
                   "[Na+].[O-]C(=O)c1ccccc1O salt\n[C@H]12C[C@@H]1C2 impossible\n")
    out = tmp_path / "s"
    with caplog.at_level("WARNING", logger="diffcore.molecule"):  # the CLI prints these lines on stderr
        res = CliRunner().invoke(app, ["sample", "--run", str(run), "--smiles-file", str(smi), "--num", "2", "--out", str(out)])
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    assert sorted(p.name for p in out.glob("*.sdf")) == ["paracetamol.sdf", "salt.sdf"]
    for words in ((f"{smi}:2", "invalid SMILES"), (f"{smi}:3", "Ge"), (f"{smi}:4", "radical"), (f"{smi}:5", "largest"),
                  (f"{smi}:6", "cannot embed")):
        assert any(all(w in line for w in words) for line in caplog.text.splitlines()), (words, caplog.text)
    salt = next(iter(Chem.SDMolSupplier(str(out / "salt.sdf"), removeHs=False)))
    assert "Na" not in Chem.MolToSmiles(salt)


def test_config_file_lists_exactly_the_recipe_defaults():
    from pathlib import Path

    from diffcore import config

    path = Path(__file__).resolve().parents[2] / "configs" / "molecule-coords.yaml"
    defaults = config.resolve(plugin="molecule-coords").config.model_dump()
    assert config.resolve(config_file=path).config.model_dump() == defaults
    raw = config.load_yaml(path)
    for section in ("data", "backbone"):
        assert set(raw[section]) == set(defaults[section]), section


def test_a_torus_domain_refuses_a_shrinking_schedule():
    res = CliRunner().invoke(app, ["train", "--plugin", "molecule-coords", "--set", "diffusion.schedule=cosine", "--out", "unused"])
    assert res.exit_code == 2 and "alpha = 1" in res.output and "diffusion.schedule=ve" in res.output and "Traceback" not in res.output


def test_relax_removes_steric_overlap_and_leaves_a_nearly_clash_free_conformer_nearly_alone():
    from diffcore_molecule.metrics import has_clash
    from diffcore_molecule.torsion_domain import clash_radii, relax

    batch, _ = _batch([DRUG])
    mol = Chem.AddHs(Chem.MolFromSmiles(DRUG))
    n = 6
    cond = {k: v.expand(n, *v.shape[1:]) for k, v in batch["cond"].items()}
    cond["clash_r0"] = clash_radii(mol)[None].expand(n, -1, -1)
    x = torch.rand(n, batch["x"].shape[1], generator=torch.Generator().manual_seed(0)) * 2 * math.pi - math.pi

    def overlap(angles):
        pos = set_torsions(cond["pos0"].double(), cond["quads"], cond["sides"], angles.double(), cond["tmask"])
        return torch.relu(cond["clash_r0"].double() - torch.cdist(pos, pos)).pow(2).sum((1, 2)), pos

    before, pos_before = overlap(x)
    after, pos_after = overlap(relax(x, cond, 150))
    assert float(before.max()) > 1.0 and float(after.max()) < 0.05 * float(before.max())
    assert not has_clash(mol, pos_after.numpy()).any() or has_clash(mol, pos_before.numpy()).sum() > has_clash(mol, pos_after.numpy()).sum()
    ref = batch["x"].expand(n, -1)  # the embedding's own torsions: ETKDG's conformer barely overlaps (8e-4 A^2)
    assert float(overlap(ref)[0].max()) < 1e-2
    assert float((relax(ref, cond, 50) - ref).abs().max()) < 0.1  # and stays nearly where it is


def test_training_examples_set_the_reference_torsions_on_an_etkdg_local_structure(tmp_path):
    """Conformer matching: x0 is the reference's torsions, pos0 an ETKDG embedding (not the
    reference), and the conformer the network builds from x0 has the reference's torsions."""
    from diffcore_molecule.torsion_domain import TorsionOptions

    smi = tmp_path / "m.smi"
    smi.write_text("CCCCOc1ccccc1 butoxybenzene\nCCN(CC)C(=O)c1ccccc1 amide\nCCCCCCO hexanol\n")
    dom = TorsionDomain(TorsionOptions(smiles=smi, conformers=2, val_fraction=0.34, local_structure="etkdg"), workdir=tmp_path / "cache")
    ds = dom.train_dataset()
    assert list((tmp_path / "cache").glob("local-structures-*.pt"))  # cached beside the references
    for i in range(len(ds)):
        item = ds[i]
        g, k = ds.index[i]
        ref = ds.graphs[g].coords[k]
        quads, sides = item["cond"]["quads"], item["cond"]["sides"]
        if len(quads) == 0:
            continue
        assert not torch.allclose(item["cond"]["pos0"], ref, atol=1e-2)
        built = set_torsions(item["cond"]["pos0"][None].double(), quads[None], sides[None], item["x"][None].double())
        err = torch.remainder(dihedrals(built, quads[None])[0] - dihedrals(ref[None].double(), quads[None])[0] + math.pi, 2 * math.pi) - math.pi
        assert float(err.abs().max()) < 1e-5


def test_a_torus_domain_refuses_an_x0_prediction():
    res = CliRunner().invoke(app, ["train", "--plugin", "molecule-coords", "--set", "diffusion.prediction=x0", "--out", "unused"])
    assert res.exit_code == 2 and "diffusion.prediction" in res.output and "eps" in res.output and "Traceback" not in res.output


def test_an_sdf_given_as_a_smiles_file_is_refused_with_one_line(run, tmp_path):
    sdf = tmp_path / "m.sdf"
    with Chem.SDWriter(str(sdf)) as w:
        w.write(embedded("CCO"))
    res = CliRunner().invoke(app, ["sample", "--run", str(run), "--smiles-file", str(sdf), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "looks like an SDF file" in res.output and "Traceback" not in res.output, res.output


def test_held_out_molecules_of_a_trained_run_need_no_training_references(monkeypatch, tmp_path):
    """Evaluating with the fixed test set builds the test ligands alone (heavy atoms first),
    never the training set's reference ensembles."""
    mol = Chem.AddHs(Chem.MolFromSmiles("OCC(N)c1ccccc1"))
    order = list(range(mol.GetNumAtoms()))
    order = order[-3:] + order[:-3]  # hydrogens first: heavy_first must reorder
    mol = Chem.RenumberAtoms(mol, order)
    AllChem.EmbedMolecule(mol, randomSeed=1)
    graph = D.to_graph("ligand", mol, D.Rules(("H", "C", "N", "O"), 200, True), coords=mol.GetConformer().GetPositions()[None])

    def no_training_set(*args, **kwargs):
        raise AssertionError("the training references were built")

    monkeypatch.setattr(D, "build", no_training_set)
    monkeypatch.setattr(D, "build_test", lambda *args, **kwargs: [graph])
    domain = TorsionDomain(TorsionOptions(test_set=True), workdir=tmp_path)
    (got,) = domain.held_out_graphs()
    assert domain.graphs is None
    z = [a.GetAtomicNum() for a in got.mol.GetAtoms()]
    assert z == sorted(z, key=lambda n: n == 1) and z[0] > 1 and got.coords.shape == graph.coords.shape
    domain = TorsionDomain(TorsionOptions(test_set=True, smiles=str(tmp_path / "x.smi")), workdir=tmp_path)
    with pytest.raises(AssertionError, match="training references"):  # a user's file: the held-out part is its split
        domain.held_out_graphs()


def test_mmff_local_structures_are_force_field_minima_with_the_input_stereo():
    """sampling_local_structure='mmff': the embeddings are minimised as the training
    references are (MMFF94 gradient ~0 where plain ETKDG's is not), keeping the stereocentre."""
    from diffcore_molecule.torsion_domain import local_structures, minimised

    mol = D.from_smiles(DRUG, D.Rules(("H", "C", "N", "O", "S", "Cl"), 200, True))
    props = AllChem.MMFFGetMoleculeProperties(mol)

    def grad_norms(pos):
        m = Chem.Mol(mol)
        out = []
        for p in pos:
            m.RemoveAllConformers()
            conf = Chem.Conformer(m.GetNumAtoms())
            for i, q in enumerate(p.tolist()):
                conf.SetAtomPosition(i, q)
            m.AddConformer(conf, assignId=True)
            out.append(np.linalg.norm(AllChem.MMFFGetMoleculeForceField(m, props).CalcGrad()))
            Chem.AssignStereochemistryFrom3D(m)
            assert Chem.FindMolChiralCenters(Chem.RemoveHs(m)) == Chem.FindMolChiralCenters(Chem.MolFromSmiles(DRUG))
        return np.array(out)

    plain = local_structures(mol, 3, seed=5)
    done = minimised(mol, plain)
    assert plain.shape == done.shape == (3, mol.GetNumAtoms(), 3)
    g_plain, g_min = grad_norms(plain), grad_norms(done)
    assert g_min.max() < 0.05 * g_plain.min(), (g_plain, g_min)


@pytest.mark.parametrize("mode", ["etkdg", "mmff", "mmff-conformer"])
def test_sampling_local_structure_modes_set_the_local_structure_and_the_start(mode):
    """'etkdg': both from the raw embedding; 'mmff': a minimised local structure, the start's
    torsions the raw embedding's; 'mmff-conformer': both from the minimised conformer."""
    from diffcore_molecule.torsion_domain import local_structures, minimised

    smiles = "OCC(N)c1ccc(CCC(=O)O)cc1"
    graph = heavy_first(D.to_graph("m", D.from_smiles(smiles, D.Rules(("H", "C", "N", "O"), 200, True)), D.Rules(("H", "C", "N", "O"), 200, True)))
    domain = TorsionDomain(TorsionOptions(sampling_local_structure=mode, init_strength=0.5, sampling_pool=1))
    torch.manual_seed(3)
    (batch,) = list(domain.graph_batches([graph], 2, 8))
    torch.manual_seed(3)
    base = int(torch.randint(0, 2**31 - 1, (1,)))
    raw = local_structures(graph.mol, 2, base)
    done = minimised(graph.mol, raw) if mode != "etkdg" else raw
    c = batch["cond"]
    n = graph.mol.GetNumAtoms()
    assert torch.allclose(c["pos0"][:, :n].double(), torch.as_tensor(done), atol=1e-4)
    start = done if mode == "mmff-conformer" else raw
    want = dihedrals(torch.as_tensor(start, dtype=torch.float32), c["quads"]) * c["tmask"]
    assert torch.allclose(batch["init"], want, atol=1e-4) and batch["strength"] == 0.5
    if mode == "mmff":  # the local structure moved, the start did not follow it
        assert not torch.allclose(dihedrals(c["pos0"], c["quads"]) * c["tmask"], batch["init"], atol=1e-2)


def test_sampling_pool_starts_from_the_lowest_energy_distinct_minima_of_a_larger_pool():
    """data.sampling_pool = 3: 3 x K embeddings are minimised; the K starts are pool minima, at
    least sampling_prune apart, and no pool minimum of lower energy than a chosen one was left
    out unless it duplicates a chosen one of lower energy (the references' recipe)."""
    from rdkit.Chem import rdMolAlign

    from diffcore_molecule.torsion_domain import local_structures, minimised
    from diffcore_molecule.writer import with_conformers

    rules = D.Rules(("H", "C", "N", "O", "S", "Cl"), 200, True)
    graph = heavy_first(D.to_graph("drug", D.from_smiles(DRUG, rules), rules))
    mol, k = graph.mol, 4
    domain = TorsionDomain(TorsionOptions(sampling_pool=3, sampling_prune=0.5))
    torch.manual_seed(3)
    (batch,) = list(domain.graph_batches([graph], k, 16))
    torch.manual_seed(3)
    pool, energy = minimised(mol, local_structures(mol, 3 * k, int(torch.randint(0, 2**31 - 1, (1,)))), energies=True)
    n = mol.GetNumAtoms()
    chosen = []
    for row in batch["cond"]["pos0"][:, :n].double().numpy():
        dist = np.abs(pool - row).max(axis=(1, 2))
        assert dist.min() < 1e-3  # a minimised conformer of the pool
        chosen.append(int(dist.argmin()))
    assert len(set(chosen)) == k
    heavy = Chem.RemoveHs(with_conformers(mol, pool))

    def rmsd(i, j):
        return rdMolAlign.GetBestRMS(Chem.Mol(heavy), heavy, i, j)

    assert all(rmsd(i, j) >= 0.5 for a, i in enumerate(chosen) for j in chosen[:a])
    top = max(energy[c] for c in chosen)
    for j in set(range(3 * k)) - set(chosen):
        if energy[j] < top:  # skipped: it duplicates a chosen minimum of lower energy
            assert any(energy[c] <= energy[j] and rmsd(j, c) < 0.5 for c in chosen), j
    batch_start = dihedrals(batch["cond"]["pos0"], batch["cond"]["quads"]) * batch["cond"]["tmask"]
    assert torch.allclose(batch["init"], batch_start, atol=1e-4)  # mmff-conformer: the start is the chosen minimum


def test_pool_choice_prunes_duplicates_fills_in_energy_order_and_keeps_the_order_without_energies():
    """pool_choice on a built pool: exact duplicates (as local_structures makes when rdkit returns
    too few embeddings) are skipped, then filled back in energy order; a stereo-changed
    conformer (energy +inf) comes last, after duplicates too; without a force field (energies None) the pool's order
    stands, pruned the same way."""
    from rdkit.Chem import rdMolAlign

    from diffcore_molecule.torsion_domain import local_structures, minimised, pool_choice
    from diffcore_molecule.writer import with_conformers

    rules = D.Rules(("H", "C", "N", "O", "S", "Cl"), 200, True)
    mol = heavy_first(D.to_graph("drug", D.from_smiles(DRUG, rules), rules)).mol
    two = minimised(mol, local_structures(mol, 8, seed=11))
    heavy = Chem.RemoveHs(with_conformers(mol, two))

    a, b = next((i, j) for i in range(8) for j in range(i) if rdMolAlign.GetBestRMS(Chem.Mol(heavy), heavy, i, j) > 0.5)
    pool = np.stack([two[a], two[a], two[b], two[a], two[b]])  # two distinct minima, three copies of one
    energy = np.array([3.0, 1.0, 2.0, np.inf, 0.5])
    assert pool_choice(mol, pool, energy, 2, 0.5).tolist() == [4, 1]  # lowest first; 2 duplicates 4
    assert pool_choice(mol, pool, energy, 4, 0.5).tolist() == [4, 1, 2, 0]  # topped up in energy order, +inf last
    assert pool_choice(mol, pool, energy, 5, 0.5).tolist() == [4, 1, 2, 0, 3]
    assert pool_choice(mol, pool, None, 3, 0.5).tolist() == [0, 2, 1]  # no energies: the pool's order, pruned, filled
    assert pool_choice(mol, pool, energy, 3, 0.0001).tolist() == [4, 1, 2]  # a tiny threshold: only exact copies merge
    odd = np.stack([two[a], two[a], two[b]])  # the one distinct conformer kept unminimised (stereo changed)
    assert pool_choice(mol, odd, np.array([1.0, 2.0, np.inf]), 2, 0.5).tolist() == [0, 1]  # after the duplicate
    assert pool_choice(mol, odd, np.array([1.0, 2.0, np.inf]), 3, 0.5).tolist() == [0, 1, 2]


def test_sampling_pool_needs_a_minimised_start():
    assert TorsionOptions().sampling_pool == 3  # the default: chosen on the tuning molecules
    with pytest.raises(ValueError, match="sampling_pool"):
        TorsionOptions(sampling_pool=3, sampling_local_structure="etkdg")
    etkdg = TorsionOptions(sampling_local_structure="etkdg")
    assert etkdg.sampling_pool == 1  # not asked for: no pool there, and a saved config says so
    assert TorsionOptions.model_validate(etkdg.model_dump()).sampling_pool == 1  # it loads again
    graph = heavy_first(D.to_graph("m", D.from_smiles("OCC(N)c1ccc(CCC(=O)O)cc1", D.Rules(("H", "C", "N", "O"), 200, True)),
                                   D.Rules(("H", "C", "N", "O"), 200, True)))
    from diffcore_molecule.torsion_domain import local_structures

    torch.manual_seed(3)
    (batch,) = list(TorsionDomain(etkdg).graph_batches([graph], 2, 8))
    torch.manual_seed(3)
    raw = local_structures(graph.mol, 2, int(torch.randint(0, 2**31 - 1, (1,))))
    assert torch.allclose(batch["cond"]["pos0"][:, : graph.mol.GetNumAtoms()].double(), torch.as_tensor(raw), atol=1e-4)
    saved = TorsionOptions().model_dump()
    del saved["sampling_pool"]
    assert TorsionOptions.model_validate(saved).sampling_pool == 1  # a run saved before the option: as it sampled


def test_sampling_minimise_lands_every_sample_on_a_force_field_minimum():
    """data.sampling_minimise: decoded conformers are MMFF94 minima (gradient ~0, where the same
    torsions on raw ETKDG local structures are not), with the input's stereo; off: unchanged."""
    from diffcore_molecule.writer import decode

    smiles = "OC[C@H](N)c1ccc(CCC(=O)O)cc1"
    rules = D.Rules(("H", "C", "N", "O"), 200, True)
    graph = heavy_first(D.to_graph("m", D.from_smiles(smiles, rules), rules))
    mol = graph.mol
    props = AllChem.MMFFGetMoleculeProperties(mol)
    got = {}
    for flag in (False, True):
        domain = TorsionDomain(TorsionOptions(sampling_local_structure="etkdg", init_strength=0.5, sampling_minimise=flag))
        torch.manual_seed(3)
        (batch,) = list(domain.graph_batches([graph], 3, 8))
        assert batch["minimise"] is flag
        batch["coord_scale"] = 1.0
        got[flag] = [c for _, c, _ in decode(batch["init"], batch)]
    for flag, confs in got.items():
        for c in confs:
            m = Chem.Mol(mol)
            m.RemoveAllConformers()
            conf = Chem.Conformer(m.GetNumAtoms())
            for i, q in enumerate(c.tolist()):
                conf.SetAtomPosition(i, q)
            m.AddConformer(conf, assignId=True)
            g = np.linalg.norm(AllChem.MMFFGetMoleculeForceField(m, props).CalcGrad())
            assert (g < 0.05) if flag else (g > 1.0), (flag, g)
            Chem.AssignStereochemistryFrom3D(m)
            assert Chem.FindMolChiralCenters(Chem.RemoveHs(m)) == Chem.FindMolChiralCenters(Chem.MolFromSmiles(smiles))
    assert TorsionOptions.model_validate({}).sampling_minimise is True  # a new run's default (docs/domains/molecules.md)
    saved = TorsionOptions().model_dump()
    del saved["sampling_minimise"]
    assert TorsionOptions.model_validate(saved).sampling_minimise is False  # a run saved before the option: as it sampled


def test_sampling_dielectric_minimises_on_the_screened_surface():
    """data.sampling_dielectric_model / sampling_dielectric: the pool and the samples are minima of
    MMFF94 with epsilon = 4r (gradient ~0 there, not in vacuum, for a zwitterion whose charges
    feel the difference), and the pool is chosen by that surface's energy."""
    from diffcore_molecule.torsion_domain import local_structures, minimised

    smiles = "[NH3+]CC[C@H](O)c1ccc(CCC(=O)[O-])cc1"
    rules = D.Rules(("H", "C", "N", "O"), 200, True)
    graph = heavy_first(D.to_graph("m", D.from_smiles(smiles, rules), rules))
    mol = graph.mol

    def grad(c, model, eps):
        props = AllChem.MMFFGetMoleculeProperties(mol)
        props.SetMMFFDielectricModel(G.DIELECTRIC_MODELS[model])
        props.SetMMFFDielectricConstant(eps)
        m = Chem.Mol(mol)
        m.RemoveAllConformers()
        conf = Chem.Conformer(m.GetNumAtoms())
        for i, q in enumerate(np.asarray(c).tolist()):
            conf.SetAtomPosition(i, q)
        m.AddConformer(conf, assignId=True)
        field = AllChem.MMFFGetMoleculeForceField(m, props)
        return np.linalg.norm(field.CalcGrad()), field.CalcEnergy()

    domain = TorsionDomain(TorsionOptions(sampling_dielectric_model="distance", sampling_dielectric=4.0, init_strength=0.5,
                                          sampling_local_structure="mmff-conformer", sampling_pool=3, sampling_minimise=True))
    torch.manual_seed(3)
    (batch,) = list(domain.graph_batches([graph], 3, 8))
    assert batch["dielectric"] == ("distance", 4.0)
    starts = batch["cond"]["pos0"][:, : mol.GetNumAtoms()].double().numpy()
    batch["coord_scale"] = 1.0
    for c in [*starts, *(c for _, c, _ in decode(batch["init"], batch))]:
        assert grad(c, "distance", 4.0)[0] < 0.05 and grad(c, "constant", 1.0)[0] > 1.0
    raw = local_structures(mol, 9, 11)
    pos, energy = minimised(mol, raw, energies=True, dielectric=("distance", 4.0))
    assert np.allclose(energy, [grad(c, "distance", 4.0)[1] for c in pos], atol=1e-4)  # the energies the pool ranks by
    with pytest.raises(ValueError):
        TorsionOptions(sampling_dielectric=0.5)
    with pytest.raises(ValueError, match="there are none"):  # nothing minimised: the setting would do nothing
        TorsionOptions(sampling_local_structure="etkdg", sampling_minimise=False, sampling_dielectric_model="distance")
    saved = TorsionOptions().model_dump()
    del saved["sampling_dielectric_model"], saved["sampling_dielectric"]
    assert (TorsionOptions.model_validate(saved).sampling_dielectric_model, TorsionOptions.model_validate(saved).sampling_dielectric) == G.VACUUM
    # the default is rdkit's own MMFF94 optimisation, to the last digit (what runs saved before the option did)
    a, b = (Chem.Mol(mol) for _ in range(2))
    for m in (a, b):
        m.RemoveAllConformers()
        for c in raw[:3]:
            conf = Chem.Conformer(m.GetNumAtoms())
            for i, q in enumerate(c.tolist()):
                conf.SetAtomPosition(i, q)
            m.AddConformer(conf, assignId=True)
    assert G.minimise(a) == [e for _, e in AllChem.MMFFOptimizeMoleculeConfs(b, maxIters=2000)]
    assert all(np.array_equal(x.GetPositions(), y.GetPositions()) for x, y in zip(a.GetConformers(), b.GetConformers()))


def test_a_run_saved_before_sampling_local_structure_keeps_raw_etkdg_with_a_warning(caplog):
    saved = TorsionOptions().model_dump()
    for later in ("sampling_local_structure", "sampling_minimise", "sampling_pool", "sampling_prune"):  # options added since
        del saved[later]
    saved["init_strength"] = 0.6
    assert TorsionOptions.model_validate(saved).sampling_local_structure == "etkdg"
    assert any("saved before it existed" in r.getMessage() for r in caplog.records)
    assert TorsionOptions.model_validate({}).sampling_local_structure == "mmff-conformer"  # a new run: the default


def test_set_on_an_older_run_says_what_its_config_lacks_once(run, tmp_path, caplog):
    """--set re-resolves the config as resolved, so the warnings of the saved one (options added
    since it was written) are said once, and the setting asked for wins over the old default."""
    import shutil

    own = tmp_path / "run"
    shutil.copytree(run, own)
    config = own / "config.yaml"
    config.write_text("\n".join(line for line in config.read_text().splitlines() if "sampling_pool" not in line))
    res = CliRunner().invoke(app, ["sample", "--run", str(own), "--domain-help", "--set", "data.relax_steps=50"])
    assert res.exit_code == 0, res.output
    said = [r.getMessage() for r in caplog.records if "sampling_pool" in r.getMessage()]
    assert len(said) == 1 and "saved before it existed" in said[0], said
    assert "sampling_pool = 1" in res.output and "relax_steps = 50" in res.output


def test_evaluate_scores_the_models_own_start_conformers_as_a_paired_row(run):
    import csv
    import json

    res = CliRunner().invoke(app, ["evaluate", "--run", str(run), "--num", "6", "--steps", "15", "--threads", "1"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("start_cov_r", "start_amr_r", "start_chirality", "start_connectivity"):
        assert key in metrics, key
    assert metrics["start_connectivity"] == 1.0 and metrics["start_chirality"] == 1.0  # MMFF94 minima of ETKDG embeddings
    assert metrics["start_bond_mae"] < 0.01  # minimised like the references: bond lengths agree to ~1e-3 A
    with open(run / "eval" / "molecule_metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(r["start_amr_r"] != "" for r in rows)
    assert abs(sum(float(r["start_amr_r"]) for r in rows) / len(rows) - metrics["start_amr_r"]) < 1e-9


def test_evaluations_with_other_sampling_settings_are_other_records(run, tmp_path):
    """The torsion options that change sampling (data.sampling_pool, ...) are recorded with an
    evaluation and are part of its record's key: changing one in RUN/config.yaml (or for one
    command, --set data.KEY=VALUE) and evaluating again adds a record; the same settings again
    replace theirs; --set refuses a key that is not a sampling setting."""
    import json
    import shutil

    from diffcore.platform import records

    own = tmp_path / "run"
    shutil.copytree(run, own)
    (own / "metrics.json").unlink(missing_ok=True)

    def evaluate():
        res = CliRunner().invoke(app, ["evaluate", "--run", str(own), "--num", "6", "--steps", "15", "--threads", "1"])
        assert res.exit_code == 0, res.output
        return records.load(own / "metrics.json")

    first = evaluate()
    assert first[-1]["evaluated_with"]["domain"]["sampling_pool"] == 3
    config = own / "config.yaml"
    config.write_text(config.read_text().replace("sampling_pool: 3", "sampling_pool: 1"))
    second = evaluate()
    assert len(second) == 2 and second[-1]["evaluated_with"]["domain"]["sampling_pool"] == 1
    assert len({records.record_id(r["evaluated_with"]) for r in second}) == 2  # and two folders of files
    assert len(evaluate()) == 2  # the same settings again: their record replaced
    res = CliRunner().invoke(app, ["sample", "--run", str(own), "--domain-help"])
    assert res.exit_code == 0 and "sampling_pool = 1" in res.output and "RUN/config.yaml" in res.output  # where to change it
    res = CliRunner().invoke(app, ["evaluate", "--run", str(own), "--list"])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 0 and "domain" in lines[0].split()
    assert "sampling_pool=3" in lines[1] and "sampling_pool=1" in lines[2]  # the setting that tells them apart
    assert json.loads((own / "metrics.json").read_text())["evaluated_with"]["domain"]["sampling_pool"] == 1

    # --set data.KEY=VALUE: one command with another sampling setting; RUN/config.yaml stays as it was
    before = config.read_bytes()
    res = CliRunner().invoke(app, ["evaluate", "--run", str(own), "--num", "6", "--steps", "15", "--threads", "1",
                                   "--set", "data.sampling_pool=2"])
    assert res.exit_code == 0, res.output
    third = records.load(own / "metrics.json")
    assert len(third) == 3 and third[-1]["evaluated_with"]["domain"]["sampling_pool"] == 2 and config.read_bytes() == before
    res = CliRunner().invoke(app, ["sample", "--run", str(own), "--domain-help", "--set", "data.sampling_prune=0.25"])
    assert res.exit_code == 0 and "sampling_prune = 0.25" in res.output and "sampling_pool = 1" in res.output
    for item, said in (("data.sampling_pool=25", "--set: data.sampling_pool: Input should be less than or equal to 20"),
                       ("data.max_atoms=30", "--set data.max_atoms: not a sampling setting of this run's 'molecule-torsion' "
                                             "domain (those are: data.init_strength, "),
                       ("backbone.hidden=8", "--set backbone.hidden: only the run's sampling settings can be changed here")):
        res = CliRunner().invoke(app, ["sample", "--run", str(own), "--smiles", "CCCCO", "--out", str(tmp_path / "s"), "--set", item])
        assert res.exit_code == 2 and res.output.startswith(f"error: {said}"), res.output
    assert not (tmp_path / "s").exists()
