"""The image domain's data: embedded digits, folders of PNG/JPEG files, sampling batches."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

import diffcore
from diffcore.errors import UserError
from diffcore_image.data import _to_array, load_digits, load_folder, split
from diffcore_image.domain import ImageDomain, ImageOptions
from diffcore_image.backbone import UNetOptions, build_unet


def test_digits_shape_range_classes_and_determinism():
    a, b = load_digits(16), load_digits(16)
    assert a.x.shape == (1797, 1, 16, 16) and a.x.dtype == torch.float32
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert float(a.x.min()) == -1.0 and float(a.x.max()) == 1.0
    assert a.labels == [str(i) for i in range(10)]
    assert sorted(a.y.unique().tolist()) == list(range(10))
    # at 8x8 the values are exactly v / 8 - 1 for the raw 0..16 values
    raw = load_digits(8)
    from sklearn.datasets import load_digits as sk

    assert torch.allclose(raw.x[:, 0], torch.from_numpy(sk().images).float() / 8 - 1)


def test_digits_split_is_deterministic_stratified_and_disjoint():
    d = load_digits(8)
    tr, va = split(d, 0.2, seed=0)
    tr2, va2 = split(d, 0.2, seed=0)
    assert torch.equal(va.x, va2.x) and torch.equal(tr.y, tr2.y)
    assert len(va.x) == 359 and len(tr.x) == 1797 - 359
    counts = np.bincount(va.y.numpy(), minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: ~20% of each class
    # no held-out image is in the training split
    flat_tr = {bytes(v.numpy().tobytes()) for v in tr.x}
    overlap = sum(bytes(v.numpy().tobytes()) in flat_tr for v in va.x)
    assert overlap <= 2  # the digits set itself holds a few exact duplicates
    other = split(d, 0.2, seed=1)[1]
    assert not torch.equal(other.x, va.x)


def _write_folder(root, classes=("cat", "dog"), per_class=4, size=(20, 12), mode="L", corrupt=True):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / c / f"{i}.{'png' if i % 2 else 'jpg'}")
    if corrupt:
        (root / classes[0] / "broken.png").write_bytes(b"this is not a png")
    return root


def test_folder_with_a_corrupt_file_trains_on_the_rest_and_names_it(tmp_path, caplog):
    _write_folder(tmp_path / "imgs")
    caplog.set_level(logging.WARNING, logger="diffcore_image")
    domain = ImageDomain(ImageOptions(path=str(tmp_path / "imgs"), resolution=8))
    domain.setup()
    text = caplog.text
    assert "broken.png" in text and "skipped 1 unreadable image file(s) of 9" in text
    assert domain.labels == ["cat", "dog"] and domain.channels == 1
    train, val = domain.train_dataset(), domain.val_dataset()
    assert len(train) + len(val) == 8
    item = train[0]
    assert item["x"].shape == (1, 8, 8) and float(item["x"].abs().max()) <= 1.0 and item["cond"].dtype == torch.long
    # and a training step runs on what was read
    net = build_unet(UNetOptions(base_channels=8, channel_mult=[1, 2], num_res_blocks=1, attention_resolutions=[4]), domain)
    batch = domain.collate([train[i] for i in range(len(train))])
    loss = diffcore.DiffusionLoss(diffcore.schedules.get("cosine"))(net, batch["x"], batch["cond"])
    loss.backward()
    assert torch.isfinite(loss)


def test_folder_resolution_channels_and_unlabelled(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)).save(root / f"{i}.png")
    s = load_folder(root, 16)
    assert s.labels is None and s.y is None and s.x.shape == (3, 3, 16, 16)  # colour -> RGB
    assert load_folder(root, 16, channels=1).x.shape == (3, 1, 16, 16)
    gray = tmp_path / "gray"
    gray.mkdir()
    Image.new("RGB", (10, 10), (90, 90, 90)).save(gray / "a.png")  # RGB file, gray content
    g = load_folder(gray, 4)
    assert g.x.shape == (1, 1, 4, 4) and torch.allclose(g.x, torch.full_like(g.x, 90 / 127.5 - 1))
    d = ImageDomain(ImageOptions(path=str(root), resolution=16, val_fraction=0.0))
    assert d.labels is None
    assert d.val_dataset() is None and "cond" not in d.train_dataset()[0]


def test_16_bit_png_folder_is_scaled_by_65535_not_clipped_to_white(tmp_path):
    # a 16-bit grayscale PNG used to load 94% white: PIL's convert("L") clips every value > 255
    root = tmp_path / "deep"
    root.mkdir()
    arr = np.random.default_rng(2).integers(0, 65536, (16, 16)).astype(np.uint16)
    Image.fromarray(arr).save(root / "a.png")
    with Image.open(root / "a.png") as img:
        assert img.mode.startswith("I")  # what a 16-bit PNG opens as
    Image.fromarray((arr // 257).astype(np.uint8)).save(root / "b.png")  # the same picture, 8-bit
    d = ImageDomain(ImageOptions(path=str(root), resolution=16, val_fraction=0.0))
    deep, flat = (d.train_dataset()[i]["x"][0].double() for i in range(2))
    expected = torch.from_numpy(arr / 65535.0)
    assert torch.allclose((deep + 1) / 2, expected, atol=1 / 255)
    assert torch.allclose(deep, flat, atol=2 / 255)  # 16-bit and 8-bit copies load alike
    assert float((deep > 0.99).double().mean()) < 0.1  # not mostly white


def test_32_bit_int_and_resized_16_bit_images_keep_their_range(tmp_path):
    arr = np.linspace(0, 65535, 32 * 32).reshape(32, 32)
    for mode, img in [("I", Image.fromarray(arr.astype(np.int32))), ("I;16", Image.fromarray(arr.astype(np.uint16)))]:
        assert img.mode == mode
        for channels in (1, 3):
            x = torch.from_numpy(_to_array(img, 16, channels))
            assert x.shape == (channels, 16, 16)
            assert x.min() >= -1 and x.max() <= 1
            assert abs(float(x.mean()) - 0.0) < 0.02  # a ramp over the full range averages mid-grey


@pytest.mark.parametrize("case", ["missing", "empty", "only-corrupt", "not-a-folder"])
def test_folder_without_readable_images_is_a_user_error_naming_it(tmp_path, case):
    path = tmp_path / "data"
    if case == "empty":
        path.mkdir()
        (path / "notes.txt").write_text("hello")
    elif case == "only-corrupt":
        path.mkdir()
        (path / "a.jpg").write_bytes(b"\xff\xd8 truncated")
        (path / "b.png").write_bytes(b"")
    elif case == "not-a-folder":
        path.write_text("x")
    with pytest.raises(UserError) as e:
        ImageDomain(ImageOptions(path=str(path))).setup()
    assert str(path) in str(e.value) and "data.path" in str(e.value)
    if case == "only-corrupt":
        assert "2 file(s)" in str(e.value)


def test_digits_refuse_rgb():
    with pytest.raises(UserError, match="data.channels"):
        ImageDomain(ImageOptions(channels=3)).setup()


def test_hflip_flips_about_half_the_time(tmp_path):
    root = tmp_path / "one"
    root.mkdir()
    a = np.zeros((8, 8), np.uint8)
    a[:, :2] = 255  # bright on the left
    Image.fromarray(a).save(root / "x.png")
    d = ImageDomain(ImageOptions(path=str(root), resolution=8, hflip=True, val_fraction=0.0))
    ds = d.train_dataset()
    torch.manual_seed(0)
    flipped = sum(bool(ds[0]["x"][0, :, -1].mean() > 0) for _ in range(200))
    assert 60 < flipped < 140  # Binomial(200, 1/2): sd ~7
    assert not ImageDomain(ImageOptions(path=str(root), resolution=8, val_fraction=0.0)).train_dataset()[0]["x"][0, :, -1].mean() > 0


def test_sample_batches_cover_num_and_spread_classes():
    d = ImageDomain(ImageOptions())
    batches = list(d.sample_batches(25, 10))
    assert [b["shape"] for b in batches] == [(10, 1, 16, 16), (10, 1, 16, 16), (5, 1, 16, 16)]
    cond = torch.cat([b["cond"] for b in batches])
    assert cond.tolist() == [i % 10 for i in range(25)]
    assert batches[0]["labels"][:3] == ["0", "1", "2"]
    assert sum((b["index"] for b in batches), []) == list(range(25))
    asked = torch.cat([b["cond"] for b in d.sample_batches(5, 4, classes=[3, 7])])
    assert asked.tolist() == [3, 7, 3, 7, 3]


def test_state_dict_lets_a_run_sample_without_its_data(tmp_path):
    _write_folder(tmp_path / "imgs", corrupt=False, mode="RGB")
    d = ImageDomain(ImageOptions(path=str(tmp_path / "imgs"), resolution=8))
    d.setup()
    state = d.state_dict()
    assert state == {"labels": ["cat", "dog"], "channels": 3, "resolution": 8}
    # the folder is gone: the restored domain still knows shape and labels
    import shutil

    shutil.rmtree(tmp_path / "imgs")
    e = ImageDomain(ImageOptions(path=str(tmp_path / "imgs"), resolution=8))
    e.load_state_dict(state)
    (b,) = e.sample_batches(4, 8)
    assert b["shape"] == (4, 3, 8, 8) and b["labels"] == ["cat", "dog", "cat", "dog"]
