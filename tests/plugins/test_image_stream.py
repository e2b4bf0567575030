"""Streaming an image folder from disk (data.stream): the same items as the in-memory path,
through worker processes, with clear messages for unreadable files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from diffcore.errors import UserError
from diffcore_image import stream
from diffcore_image.data import list_images
from diffcore_image.domain import ImageDomain, ImageOptions
from stream_checks import same_batches, stop_message


def _folder(root, classes=("cat", "dog"), per_class=6, mode="L"):
    """Labelled images of several sizes (some not square), PNG and JPEG, one in a nested folder."""
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c / "more").mkdir(parents=True)
        for i in range(per_class):
            w, h = 12 + 3 * i, 10 + 2 * (i % 3)
            shape = (h, w) + ((3,) if mode == "RGB" else ())
            where = root / c / "more" if i == 0 else root / c
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(where / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


def _domain(path, **kw) -> ImageDomain:
    d = ImageDomain(ImageOptions(path=str(path), resolution=8, **kw))
    d.setup()
    return d


def _items(ds) -> list[dict]:
    return [ds[i] for i in range(len(ds))]


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_streamed_items_equal_the_in_memory_ones(tmp_path, mode):
    _folder(tmp_path / "imgs", mode=mode)
    memory, streamed = _domain(tmp_path / "imgs", stream=False), _domain(tmp_path / "imgs", stream=True)
    assert isinstance(streamed.train_dataset(), stream.ImageFolderStream)
    assert not isinstance(memory.train_dataset(), stream.ImageFolderStream)
    assert streamed.labels == memory.labels == ["cat", "dog"]
    assert streamed.channels == memory.channels == (3 if mode == "RGB" else 1)
    for a, b in ((memory.train_dataset(), streamed.train_dataset()), (memory.val_dataset(), streamed.val_dataset())):
        assert len(a) == len(b) > 0
        for x, y in zip(_items(a), _items(b)):
            assert torch.equal(x["x"], y["x"]) and x["x"].dtype == y["x"].dtype == torch.float32
            assert torch.equal(x["cond"], y["cond"]) and y["cond"].dtype == torch.long
    # what evaluate measures against: the same held-out tensors
    assert torch.equal(streamed._sets()[1].x, memory._sets()[1].x)


def test_listing_sorts_like_paths_and_stores_names_compactly(tmp_path):
    root = tmp_path / "imgs"
    (root / "a" / "b").mkdir(parents=True)
    for name in ("a/b/x.png", "a/a-c.png", "a/Z.PNG", "a/notes.txt", "a/.hidden.png"):
        Image.new("L", (4, 4)).save(root / name, format="PNG") if name.endswith((".png", ".PNG")) else (root / name).write_text("x")
    listing = list_images(root)
    expected = sorted(p for p in (root / "a").rglob("*") if p.is_file() and p.suffix.lower() == ".png")
    assert [listing.path(i) for i in range(len(listing))] == expected  # Path order: a/b/x.png before a/a-c.png
    assert listing.rel.dtype.kind == "S" and listing.labels == ["a"] and listing.ids.tolist() == [0] * 4


def test_workers_yield_the_same_batches_and_the_dataset_pickles(tmp_path):
    _folder(tmp_path / "imgs", per_class=10)
    ds = _domain(tmp_path / "imgs", stream=True).train_dataset()
    assert same_batches(ds, 4) == 4
    assert len(pickle.dumps(ds)) < 4096 and torch.equal(pickle.loads(pickle.dumps(ds))[3]["x"], ds[3]["x"])


def test_auto_streams_above_the_thresholds(tmp_path, monkeypatch):
    _folder(tmp_path / "imgs")
    assert not isinstance(_domain(tmp_path / "imgs").train_dataset(), stream.ImageFolderStream)
    monkeypatch.setattr(stream, "STREAM_FILES", 5)
    assert isinstance(_domain(tmp_path / "imgs").train_dataset(), stream.ImageFolderStream)
    monkeypatch.setattr(stream, "STREAM_FILES", 100)
    monkeypatch.setattr(stream, "STREAM_BYTES", 1000)  # 12 files of ~300 pixels + 256-byte tensors
    assert isinstance(_domain(tmp_path / "imgs").train_dataset(), stream.ImageFolderStream)


def test_channels_come_from_the_probe_files(tmp_path):
    _folder(tmp_path / "imgs", mode="L")
    Image.fromarray(np.full((8, 8, 3), (255, 0, 0), dtype=np.uint8)).save(tmp_path / "imgs" / "dog" / "red.png")
    assert _domain(tmp_path / "imgs", stream=True).channels == 3
    assert _domain(tmp_path / "imgs", stream=True, channels=1).channels == 1


def test_an_unreadable_probe_file_is_one_message_naming_it(tmp_path):
    _folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "cat" / "0broken.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match=r"cannot read .*0broken\.png .*data\.stream: false"):
        _domain(tmp_path / "imgs", stream=True)
    # read up front, the same folder trains on the rest (the file is skipped with a warning)
    assert len(_domain(tmp_path / "imgs", stream=False).train_dataset()) == 10


@pytest.mark.parametrize("workers", [0, 2])
def test_a_file_broken_mid_training_stops_with_its_name(tmp_path, workers):
    broken = _folder(tmp_path / "imgs") / "dog" / "3.png"
    text = stop_message(_domain(tmp_path / "imgs", stream=True, val_fraction=0).train_dataset(), broken, stream.UnreadableImage, workers)
    assert text.startswith(f"data.path: cannot read {broken} (UnidentifiedImageError) while streaming") and "--resume" in text


def test_empty_and_missing_folders_are_user_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    for path, words in ((tmp_path / "empty", "no .png/.jpg/.jpeg file"), (tmp_path / "nope", "is not a folder")):
        with pytest.raises(UserError, match=words):
            _domain(path, stream=True)
