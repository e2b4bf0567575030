"""Loading never executes code from a file; anything that is not a checkpoint of the run's
backbone is refused with a message naming the file."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch
from conftest import TINY
from safetensors.torch import save_file
from typer.testing import CliRunner

from diffcore import runs
from diffcore.cli import app
from diffcore.errors import UserError


class Payload:
    """Unpickling this calls Path.touch(marker): what an attacker's code would run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _malicious_files(tmp_path: Path) -> tuple[Path, list[Path]]:
    marker = tmp_path / "PWNED"
    payload = {"state_dict": {"ema.w": torch.zeros(1)}, "global_step": 1, "evil": Payload(marker)}
    legacy = tmp_path / "legacy.ckpt"  # a plain pickle stream
    with open(legacy, "wb") as f:
        pickle.dump(payload, f)
    zipped = tmp_path / "zipped.ckpt"  # torch.save's zip format, pickled object inside
    torch.save(payload, zipped)
    return marker, [legacy, zipped]


def test_the_payload_is_real(tmp_path):
    # Guards the tests below: plain unpickling of these files does run the payload.
    marker, files = _malicious_files(tmp_path)
    with open(files[0], "rb") as f:
        pickle.load(f)
    assert marker.exists()
    marker.unlink()
    torch.load(files[1], weights_only=False)
    assert marker.exists()


@pytest.fixture
def tiny_run(toy_plugin, tmp_path):
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--plugin", "toy", "--out", str(run), *TINY])
    assert res.exit_code == 0, res.output
    return run


def test_malicious_pickle_is_refused_without_executing(tiny_run, tmp_path):
    marker, files = _malicious_files(tmp_path)
    for f in files:
        with pytest.raises(UserError) as e:
            runs.read_weights(f)
        assert str(e.value).startswith(f"checkpoint {f} was refused: it contains pickled Python objects")
        res = CliRunner().invoke(app, ["sample", "--run", str(tiny_run), "--checkpoint", str(f)])
        assert res.exit_code == 2 and res.stderr.startswith(f"error: checkpoint {f} was refused")
        assert "Traceback" not in res.output
    # --resume reads last.ckpt: a planted one is refused before Lightning sees it
    shutil.copy(files[1], tiny_run / "checkpoints" / "last.ckpt")
    res = CliRunner().invoke(app, ["train", "--out", str(tiny_run), "--resume", "--max-steps", "9"])
    assert res.exit_code == 2 and "was refused" in res.stderr
    assert not marker.exists()


def test_files_that_are_not_checkpoints_are_refused(tiny_run, tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00not a checkpoint at all" * 10)
    bad_ckpt = tmp_path / "garbage.ckpt"
    bad_ckpt.write_bytes(b"PK\x03\x04 this is no zip")
    wrong_shape = tmp_path / "wrong.safetensors"
    save_file({"inp.weight": torch.zeros(3, 3)}, str(wrong_shape))
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"model.w": torch.zeros(2)}}, other)
    cases = {
        garbage: f"checkpoint {garbage} is not a valid safetensors file",
        bad_ckpt: f"checkpoint {bad_ckpt} was refused",
        wrong_shape: f"checkpoint {wrong_shape} does not fit this run's backbone",
        other: f"checkpoint {other} holds no diffcore model weights",
        tmp_path / "w.bin": "unknown format '.bin'",
        tmp_path / "missing.safetensors": "does not exist",
    }
    (tmp_path / "w.bin").write_bytes(b"x")
    for path, expected in cases.items():
        res = CliRunner().invoke(app, ["sample", "--run", str(tiny_run), "--checkpoint", str(path)])
        assert res.exit_code == 2, path
        assert expected in res.stderr, (path, res.stderr)
        assert "Traceback" not in res.output


def test_lightning_checkpoint_and_safetensors_give_the_same_model(tiny_run):
    a = runs.load_run(tiny_run)
    b = runs.load_run(tiny_run, tiny_run / "checkpoints" / "last.ckpt")
    sa, sb = a.net.state_dict(), b.net.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    # the checkpoint Lightning wrote loads under weights_only=True: tensors and plain data only
    ckpt = torch.load(tiny_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 4 and "hyper_parameters" not in ckpt


def test_weights_that_are_integers_or_not_finite_are_refused(tiny_run, tmp_path):
    from safetensors.torch import load_file

    good = load_file(str(tiny_run / "ema.safetensors"))
    name = next(k for k, v in good.items() if v.is_floating_point() and v.numel() > 1)
    as_int = tmp_path / "int32.safetensors"
    save_file({**good, name: good[name].round().to(torch.int32)}, str(as_int))
    nan = tmp_path / "nan.safetensors"
    save_file({**good, name: good[name].clone().fill_(float("nan"))}, str(nan))
    fine = tmp_path / "fine.safetensors"
    save_file(good, str(fine))
    for path, expected in ((as_int, f"tensors of the wrong kind of number: {name} (torch.int32"),
                           (nan, f"1 tensor(s) hold infinity or NaN (e.g. {name})")):
        res = CliRunner().invoke(app, ["sample", "--run", str(tiny_run), "--checkpoint", str(path), "--num", "2"])
        assert res.exit_code == 2, res.output
        assert expected in res.stderr and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["sample", "--run", str(tiny_run), "--checkpoint", str(fine), "--num", "2",
                                   "--out", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output  # the same file, unchanged, loads
