"""The molecule-cartesian recipe end to end through the CLI on tiny settings:
train -> sample (--smiles, --smiles-file, held-out) -> evaluate, and clear errors."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("rdkit")

from rdkit import Chem  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from diffcore.cli import app  # noqa: E402

MOLS = "CCO ethanol\nCC(=O)O acetic-acid\nc1ccccc1O phenol\nCC(N)C(=O)O alanine\nOCC(O)CO glycerol\nCC#N acetonitrile\nCOC dimethyl-ether\nCC=O acetaldehyde\n"
TINY = [
    "--set", "training.max_steps=3", "--set", "training.batch_size=8", "--set", "training.preview_num=2",
    "--set", "training.checkpoint_every=0", "--set", "sampling.steps=4", "--set", "data.conformers=2",
    "--set", "backbone.hidden=16", "--set", "backbone.layers=2", "--no-progress",
]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("molrun")
    smi = tmp / "mols.smi"
    smi.write_text(MOLS)
    run = tmp / "run"
    res = invoke("train", "--plugin", "molecule-cartesian", "--out", str(run), "--set", f"data.smiles={smi}", *TINY)
    assert res.exit_code == 0, res.output
    return run


def test_train_writes_a_run_with_previews(run):
    for name in ("config.yaml", "domain_state.json", "ema.safetensors", "checkpoints/last.ckpt"):
        assert (run / name).is_file(), name
    state = json.loads((run / "domain_state.json").read_text())
    assert state["coord_scale"] > 0 and state["held_out"]
    previews = list((run / "previews").rglob("*.sdf"))
    assert previews
    assert all(m is not None for p in previews for m in Chem.SDMolSupplier(str(p), removeHs=False))


def test_sample_smiles_writes_one_sdf_per_molecule(run, tmp_path):
    out = tmp_path / "s"
    res = invoke("sample", "--run", str(run), "--smiles", "CC(=O)Nc1ccc(O)cc1", "--smiles", "CCN", "--num", "3", "--out", str(out))
    assert res.exit_code == 0, res.output
    files = sorted(out.glob("*.sdf"))
    assert [f.name for f in files] == ["smiles-1.sdf", "smiles-2.sdf"]
    mols = list(Chem.SDMolSupplier(str(files[0]), removeHs=False))
    assert len(mols) == 3
    want = Chem.AddHs(Chem.MolFromSmiles("CC(=O)Nc1ccc(O)cc1"))
    for m in mols:
        assert m.GetNumAtoms() == want.GetNumAtoms()
        assert [a.GetSymbol() for a in m.GetAtoms()] == [a.GetSymbol() for a in want.GetAtoms()]


def test_sample_smiles_file_skips_bad_lines_and_held_out_default(run, tmp_path):
    f = tmp_path / "in.smi"
    f.write_text("CCO a\nC1CC( broken\nCCS sulfur\nCOC b\n")
    out = tmp_path / "s"
    res = invoke("sample", "--run", str(run), "--smiles-file", str(f), "--num", "2", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.glob("*.sdf")) == ["a.sdf", "b.sdf"]
    out2 = tmp_path / "h"
    res = invoke("sample", "--run", str(run), "--num", "2", "--out", str(out2))
    assert res.exit_code == 0, res.output
    assert len(list(out2.glob("*.sdf"))) >= 1  # held-out molecules


@pytest.mark.parametrize("smiles, words", [("C1CC(", "invalid SMILES"), ("CCCl", "unsupported element"), ("C" * 12, "maximum of 24")])
def test_bad_smiles_is_a_clear_error(run, tmp_path, smiles, words):
    res = invoke("sample", "--run", str(run), "--smiles", smiles, "--num", "2", "--out", str(tmp_path / "x"))
    assert res.exit_code == 2
    assert words in res.output and smiles in res.output
    assert "Traceback" not in res.output


def test_evaluate_reports_model_and_etkdg_metrics(run):
    res = invoke("evaluate", "--run", str(run), "--num", "4", "--steps", "3")
    assert res.exit_code == 0, res.output
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("connectivity", "bond_mae", "cov_r", "amr_r", "etkdg_connectivity", "etkdg_bond_mae", "etkdg_cov_r", "etkdg_amr_r"):
        assert key in metrics, key
    assert 0.0 <= metrics["connectivity"] <= 1.0 and 0.0 <= metrics["cov_r"] <= 1.0
    assert metrics["etkdg_connectivity"] == 1.0  # rdkit's own conformers keep their bonds
    assert "start_cov_r" not in metrics  # the coordinate model starts from noise: no paired start row
    assert (run / "eval" / "molecule_metrics.csv").is_file()

    # each evaluation keeps its own files (RUN/eval/records/ID): a second, smaller one does not
    # overwrite the first's per-molecule rows; RUN/eval holds the latest
    first = (run / "eval" / "molecule_metrics.csv").read_text()
    res = invoke("evaluate", "--run", str(run), "--num", "2", "--steps", "3")
    assert res.exit_code == 0, res.output
    kept = {json.loads((d / "evaluated_with.json").read_text())["num"]: (d / "molecule_metrics.csv").read_text()
            for d in (run / "eval" / "records").iterdir() if (d / "evaluated_with.json").is_file()}
    assert kept[4] == first and kept[2] == (run / "eval" / "molecule_metrics.csv").read_text() != first
    assert json.loads((run / "eval" / "evaluated_with.json").read_text())["num"] == 2  # which one RUN/eval holds
    assert not [d for d in (run / "eval" / "records").iterdir() if ".partial-" in d.name]


def test_config_file_lists_exactly_the_recipe_defaults():
    from pathlib import Path

    from diffcore import config

    path = Path(__file__).resolve().parents[2] / "configs" / "molecule-cartesian.yaml"
    from_file = config.resolve(config_file=path).config.model_dump()
    defaults = config.resolve(plugin="molecule-cartesian").config.model_dump()
    assert from_file == defaults
    raw = config.load_yaml(path)
    for section in ("data", "backbone"):  # every plugin option is present (and so commented) in the file
        assert set(raw[section]) == set(defaults[section]), section
