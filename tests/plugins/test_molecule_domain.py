"""The molecule domain: zero-centre-of-mass noise, padding, input checking with clear
messages, the on-disk cache, SDF output that rdkit reads back, and the metrics."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

pytest.importorskip("rdkit")

from rdkit import Chem  # noqa: E402

from diffcore.errors import UserError  # noqa: E402
from diffcore_molecule import data as D  # noqa: E402
from diffcore_molecule.domain import MoleculeDomain, MoleculeOptions, MoleculeSampleOptions, zero_com_noise  # noqa: E402
from diffcore_molecule.metrics import connectivity_ok, score  # noqa: E402
from diffcore_molecule.writer import fix_chirality  # noqa: E402

SMALL = ["CCO ethanol", "CC(=O)O acetic-acid", "c1ccccc1O phenol", "CC(N)C(=O)O alanine", "OCC(O)CO glycerol", "CC#N acetonitrile"]


@pytest.fixture
def smiles_file(tmp_path):
    path = tmp_path / "mols.smi"
    path.write_text("\n".join(SMALL) + "\n")
    return path


@pytest.fixture
def domain(smiles_file, tmp_path):
    d = MoleculeDomain(MoleculeOptions(smiles=smiles_file, conformers=2, val_fraction=0.34), workdir=tmp_path / "cache")
    d.setup()
    return d


# ------------------------------------------------------------------------ noise
def test_zero_com_noise_lives_in_the_subspace_with_unit_variance():
    sizes = [3, 7, 12]
    reps = 4000
    mask = torch.zeros(len(sizes) * reps, 12, 1)
    for k, n in enumerate(sizes):
        mask[k * reps : (k + 1) * reps, :n] = 1
    eps = zero_com_noise(torch.zeros(mask.shape[0], 12, 3), mask, torch.Generator().manual_seed(0))
    assert eps[mask.expand_as(eps) == 0].abs().max() == 0  # zero at padding
    com = eps.sum(1) / mask.sum(1)
    assert com.abs().max() < 1e-6  # centred over the real atoms
    for k, n in enumerate(sizes):
        e = eps[k * reps : (k + 1) * reps, :n]
        # each real coordinate: variance 1 - 1/n (the projection removes one direction per axis)
        var = e.var(dim=0, unbiased=False).mean()
        m = reps * n * 3
        assert abs(var - (1 - 1 / n)) < 5 * math.sqrt(2 / m) * 1.5, (n, var)
        # ||eps||^2 ~ chi^2 with 3 (n - 1) degrees of freedom: the subspace's standard normal
        sq = e.pow(2).sum(dim=(1, 2))
        dof = 3 * (n - 1)
        assert abs(sq.mean() - dof) < 5 * math.sqrt(2 * dof / reps), (n, sq.mean())
        # isotropic: no direction preferred
        cov = torch.einsum("bi,bj->ij", e[:, 0], e[:, 0]) / reps
        assert (cov - torch.eye(3) * (1 - 1 / n)).abs().max() < 5 / math.sqrt(reps)


def test_domain_noise_uses_the_batch_mask(domain):
    batch = domain.collate([domain.train_dataset()[i] for i in range(3)])
    eps = domain.noise(batch["x"], batch)
    assert eps.shape == batch["x"].shape
    assert eps[batch["mask"].expand_as(eps) == 0].abs().max() == 0
    assert (eps.sum(1) / batch["mask"].sum(1)).abs().max() < 1e-6


# ------------------------------------------------------------------ data, layout
def test_collate_pads_and_masks(domain):
    ds = domain.train_dataset()
    items = [ds[i] for i in range(len(ds))]
    sizes = [it["x"].shape[0] for it in items]
    batch = domain.collate(items)
    n = max(sizes)
    assert batch["x"].shape == (len(items), n, 3)
    assert batch["mask"].shape == (len(items), n, 1)
    assert batch["cond"]["atoms"].shape[:2] == (len(items), n)
    assert batch["cond"]["pairs"].shape[:3] == (len(items), n, n)
    assert batch["mask"].sum(dim=(1, 2)).tolist() == sizes
    # data are centred over the real atoms and O(1)
    assert (batch["x"].sum(1) / batch["mask"].sum(1)).abs().max() < 1e-4
    assert 0.2 < float(batch["x"].pow(2).sum() / batch["mask"].sum() / 3) < 3


def test_split_is_by_molecule_and_state_round_trips(domain, tmp_path):
    assert set(domain.train_idx).isdisjoint(domain.val_idx)
    assert len(domain.train_idx) + len(domain.val_idx) == len(SMALL)
    state = domain.state_dict()
    fresh = MoleculeDomain(domain.options, workdir=tmp_path / "elsewhere")
    fresh.load_state_dict(state)
    assert fresh.scale == domain.scale
    graphs = fresh.requested(MoleculeSampleOptions())  # held-out molecules, without building data
    assert fresh.graphs is None
    assert [g.smiles for g in graphs] == [domain.graphs[i].smiles for i in domain.val_idx]


def test_reference_conformers_are_cached(smiles_file, tmp_path):
    opts = MoleculeOptions(smiles=smiles_file, conformers=2)
    a = MoleculeDomain(opts, workdir=tmp_path / "cache")
    a.setup()
    cached = list((tmp_path / "cache").glob("molecules-*.sdf"))
    assert len(cached) == 1
    b = MoleculeDomain(opts, workdir=tmp_path / "cache")
    b.setup()
    assert [g.smiles for g in a.graphs] == [g.smiles for g in b.graphs]
    for ga, gb in zip(a.graphs, b.graphs):
        assert torch.allclose(ga.coords, gb.coords, atol=1e-3)  # SDF keeps 4 decimals
        assert torch.equal(ga.atoms, gb.atoms) and torch.equal(ga.pairs, gb.pairs)


def test_building_references_prints_progress_and_a_cached_set_prints_nothing(smiles_file, tmp_path, capfd):
    opts = MoleculeOptions(smiles=smiles_file, conformers=1)
    MoleculeDomain(opts, workdir=tmp_path / "cache").setup()
    lines = [ln for ln in capfd.readouterr().err.splitlines() if "building reference conformers" in ln]
    assert lines and lines[0].startswith("diffcore-molecule: building reference conformers") and "0/6 molecules" in lines[0]
    assert "6/6 molecules in" in lines[-1]
    MoleculeDomain(opts, workdir=tmp_path / "cache").setup()  # from the cache: quiet
    assert "building reference conformers" not in capfd.readouterr().err


def test_progress_lines_every_few_seconds_with_an_estimate(capsys):
    from diffcore_molecule.progress import reported

    ticks = iter([0.0, 4.0, 11.0, 12.0, 25.0, 26.0, 100.0])  # start, then after each of 5 items, then the end
    assert list(reported(list("abcde"), "work", "items", every=10.0, clock=lambda: next(ticks))) == list("abcde")
    assert capsys.readouterr().err.splitlines() == [
        "diffcore-molecule: work: 0/5 items",
        "diffcore-molecule: work: 2/5 items, 11 s, ETA 16 s",  # 11 s for 2: 5.5 s each, 3 left
        "diffcore-molecule: work: 4/5 items, 25 s, ETA 6 s",
        "diffcore-molecule: work: 5/5 items in 2 min",
    ]


def test_references_are_sensible_conformers(domain):
    for g in domain.graphs:
        assert 1 <= g.coords.shape[0] <= 2 and g.coords.shape[1:] == (g.num_atoms, 3)  # pruned: distinct ones only
        for c in g.coords.double().numpy():
            assert connectivity_ok(g.mol, c)


# ------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "smiles, words",
    [
        ("C1CC(", ["invalid SMILES", "C1CC("]),
        ("CC[Se]C", ["unsupported element", "Se"]),
        ("CCCCCCCCCCCC", ["38 atoms", "maximum of 24", "data.max_atoms"]),
        ("C[CH2]", ["radical", "unpaired electron"]),
    ],
)
def test_bad_smiles_give_a_clear_message(smiles, words):
    with pytest.raises(UserError) as err:
        D.from_smiles(smiles, D.Rules(max_atoms=24), f"--smiles {smiles!r}")
    for w in words:
        assert w in str(err.value)


def test_bad_lines_of_a_file_are_skipped_and_counted(tmp_path, caplog):
    path = tmp_path / "in.smi"
    path.write_text("# a comment\nCCO one\nnot-a-smiles\n\nCC[Se]C selenide\nc1ccccc1 benzene\n")
    with caplog.at_level(logging.WARNING, logger="diffcore.molecule"):
        mols = D.read_smiles_file(path, D.Rules())
    assert [name for name, _ in mols] == ["one", "benzene"]
    text = caplog.text
    assert f"{path}:3" in text and "invalid SMILES" in text
    assert f"{path}:5" in text and "Se" in text
    assert "skipped 2 bad line(s), kept 2" in text


def test_a_file_with_no_usable_molecule_is_an_error(tmp_path):
    path = tmp_path / "bad.smi"
    path.write_text("xyz\nC1CC(\n")
    with pytest.raises(UserError, match="no usable molecule"):
        D.read_smiles_file(path, D.Rules())
    with pytest.raises(UserError, match="does not exist"):
        D.read_smiles_file(tmp_path / "missing.smi", D.Rules())


def test_sample_options_refuse_invalid_smiles(domain):
    with pytest.raises(UserError, match="invalid SMILES"):
        list(domain.sample_batches(2, 8, options=MoleculeSampleOptions(smiles=["CC(C"])))


def test_sdf_records_are_grouped_and_bad_ones_skipped(tmp_path, caplog):
    mol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    coords = D.embed(mol, 2, seed=1)
    path = tmp_path / "in.sdf"
    with Chem.SDWriter(str(path)) as w:
        for c in coords:
            m = Chem.Mol(mol)
            conf = Chem.Conformer(m.GetNumAtoms())
            for i, p in enumerate(c):
                conf.SetAtomPosition(i, p.tolist())
            m.AddConformer(conf)
            m.SetProp("_Name", "ethanol")
            w.write(m)
    text = path.read_text()
    path.write_text(text + "garbage\n  this is not a mol block\n$$$$\n")
    with caplog.at_level(logging.WARNING, logger="diffcore.molecule"):
        mols = D.read_sdf(path, D.Rules())
    assert len(mols) == 1 and mols[0][0] == "ethanol"
    assert mols[0][1].GetNumConformers() == 2
    assert "record 3" in caplog.text and "skipped 1 bad record" in caplog.text
    graphs = D.build(D.Source(sdf=path), D.Rules(), conformers=5, seed=0, mmff=True, max_molecules=None, workdir=None)
    assert graphs[0].coords.shape == (2, 9, 3)  # the file's two 3D records are the references


def test_options_refuse_nonsense():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="unknown element"):
        MoleculeOptions(elements=["H", "C", "Xx"])
    with pytest.raises(ValidationError, match="not both"):
        MoleculeOptions(smiles="a.smi", sdf="b.sdf")


# ----------------------------------------------------------------- writer, metrics
def test_sdf_written_and_read_back_with_the_input_atoms(domain, tmp_path):
    smiles = "CC(=O)Nc1ccc(O)cc1"
    batches = list(domain.sample_batches(3, 2, options=MoleculeSampleOptions(smiles=[smiles, "CCO"])))
    results = []
    for batch in batches:
        # stand-in for a model: a real conformer of each requested molecule, in data units
        x = torch.zeros(batch["shape"])
        for i, g in enumerate(batch["mol"]):
            mg = batch["molecules"][g]
            c = torch.as_tensor(D.embed(mg.mol, 1, seed=i)[0], dtype=torch.float32)
            x[i, : mg.num_atoms] = (c - c.mean(0)) / batch["coord_scale"]
        results.append((x, batch))
    paths = domain.write_samples(results, tmp_path / "out")
    assert [p.name for p in paths] == ["smiles-1.sdf", "smiles-2.sdf"]
    want = Chem.AddHs(Chem.MolFromSmiles(smiles))
    mols = [m for m in Chem.SDMolSupplier(str(paths[0]), removeHs=False)]
    assert len(mols) == 3 and all(m is not None for m in mols)
    for m in mols:
        assert sorted(a.GetSymbol() for a in m.GetAtoms()) == sorted(a.GetSymbol() for a in want.GetAtoms())
        assert Chem.MolToSmiles(Chem.RemoveHs(m)) == Chem.MolToSmiles(Chem.MolFromSmiles(smiles))
        assert m.GetConformer().Is3D()
        assert connectivity_ok(want, m.GetConformer().GetPositions())


def test_mirror_images_are_fixed_for_specified_stereocentres():
    mol = Chem.AddHs(Chem.MolFromSmiles("C[C@H](N)O"))
    c = D.embed(mol, 1, seed=0)[0]
    fixed, ok = fix_chirality(mol, c * np.array([-1.0, 1.0, 1.0]))
    assert ok
    assert np.allclose(fixed, c)


def test_metrics_of_the_references_against_themselves(domain):
    g = domain.graphs[0]
    refs = g.coords.double().numpy()
    m = score(g.mol, refs, refs, delta=0.5)
    assert m["connectivity"] == 1.0 and m["cov_r"] == 1.0 and m["cov_p"] == 1.0
    assert m["amr_r"] < 1e-3 and m["bond_mae"] < 0.01
    rng = np.random.default_rng(0)
    noise = refs + rng.normal(scale=0.5, size=refs.shape)
    bad = score(g.mol, refs, noise, delta=0.5)
    assert bad["connectivity"] < 1.0 and bad["bond_mae"] > 0.1
