"""Editing molecules: inputs (SMILES, SDF) -> known/keep batches, fixed atoms by index or
SMARTS, clear errors, the EGNN's anchoring of x0_hat in the fixed atoms' frame (why: the
noise is zero-CoM, the kept part is not), the Kabsch alignment back onto the input, the
writer (SDF + before/after PNG), and the CLI end to end on a tiny run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("rdkit")

from pydantic import ValidationError  # noqa: E402
from rdkit import Chem  # noqa: E402

import diffcore  # noqa: E402
from diffcore.errors import UserError  # noqa: E402
from diffcore_molecule import data as D  # noqa: E402
from diffcore_molecule.backbone import EGNN, EGNNOptions, anchor, kabsch_rotation  # noqa: E402
from diffcore_molecule.domain import MoleculeDomain, MoleculeOptions, zero_com_noise  # noqa: E402
from diffcore_molecule.edit import MoleculeEditOptions as Opts  # noqa: E402
from diffcore_molecule.edit import align  # noqa: E402
from diffcore_molecule.metrics import bond_lengths, connectivity_ok  # noqa: E402
from diffcore_molecule.writer import with_conformers  # noqa: E402

PARACETAMOL = "CC(=O)Nc1ccc(O)cc1"  # 20 atoms with hydrogens; the ring is atoms 4-7, 9, 10


@pytest.fixture(scope="module")
def domain():
    d = MoleculeDomain(MoleculeOptions(elements=["H", "C", "N", "O", "F"], max_atoms=24))  # the molecule-cartesian recipe's
    d.load_state_dict({"coord_scale": 1.5})  # what a run gives: sampling and editing need no data set
    return d


def write_sdf(path, mol, coords_list, name="mol"):
    with Chem.SDWriter(str(path)) as w:
        for c in coords_list:
            m = with_conformers(mol, [c])
            m.SetProp("_Name", name)
            w.write(m)
    return path


# ------------------------------------------------------------------------ batches
RING = [4, 5, 6, 7, 9, 10]


def test_smiles_input_with_a_core_gives_known_and_keep(domain):
    batches = list(domain.edit_batches([PARACETAMOL], 3, 2, options=Opts(core="c1ccccc1", fix_atoms="1")))
    assert [b["shape"] for b in batches] == [(2, 20, 3), (1, 20, 3)]
    # the documented input conformer of a SMILES: ETKDG v3 + MMFF94, seed 0
    ref = D.embed(Chem.AddHs(Chem.MolFromSmiles(PARACETAMOL)), 1, seed=0)[0]
    want = torch.as_tensor((ref - ref.mean(0)) / 1.5, dtype=torch.float32)
    fixed = [1] + RING
    for b in batches:
        known, keep = b["known"], b["keep"]
        assert known.shape == keep.shape == b["shape"]
        assert torch.allclose(known, want.expand_as(known), atol=1e-5)  # centred over all atoms, / coord_scale
        assert known.sum(1).abs().max() < 1e-5
        assert keep[:, fixed].eq(1).all() and keep.sum() == len(keep) * len(fixed) * 3
        assert torch.equal(b["cond"]["fixed"], keep[..., 0])
        assert torch.equal(b["cond"]["known"], known)
        assert [e.fixed for e in b["edits"]] == [fixed]
        # inversion runs the model on the input's graph (not on no graph), without the anchor
        assert torch.equal(b["source_cond"]["atoms"], b["cond"]["atoms"]) and "fixed" not in b["source_cond"]


def test_sdf_input_keeps_file_order_and_adds_hydrogens_at_the_end(domain, tmp_path):
    heavy = Chem.MolFromSmiles("Oc1ccccc1")
    full = Chem.AddHs(heavy)
    c = D.embed(full, 2, seed=3)
    bare = Chem.RemoveHs(with_conformers(full, [c[0]]))  # a 3D record without hydrogens
    path = tmp_path / "phenol.sdf"
    with Chem.SDWriter(str(path)) as w:
        for k in range(2):
            m = Chem.RemoveHs(with_conformers(full, [c[k]]))
            m.SetProp("_Name", f"phenol{k}")
            w.write(m)
    batches = list(domain.edit_batches([str(path)], 1, 8, options=Opts(fix_atoms="0-6")))
    (b,) = batches
    assert [e.graph.name for e in b["edits"]] == ["phenol0", "phenol1"]
    e = b["edits"][0]
    assert e.graph.num_atoms == 13 and [a.GetSymbol() for a in e.graph.mol.GetAtoms()][7:] == ["H"] * 6
    file_xyz = bare.GetConformer().GetPositions()
    assert np.allclose(e.coords[:7], file_xyz, atol=1e-4)  # the file's atoms, in the file's order
    known = b["known"][0].double().numpy() * 1.5 + e.coords.mean(0)
    assert np.allclose(known[:7], file_xyz, atol=1e-4)
    assert b["keep"][0, :7].eq(1).all() and b["keep"][0, 7:].eq(0).all()


def sdf_2d(tmp_path):
    m = Chem.MolFromSmiles("CCO")
    Chem.rdDepictor.Compute2DCoords(m)
    path = tmp_path / "flat.sdf"
    Chem.MolToMolFile(m, str(path))
    return str(path)


@pytest.mark.parametrize(
    "inputs, opts, words",
    [
        (["C1CC("], {"fix_atoms": "0"}, ["--input 'C1CC('", "invalid SMILES"]),
        (["CCO"], {"fix_atoms": "9"}, ["--fix-atoms 9", "out of range", "9 atoms", "0..8"]),
        (["CCO"], {"core": "C1("}, ["--core 'C1('", "invalid SMARTS"]),
        (["CCO"], {"core": "c1ccccc1"}, ["--core 'c1ccccc1'", "matches no atom", "CCO"]),
        (["CCCl"], {}, ["CCCl", "unsupported element", "Cl"]),
        (["C" * 12], {}, ["maximum of 24", "data.max_atoms"]),
        (["missing.sdf"], {}, ["missing.sdf", "does not exist"]),
        ([sdf_2d], {}, ["flat.sdf", "no 3D coordinates"]),
        ([], {}, ["no input"]),
    ],
)
def test_bad_inputs_are_clear_user_errors(domain, tmp_path, inputs, opts, words):
    inputs = [i(tmp_path) if callable(i) else i for i in inputs]
    with pytest.raises(UserError) as err:
        list(domain.edit_batches(inputs, 1, 4, options=Opts(**opts)))
    for w in words:
        assert w in str(err.value)


def test_an_existing_file_of_another_kind_is_refused(domain, tmp_path):
    f = tmp_path / "mols.txt"
    f.write_text("CCO\n")
    with pytest.raises(UserError, match="not an SDF/MOL file"):
        list(domain.edit_batches([str(f)], 1, 4, options=Opts()))


def test_fix_atoms_parses_lists_and_ranges():
    assert Opts(fix_atoms="0-2,5").fix_atoms == [0, 1, 2, 5]
    assert Opts(fix_atoms=["3", "1,2"]).fix_atoms == [3, 1, 2]
    assert Opts(fix_atoms=[4]).fix_atoms == [4]
    for bad, words in [("-1", "not negative"), ("a,b", "not an atom index"), ("5-2", "backwards")]:
        with pytest.raises(ValidationError, match=words):
            Opts(fix_atoms=bad)


# ------------------------------------------------------------- centre of mass
def test_egnn_moves_its_output_onto_the_fixed_atoms_as_far_as_their_shapes_agree():
    torch.manual_seed(0)
    net = EGNN(D.atom_feature_dim(5), D.PAIR_FEATURE_DIM, EGNNOptions(hidden=16, layers=2))
    b, n = 4, 7
    mask = torch.ones(b, n)
    mask[2, 5:] = 0
    cond = {"atoms": torch.rand(b, n, net.atom_dim), "pairs": torch.rand(b, n, n, net.pair_dim), "atom_mask": mask}
    x = zero_com_noise(torch.zeros(b, n, 3), mask[..., None], torch.Generator().manual_seed(1))
    t = torch.full((b,), 0.3)
    plain = net(x, t, cond)
    fixed = torch.zeros(b, n)
    fixed[[0, 1], :4] = 1
    fixed[3, :1] = 1  # one fixed atom: a translation only; example 2 has none: left centred
    rot = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    offset = torch.tensor([0.4, -1.0, 2.0])
    known = plain + offset  # example 0: the output's own shape and orientation, moved
    known[1] = plain[1] @ rot.T + offset  # example 1: the same shape, turned
    known[3] = plain[3] + offset
    out = net(x, t, {**cond, "fixed": fixed, "known": known})
    assert torch.allclose(out[0], known[0], atol=1e-5)  # e = 0: moved fully onto the kept atoms
    p = plain[1, :4] - plain[1, :4].mean(0)
    w = 1.0 / (1.0 + (p @ rot.T - p).pow(2).sum(-1).mean())  # e^2 counts the turn: damped
    assert 0.1 < w < 0.9
    assert torch.allclose(out[1], plain[1] + w * (known[1] - plain[1]), atol=1e-4)  # towards the rigid fit
    assert torch.allclose(out[3], known[3], atol=1e-5)  # one fixed atom: a translation only
    assert torch.equal(out[2], plain[2]) and out[2, 5:].abs().max() == 0  # no fixed atom; padding stays zero


def test_kabsch_rotation_recovers_a_turn_and_leaves_a_line_alone():
    g = torch.Generator().manual_seed(0)
    p = torch.randn(2, 6, 3, generator=g)
    p = p - p.mean(1, keepdim=True)
    q_, _ = torch.linalg.qr(torch.randn(3, 3, generator=g))
    r = q_ * torch.sign(torch.linalg.det(q_))
    p[1] = torch.linspace(-1, 1, 6)[:, None] * torch.tensor([1.0, 2.0, 0.5])  # all on a line
    got = kabsch_rotation(p, p @ r.T)
    assert torch.allclose(got[0], r, atol=1e-5)
    assert torch.allclose(got[1], torch.eye(3))


def _edit_with(oracle, known, keep):
    plan = diffcore.SamplingPlan.make("linear", "ddpm", 20, prediction="x0")
    mask = torch.ones(known.shape[:2] + (1,))
    g = torch.Generator().manual_seed(0)
    noise = zero_com_noise(known, mask, g)
    return diffcore.edit(plan, oracle, noise, known=known, keep=keep, generator=g,
                         noise_fn=lambda z: zero_com_noise(z, mask, g))


def test_anchoring_keeps_the_bonds_between_fixed_and_generated_atoms():
    """An oracle that always predicts the conformer B (shape only, centred, like the EGNN)
    while the input is another conformer A of the same molecule: the edit should return B's
    free atoms around A's fixed atoms. Centred, B's free atoms land off by B's centroid in the
    input's frame and the bonds across the boundary stretch; anchored (the oracle's fixed atoms
    have the kept atoms' shape, so fully), they are B's."""
    mol = Chem.AddHs(Chem.MolFromSmiles("OCCCCCC"))  # hexanol: fix the OH end, the chain moves
    confs = D.embed(mol, 8, seed=1, mmff=True)
    fixed = [0, 1, 7]  # O, C1 and the hydroxyl H
    a = confs[0] - confs[0].mean(0)
    # the conformer whose free atoms' centroid is farthest from A's, aligned on the fixed atoms
    bs = [align(c, a, fixed)[0] for c in confs[1:]]
    b = max(bs, key=lambda c: np.linalg.norm(c.mean(0)))
    assert np.linalg.norm(b.mean(0)) > 0.5  # the frames differ: the case the anchor is for
    known = torch.as_tensor(a, dtype=torch.float32)[None]
    keep = torch.zeros_like(known)
    keep[:, fixed] = 1
    shape = torch.as_tensor(b - b.mean(0), dtype=torch.float32)[None]
    mask = torch.ones(1, len(a))
    centred = _edit_with(lambda x, t: shape.expand_as(x), known, keep)
    anchored = _edit_with(lambda x, t: anchor(shape.expand_as(x), mask, keep[..., 0], known), known, keep)
    bonds = np.array([(bd.GetBeginAtomIdx(), bd.GetEndAtomIdx()) for bd in mol.GetBonds()])
    want = bond_lengths(b, bonds)
    for out, ok in ((anchored, True), (centred, False)):
        c = out[0].double().numpy()
        assert np.allclose(c[fixed], a[fixed], atol=1e-6)  # kept exactly
        err = np.abs(bond_lengths(c, bonds) - want).max()
        assert (err < 5e-3) if ok else (err > 0.2), err
        assert connectivity_ok(mol, c) == ok


# ------------------------------------------------------------------ output
def test_align_is_kabsch_or_a_translation():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(9, 3))
    q_, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    r = q_ * np.sign(np.linalg.det(q_))
    q = p @ r.T + np.array([1.0, -2.0, 0.5])
    out, rmsd = align(p, q, [0, 2, 4, 6])
    assert rmsd < 1e-9 and np.allclose(out, q)
    out, rmsd = align(p, q, [3])  # one atom: a translation only
    assert rmsd < 1e-9 and np.allclose(out - p, (q[3] - p[3])[None])


def test_write_edits_aligns_onto_the_input_and_draws_a_picture(domain, tmp_path):
    import matplotlib.image

    batches = list(domain.edit_batches([PARACETAMOL], 2, 4, options=Opts(core="c1ccccc1")))
    # a stand-in for the model: the input, rotated and moved (a frame the alignment must undo)
    rot = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    results = [(b["known"] @ rot.T + 0.7, b) for b in batches]
    paths = domain.write_edits(results, tmp_path / "out")
    assert [p.name for p in paths] == ["input-1.sdf", "input-1-input.sdf", "input-1.png"]
    e = batches[0]["edits"][0]
    mols = list(Chem.SDMolSupplier(str(paths[0]), removeHs=False))
    assert len(mols) == 2
    for m in mols:
        xyz = m.GetConformer().GetPositions()
        assert np.abs(xyz[RING] - e.coords[RING]).max() < 2e-4  # the fixed atoms keep their input coordinates
        assert float(m.GetProp("fixed_rmsd")) < 1e-4 and m.GetProp("fixed_atoms") == ",".join(map(str, RING))
        assert connectivity_ok(e.graph.mol, xyz)
    (inp,) = Chem.SDMolSupplier(str(paths[1]), removeHs=False)
    assert np.abs(inp.GetConformer().GetPositions() - e.coords).max() < 2e-4
    img = matplotlib.image.imread(str(paths[2]))
    assert img.ndim == 3 and img.shape[1] > 2 * img.shape[0]  # input and two edits side by side


# ------------------------------------------------------------------------- CLI
MOLS = "CCO ethanol\nCC(=O)O acetic-acid\nc1ccccc1O phenol\nCC(N)C(=O)O alanine\nOCC(O)CO glycerol\nCC#N acetonitrile\n"
TINY = [
    "--set", "training.max_steps=3", "--set", "training.batch_size=8", "--set", "training.preview_num=0",
    "--set", "training.checkpoint_every=0", "--set", "sampling.steps=4", "--set", "data.conformers=2",
    "--set", "backbone.hidden=16", "--set", "backbone.layers=2", "--no-progress", "--threads", "1",
]


def invoke(*args: str):
    from typer.testing import CliRunner

    from diffcore.cli import app

    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("moledit")
    smi = tmp / "mols.smi"
    smi.write_text(MOLS)
    res = invoke("train", "--plugin", "molecule-cartesian", "--out", str(tmp / "run"), "--set", f"data.smiles={smi}", *TINY)
    assert res.exit_code == 0, res.output
    return tmp / "run"


def test_cli_edit_keeps_the_fixed_atoms_of_an_sdf_and_a_smiles(run, tmp_path):
    mol = Chem.AddHs(Chem.MolFromSmiles(PARACETAMOL))
    src = write_sdf(tmp_path / "para.sdf", mol, D.embed(mol, 1, seed=5), name="para")
    for inp, flags in ((str(src), ["--fix-atoms", "4-7", "--fix-atoms", "9,10"]), (PARACETAMOL, ["--core", "c1ccccc1"])):
        out = tmp_path / f"out{len(flags)}"
        res = invoke("edit", "--run", str(run), "--input", inp, *flags, "--num", "2", "--steps", "4", "--out", str(out),
                     "--threads", "1")
        assert res.exit_code == 0, res.output
        stem = "para" if inp.endswith(".sdf") else "input-1"
        assert sorted(p.name for p in out.iterdir()) == sorted(["edit.json", f"{stem}.sdf", f"{stem}-input.sdf", f"{stem}.png"])
        (before,) = Chem.SDMolSupplier(str(out / f"{stem}-input.sdf"), removeHs=False)
        want = before.GetConformer().GetPositions()
        if inp.endswith(".sdf"):  # the file's own coordinates
            assert np.abs(want - Chem.MolFromMolFile(str(src), removeHs=False).GetConformer().GetPositions()).max() < 2e-4
        after = list(Chem.SDMolSupplier(str(out / f"{stem}.sdf"), removeHs=False))
        assert len(after) == 2
        for m in after:
            xyz = m.GetConformer().GetPositions()
            assert np.abs(xyz[RING] - want[RING]).max() < 2e-4  # kept exactly, within the SDF's 4 decimals
            assert np.abs(xyz - want).max() > 0.1  # the rest is generated (a 3-step model: far from the input)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--input", "C1CC(", "--fix-atoms", "0"], ["--input 'C1CC('", "invalid SMILES"]),
        (["--input", "CCO", "--fix-atoms", "9"], ["--fix-atoms 9", "out of range"]),
        (["--input", "CCO", "--core", "c1ccccc1"], ["--core 'c1ccccc1'", "matches no atom"]),
        (["--input", "CCO", "--fix-atoms", "x"], ["--fix-atoms", "not an atom index"]),
        (["--input", "CCCl", "--fix-atoms", "0"], ["unsupported element", "Cl"]),
        (["--input", "nowhere.sdf", "--fix-atoms", "0"], ["nowhere.sdf", "does not exist"]),
    ],
)
def test_cli_bad_input_is_one_error_line(run, tmp_path, args, words):
    res = invoke("edit", "--run", str(run), *args, "--steps", "4", "--out", str(tmp_path / "x"), "--threads", "1")
    assert res.exit_code == 2, res.output
    assert "error:" in res.output and "Traceback" not in res.output
    for w in words:
        assert w in res.output
