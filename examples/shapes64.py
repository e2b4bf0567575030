"""The embedded ``shapes64`` data set (``data.dataset: shapes64``), looked at and measured.

    python examples/shapes64.py                        # docs/img/shapes64_real.png: 4 renders of each of the 24 classes
    python examples/shapes64.py --export DIR --num 480 # renders as PNG files, one subfolder per class (data.path=DIR)
    python examples/shapes64.py --classifier           # the evaluate-time metric CNN: fit time and held-out accuracy

The grid has two columns per colour (red, green, blue, yellow, magenta, cyan) and two rows per
shape (circle, square, triangle, star, from the top), each cell a different render of its
class (docs/domains/shapes64.md). ``--export`` writes the renders of ``--seed`` (default 1,
not the training set's 0) as 64x64 RGB PNGs under ``DIR/<class>/``, a folder that ``--set
data.path=DIR --set data.resolution=64`` trains on. ``--classifier`` fits the metric CNN of
``diffcore evaluate`` on the training split (4,800 renders) and prints its accuracy on the
1,200 held-out renders and the Fréchet ratio of 1,000 real training renders, the figures
docs/domains/shapes64.md reports.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from diffcore_image import shapes
from diffcore_image.writer import safe_label, to_uint8, write_grid

ROOT = Path(__file__).resolve().parents[1]


def grid(path: Path, per_class: int = 4) -> Path:
    """``per_class`` (even) renders of every class: two rows per shape, two columns per colour."""
    x, y = shapes.render_shapes()
    cells = []
    for s in range(len(shapes.SHAPES)):
        for row in range(per_class // 2):
            for c in range(len(shapes.COLOURS)):
                for copy in range(2):
                    cells.append(x[(y == shapes.class_id(s, c)).nonzero()[2 * row + copy, 0]])
    return write_grid(torch.stack(cells), path, ncols=2 * len(shapes.COLOURS))


def export(folder: Path, num: int, seed: int) -> int:
    from PIL import Image

    x, y = shapes.render_shapes(num, seed)
    for i, (img, label) in enumerate(zip(to_uint8(x), y.tolist())):
        d = folder / safe_label(shapes.LABELS[label])
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i:05d}.png")
    return len(x)


def classifier() -> None:
    from diffcore_image.data import split
    from diffcore_image.metrics import ShapesMetricModel, shapes_metrics

    torch.set_num_threads(1)
    x, y = shapes.render_shapes()
    train, val = split(shapes_set(x, y), 0.2, 0)
    t0 = time.process_time()
    model = ShapesMetricModel(train.x, train.y)
    fit = time.process_time() - t0
    g = torch.Generator().manual_seed(1)
    idx = torch.randperm(len(train.x), generator=g)[:1000]
    m = shapes_metrics(model, train.x[idx], train.y[idx], train.x, val.x, val.y)
    print(f"fit: {fit:.1f} CPU s (one thread)")
    for key in ("classifier_test_accuracy", "classifier_shape_accuracy", "classifier_colour_accuracy",
                "class_consistency", "frechet", "frechet_floor", "frechet_ratio"):
        print(f"{key}: {m[key]:.4f}")


def shapes_set(x, y):
    from diffcore_image.data import ImageSet

    return ImageSet(x, y, list(shapes.LABELS))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grid", type=Path, default=ROOT / "docs" / "img" / "shapes64_real.png", help="where to write the grid")
    p.add_argument("--export", type=Path, default=None, help="write renders as PNGs into DIR/<class>/")
    p.add_argument("--num", type=int, default=480, help="renders to export")
    p.add_argument("--seed", type=int, default=1, help="seed of the exported renders")
    p.add_argument("--classifier", action="store_true", help="measure the metric CNN")
    a = p.parse_args()
    if a.export is not None:
        print(f"wrote {export(a.export, a.num, a.seed)} PNG(s) under {a.export}")
    elif a.classifier:
        classifier()
    else:
        print(f"wrote {grid(a.grid)}")


if __name__ == "__main__":
    main()
