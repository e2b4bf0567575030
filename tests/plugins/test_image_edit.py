"""Editing images: inputs and masks as edit batches, bad inputs refused by name, the files and
the before/after picture written, and ``diffcore edit`` end to end on a tiny run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from diffcore import UserError
from diffcore_image.domain import ImageDomain, ImageOptions
from diffcore_image.edit import BEFORE_AFTER, ImageEditOptions, region_keep
from diffcore_image.writer import MIN_CELL

R = 16


def _png(path: Path, a: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)
    return str(path)


def _gray(path: Path, size=(R, R), seed=0) -> tuple[str, np.ndarray]:
    a = np.random.default_rng(seed).integers(0, 256, size[::-1], dtype=np.uint8)
    return _png(path, a), a


def _digits() -> ImageDomain:
    return ImageDomain(ImageOptions())  # grayscale, 16x16, labels 0..9; nothing loaded


def _one(domain, inputs, num=1, batch_size=64, classes=None, **opts):
    batches = list(domain.edit_batches(inputs, num, batch_size, classes=classes, options=ImageEditOptions(**opts)))
    return batches, torch.cat([b["known"] for b in batches]), torch.cat([b["keep"] for b in batches])


# ---------------------------------------------------------------- batches
def test_an_input_at_the_data_resolution_is_known_exactly_and_repeated_num_times(tmp_path):
    path, a = _gray(tmp_path / "in.png")
    batches, known, keep = _one(_digits(), [path], num=5, batch_size=2, half="right")
    assert [b["shape"] for b in batches] == [(2, 1, R, R), (2, 1, R, R), (1, 1, R, R)]
    assert [i for b in batches for i in b["index"]] == list(range(5))
    # [-1, 1] values that map back to the file's bytes, in every copy
    back = ((known + 1) * 127.5).round().to(torch.uint8).numpy()
    assert all(np.array_equal(back[i, 0], a) for i in range(5))
    assert known.min() >= -1 and known.max() <= 1
    # no --class: no condition (a class-conditional U-Net is then asked unconditionally)
    assert all("cond" not in b for b in batches)
    assert keep.shape == (5, 1, R, R)
    assert torch.equal(keep[:, :, :, : R // 2], torch.ones(5, 1, R, R // 2))
    assert torch.equal(keep[:, :, :, R // 2:], torch.zeros(5, 1, R, R // 2))


@pytest.mark.parametrize(
    ("half", "generated"),
    [("left", (slice(None), slice(0, 8))), ("right", (slice(None), slice(8, 16))),
     ("top", (slice(0, 8), slice(None))), ("bottom", (slice(8, 16), slice(None)))],
)
def test_half_generates_that_half(half, generated):
    keep = region_keep(ImageEditOptions(half=half), R)[0]
    expected = torch.ones(R, R)
    expected[generated] = 0
    assert torch.equal(keep, expected) and keep.sum() == R * R / 2


def test_box_is_generated_in_x_then_y_with_the_far_corner_excluded():
    keep = region_keep(ImageEditOptions(box="2,5,7,6"), R)[0]
    assert keep.sum() == R * R - 5  # x 2..6 on the one row y = 5
    assert torch.equal(torch.nonzero(keep == 0), torch.tensor([[5, x] for x in range(2, 7)]))
    assert region_keep(ImageEditOptions(box="0,0,16,16"), R).sum() == 0


def test_classes_are_the_outputs_condition_cycled_and_several_inputs_keep_their_order(tmp_path):
    p1, a1 = _gray(tmp_path / "a.png", seed=1)
    p2, a2 = _gray(tmp_path / "b.png", seed=2)
    batches, known, _ = _one(_digits(), [p1, p2], num=3, batch_size=4, classes=[3, 8], box="0,0,4,4")
    assert torch.cat([b["cond"] for b in batches]).tolist() == [3, 8, 3, 8, 3, 8]
    assert [lb for b in batches for lb in b["labels"]] == ["3", "8", "3", "8", "3", "8"]
    assert [s for b in batches for s in b["inputs"]] == [p1] * 3 + [p2] * 3
    back = ((known + 1) * 127.5).round().to(torch.uint8).numpy()[:, 0]
    assert np.array_equal(back[2], a1) and np.array_equal(back[3], a2)


def test_no_region_keeps_nothing_for_sdedit_and_inversion(tmp_path):
    path, _ = _gray(tmp_path / "in.png")
    _, _, keep = _one(_digits(), [path], num=2)
    assert keep.shape == (2, 1, R, R) and keep.sum() == 0


def test_inputs_are_loaded_like_the_folder_data_colour_to_gray_and_gray_to_rgb(tmp_path):
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, 10:50] = (255, 0, 0)  # the centre 40x40 crop is red
    path = _png(tmp_path / "red.jpg", rgb)
    _, known, _ = _one(_digits(), [path])
    assert known.shape == (1, 1, R, R)
    red_as_gray = 0.299 * 255 / 127.5 - 1  # PIL's luma of pure red
    assert torch.allclose(known, torch.full_like(known, red_as_gray), atol=0.03)
    colour = ImageDomain(ImageOptions(path=str(tmp_path), channels=3, resolution=8))
    colour.load_state_dict({"labels": None, "channels": 3, "resolution": 8})
    g, _ = _gray(tmp_path / "g.png", size=(8, 8))
    _, known, keep = _one(colour, [g], half="top")
    assert known.shape == (1, 3, 8, 8) and keep.shape == (1, 1, 8, 8)
    assert torch.equal(known[:, 0], known[:, 1]) and torch.equal(known[:, 1], known[:, 2])


# ------------------------------------------------------------------ masks
def test_mask_white_is_generated_at_the_data_resolution(tmp_path):
    path, _ = _gray(tmp_path / "in.png", size=(40, 40))
    m = np.zeros((R, R), np.uint8)
    m[3:6, 10:14] = 255
    m[0, 0] = 20      # near-black and near-white (JPEG noise) are tolerated
    m[3, 10] = 235
    mask = _png(tmp_path / "mask.png", m)
    _, _, keep = _one(_digits(), [path], mask=mask)
    expected = torch.ones(R, R)
    expected[3:6, 10:14] = 0
    assert torch.equal(keep[0, 0], expected)


def test_mask_of_the_inputs_size_is_cropped_like_the_input_and_resized_nearest(tmp_path):
    path, _ = _gray(tmp_path / "wide.png", size=(48, 32))  # centre crop: columns 8..39
    m = np.zeros((32, 48), np.uint8)
    m[:, 8:24] = 255  # the left half of the crop
    m[:, :8] = 255    # outside the crop: ignored
    _, _, keep = _one(_digits(), [path], mask=_png(tmp_path / "m.png", m))
    assert torch.equal(keep[0], region_keep(ImageEditOptions(half="left"), R))


def test_a_grey_mask_is_refused_naming_it_and_the_first_grey_pixel(tmp_path):
    path, _ = _gray(tmp_path / "in.png")
    m = np.zeros((R, R), np.uint8)
    m[4, 9] = 128
    mask = _png(tmp_path / "soft.png", m)
    with pytest.raises(UserError, match=r"--mask .*soft\.png is not black and white: 1 of 256 pixels are grey.*x=9, y=4"):
        _one(_digits(), [path], mask=mask)


def test_a_mask_of_another_size_is_refused_with_both_allowed_sizes(tmp_path):
    path, _ = _gray(tmp_path / "in.png", size=(20, 20))
    mask = _png(tmp_path / "m.png", np.zeros((10, 12), np.uint8))
    with pytest.raises(UserError, match=r"--mask .*m\.png is 12x10 pixels; it must be the size of the input .*in\.png \(20x20\) or the data resolution \(16x16\)"):
        _one(_digits(), [path], mask=mask)


def test_a_mask_with_nothing_to_generate_is_refused(tmp_path):
    path, _ = _gray(tmp_path / "in.png")
    mask = _png(tmp_path / "black.png", np.zeros((R, R), np.uint8))
    with pytest.raises(UserError, match=r"--mask .*black\.png: no white pixel at 16x16"):
        _one(_digits(), [path], mask=mask)


# -------------------------------------------------------------- bad input
def test_bad_inputs_are_refused_by_name(tmp_path):
    d = _digits()
    good, _ = _gray(tmp_path / "in.png")
    with pytest.raises(UserError, match=r"--input .*nope\.png: no such file"):
        _one(d, [good, str(tmp_path / "nope.png")])
    (tmp_path / "fake.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(UserError, match=r"--input .*fake\.png: not a readable PNG/JPEG image \(UnidentifiedImageError\)"):
        _one(d, [str(tmp_path / "fake.png")])
    with pytest.raises(UserError, match=r"--box 0,0,17,4: out of range for 16x16 images; need 0 <= x0 < x1 <= 16"):
        _one(d, [good], box="0,0,17,4")
    with pytest.raises(UserError, match=r"--box 4,0,4,8: out of range"):
        _one(d, [good], box="4,0,4,8")
    with pytest.raises(UserError, match=r"--box and --half: give at most one of --mask, --box, --half"):
        _one(d, [good], box="0,0,4,4", half="left")
    with pytest.raises(UserError, match=r"--input: give at least one"):
        _one(d, [])
    with pytest.raises(ValidationError, match=r"not four integers x0,y0,x1,y1"):
        ImageEditOptions(box="0,0,4")
    with pytest.raises(ValidationError):
        ImageEditOptions(half="middle")


# ---------------------------------------------------------------- writing
def test_write_edits_writes_a_png_per_edit_and_the_before_after_picture(tmp_path):
    d = _digits()
    path, a = _gray(tmp_path / "in" / "three.png")
    batches = list(d.edit_batches([path], 3, 2, classes=[8], options=ImageEditOptions(half="right")))
    results = []
    for b in batches:
        x = torch.where(b["keep"] > 0.5, b["known"], torch.full_like(b["known"], 1.0))  # generated = white
        results.append((x, b))
    paths = d.write_edits(results, tmp_path / "out")
    assert [p.name for p in paths] == ["00000_three_8.png", "00001_three_8.png", "00002_three_8.png", BEFORE_AFTER]
    out = np.asarray(Image.open(paths[1]))
    assert np.array_equal(out[:, :8], a[:, :8]) and (out[:, 8:] == 255).all()
    pic = Image.open(paths[-1])
    assert pic.mode == "RGB"
    scale = MIN_CELL // R
    cell = R * scale
    w, h = pic.size
    assert h == 3 * (cell + 1) + 1 and (w - 52) == 3 * (cell + 1) + 1  # 3 rows x 3 edits, a label margin
    p = np.asarray(pic).astype(int)
    row = lambda r, c, y, x: p[1 + r * (cell + 1) + y * scale, 52 + 1 + c * (cell + 1) + x * scale]  # noqa: E731
    assert (row(0, 0, 2, 12) == a[2, 12]).all()           # the input, gray
    assert row(1, 0, 2, 12)[0] > row(1, 0, 2, 12)[1] + 60  # its generated region tinted red
    assert (row(1, 0, 2, 3) == a[2, 3]).all()             # the kept region as it is
    assert (row(2, 2, 2, 12) == 255).all()                # the output


# -------------------------------------------------------------------- CLI
TINY = [
    "--set", "data.resolution=8", "--set", "backbone.base_channels=8", "--set", "backbone.num_res_blocks=1",
    "--set", "backbone.attention_resolutions=[4]", "--set", "training.batch_size=8", "--set", "training.preview_num=2",
    "--set", "training.checkpoint_every=0", "--set", "sampling.steps=3", "--max-steps", "2", "--no-progress",
    "--accelerator", "cpu", "--threads", "1",
]


def _cli(*args: str):
    from typer.testing import CliRunner

    from diffcore.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("imgedit") / "run"  # the embedded digits at 8x8, 2 steps
    res = _cli("train", "--plugin", "image-unet", "--out", run, *TINY)
    assert res.exit_code == 0, res.output
    return run


def test_cli_edit_keeps_the_kept_pixels_exactly_and_writes_the_picture(tiny_run, tmp_path):
    path, a = _gray(tmp_path / "digit.png", size=(8, 8), seed=3)
    out = tmp_path / "out"
    res = _cli("edit", "--run", tiny_run, "--input", path, "--half", "right", "--class", "8", "--num", "2",
               "--resample", "2", "--out", out, "--threads", "1")
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == ["00000_digit_8.png", "00001_digit_8.png", BEFORE_AFTER]
    outs = [np.asarray(Image.open(out / n)) for n in names[:2]]
    for o in outs:
        assert o.shape == (8, 8) and np.array_equal(o[:, :4], a[:, :4])  # kept: byte for byte
    assert not np.array_equal(outs[0][:, 4:], a[:, 4:])  # generated
    assert not np.array_equal(outs[0][:, 4:], outs[1][:, 4:])  # two different edits
    assert Image.open(out / BEFORE_AFTER).mode == "RGB"

    mask = np.zeros((8, 8), np.uint8)
    mask[2:5, 1:7] = 255
    out2 = tmp_path / "out2"
    res = _cli("edit", "--run", tiny_run, "--input", path, "--mask", _png(tmp_path / "m.png", mask), "--out", out2,
               "--threads", "1")
    assert res.exit_code == 0, res.output
    o = np.asarray(Image.open(out2 / "00000_digit.png"))
    assert np.array_equal(o[mask == 0], a[mask == 0])

    out3 = tmp_path / "out3"
    res = _cli("edit", "--run", tiny_run, "--input", path, "--mode", "sdedit", "--strength", "0.5", "--out", out3,
               "--threads", "1")
    assert res.exit_code == 0, res.output
    assert (out3 / "00000_digit.png").is_file() and (out3 / BEFORE_AFTER).is_file()


def test_cli_bad_edit_inputs_are_one_error_line(tiny_run, tmp_path):
    path, _ = _gray(tmp_path / "digit.png", size=(8, 8))
    (tmp_path / "fake.png").write_bytes(b"not a png")
    cases = [
        (["--input", path, "--mask", _png(tmp_path / "m5.png", np.zeros((5, 5), np.uint8))], "is 5x5 pixels"),
        (["--input", path, "--mask", _png(tmp_path / "soft.png", np.full((8, 8), 100, np.uint8))], "is not black and white"),
        (["--input", path, "--box", "0,0,9,4"], "--box 0,0,9,4: out of range for 8x8 images"),
        (["--input", path, "--box", "0,0"], "--box"),
        (["--input", path, "--half", "middle"], "--half"),
        (["--input", str(tmp_path / "fake.png"), "--half", "left"], "fake.png: not a readable PNG/JPEG image"),
        (["--input", str(tmp_path / "none.png"), "--half", "left"], "none.png: no such file"),
    ]
    for args, words in cases:
        res = _cli("edit", "--run", tiny_run, *args, "--out", tmp_path / "never", "--threads", "1")
        assert res.exit_code == 2, (args, res.output)
        assert "error:" in res.output and words in res.output, (args, res.output)
        assert "Traceback" not in res.output
        assert not (tmp_path / "never").exists()
