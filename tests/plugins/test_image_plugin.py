"""The image-unet plugin through the platform: registration, its config file, and a tiny
train -> sample -> evaluate run from the CLI on a folder of images with a corrupt file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from PIL import Image
from typer.testing import CliRunner

from diffcore.cli import app
from diffcore.config import RunConfig, resolve
from diffcore.registry import get_registry

CONFIG = Path(__file__).parents[2] / "configs" / "image-unet.yaml"


def test_registered_through_its_entry_point():
    reg = get_registry()
    recipe = reg.recipe("image-unet")
    assert (recipe.domain, recipe.backbone) == ("image", "unet")
    assert reg.domain("image").name == "image"
    assert reg.backbone("unet", domain="image").name == "unet"
    info = reg.plugins["image-unet"]
    assert info.ok and info.provides["recipes"] == ["image-unet"]


def _leaves(d: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and k != "schedule_options":
            out |= _leaves(v, key + ".")
        else:
            out.add(key)
    return out


def test_config_file_lists_every_option_with_its_default_value():
    text = CONFIG.read_text()
    from_file = resolve(config_file=CONFIG)
    defaults = resolve("image-unet")
    # the file restates the recipe's defaults: resolving it changes nothing
    assert from_file.config == defaults.config
    # every key of every section (the plugin's data/backbone sections included) is in the file
    raw = yaml.safe_load(text)
    expected = _leaves(defaults.config.model_dump(mode="json"))
    assert _leaves(raw) == expected
    assert set(RunConfig.model_fields) <= set(raw)
    # and every option line has a comment
    for line in text.splitlines():
        s = line.strip()
        if s and not s.startswith("#") and ":" in s and not s.endswith(":"):
            assert "#" in s, f"option without a comment: {line!r}"


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (10, 10), dtype=np.uint8)).save(root / c / f"{i}.png")
    (root / "a" / "corrupt.png").write_bytes(b"\x89PNG not really")
    return root


def test_cli_train_sample_evaluate_on_a_folder_with_a_corrupt_file(tmp_path, caplog):
    data = _folder(tmp_path / "imgs")
    run = tmp_path / "run"
    tiny = [
        "--set", f"data.path={data}", "--set", "data.resolution=8", "--set", "data.val_fraction=0.25",
        "--set", "backbone.base_channels=8", "--set", "backbone.num_res_blocks=1", "--set", "backbone.attention_resolutions=[4]",
        "--set", "training.batch_size=4", "--set", "training.preview_num=4", "--set", "training.log_every=1",
        "--set", "sampling.steps=3", "--max-steps", "2", "--no-progress", "--accelerator", "cpu",
    ]
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--plugin", "image-unet", "--out", str(run), *tiny])
    assert res.exit_code == 0, res.output
    # logged as warnings on the "diffcore_image" logger (stderr when run from a shell)
    assert "corrupt.png" in caplog.text and "skipped 1 unreadable image file(s)" in caplog.text
    state = json.loads((run / "domain_state.json").read_text())
    assert state == {"labels": ["a", "b"], "channels": 1, "resolution": 8}
    grid = run / "previews" / "step-0000002" / "samples.png"
    assert Image.open(grid).mode == "L"

    out = tmp_path / "samples"
    res = runner.invoke(app, ["sample", "--run", str(run), "--num", "3", "--class", "b", "--guidance", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.glob("*.png")) == ["00000_b.png", "00001_b.png", "00002_b.png", "samples.png"]

    res = runner.invoke(app, ["evaluate", "--run", str(run), "--num", "6"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["class_consistency"] <= 1 and metrics["frechet_floor"] > 0 and metrics["num_samples"] == 6


def test_cli_names_the_folder_when_nothing_is_readable(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(app, ["train", "--plugin", "image-unet", "--out", str(tmp_path / "run"), "--set", f"data.path={empty}", "--no-progress"])
    assert res.exit_code == 2 and str(empty) in res.output and "Traceback" not in res.output
