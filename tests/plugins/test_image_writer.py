"""The image writer: one PNG per sample, named by index and class, plus a grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from diffcore_image.domain import ImageDomain, ImageOptions
from diffcore_image.writer import MIN_CELL, grid, grid_columns, safe_label, to_uint8, write_images


def test_pixels_map_from_minus_one_one_to_bytes():
    x = torch.tensor([-1.0, -0.5, 0.0, 1.0, 3.0]).reshape(1, 1, 1, 5)
    assert to_uint8(x)[0, 0, :, 0].tolist() == [0, 64, 128, 255, 255]


def test_domain_writes_a_png_per_sample_and_a_readable_grid(tmp_path):
    d = ImageDomain(ImageOptions())
    results = []
    for batch in d.sample_batches(20, 8):
        b = batch["shape"][0]
        results.append((torch.linspace(-1, 1, b * 256).reshape(b, 1, 16, 16), batch))
    paths = d.write_samples(results, tmp_path)
    names = sorted(p.name for p in paths)
    assert "samples.png" in names and len(paths) == 21
    assert "00000_0.png" in names and "00019_9.png" in names
    one = Image.open(tmp_path / "00003_3.png")
    assert one.size == (16, 16) and one.mode == "L"
    # sample 3 is the 4th image of the first batch: compare its pixels
    expected = to_uint8(results[0][0][3:4])[0, :, :, 0]
    assert np.array_equal(np.asarray(one), expected)
    g = Image.open(tmp_path / "samples.png")
    g.load()
    scale = MIN_CELL // 16
    # 20 samples of 10 classes: a near-square 5 x 4 grid (not a 10 x 2 strip), 1-pixel gaps
    assert g.size == (5 * (16 * scale + 1) + 1, 4 * (16 * scale + 1) + 1)


def _grid_size(d: ImageDomain, tmp_path, num: int, classes=None) -> tuple[int, int]:
    results = [(torch.zeros(b["shape"]), b) for b in d.sample_batches(num, 7, classes=classes)]
    d.write_samples(results, tmp_path, None)
    with Image.open(tmp_path / "samples.png") as g:
        return g.size


def test_one_class_grid_is_near_square(tmp_path):
    # `diffcore sample --class 3 --num 16` wrote a 64 x 1040 one-column grid
    cell = 16 * (MIN_CELL // 16) + 1
    assert _grid_size(ImageDomain(ImageOptions()), tmp_path, 16, classes=[3]) == (4 * cell + 1, 4 * cell + 1)


@pytest.mark.parametrize("num, classes, cols", [(100, None, 10), (64, None, 10), (16, None, 4), (12, [3, 5], 4), (5, [1], 3)])
def test_grid_columns_near_square_and_one_class_per_column_when_that_fits(tmp_path, num, classes, cols):
    w, h = _grid_size(ImageDomain(ImageOptions()), tmp_path, num, classes)
    cell = 16 * (MIN_CELL // 16) + 1
    rows = -(-num // cols)
    assert (w, h) == (cols * cell + 1, rows * cell + 1)
    assert max(cols, rows) <= 2 * min(cols, rows)
    assert grid_columns(num, 10 if classes is None else len(classes)) == cols


def test_rgb_and_unlabelled_images(tmp_path):
    x = torch.rand(3, 3, 8, 8) * 2 - 1
    paths = write_images(x, tmp_path, grid_name="grid.png")
    assert [p.name for p in paths] == ["00000.png", "00001.png", "00002.png", "grid.png"]
    assert Image.open(paths[0]).mode == "RGB"
    assert Image.open(paths[-1]).size == grid(to_uint8(x)).shape[1::-1]


def test_labels_are_made_safe_for_file_names():
    assert safe_label("a/b c") == "a-b-c" and safe_label("..") == "class" and safe_label("7") == "7"
