"""Image metrics: the Fréchet distance formula, and the digit classifier's verdict on real
digits (near the floor, consistent classes) versus noise (far from it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffcore_image.domain import ImageDomain, ImageOptions
from diffcore_image.metrics import MetricModel, frechet_distance, image_metrics


def test_frechet_matches_the_closed_form_and_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 5))
    b = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5)) + 2.0
    from scipy import linalg

    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    # 1-D: (mu1 - mu2)^2 + (sd1 - sd2)^2
    x, y = np.array([[0.0], [2.0]]), np.array([[5.0], [9.0]])
    assert frechet_distance(x, y) == pytest.approx((1 - 7) ** 2 + (np.sqrt(2) - np.sqrt(8)) ** 2)


@pytest.fixture(scope="module")
def digits():
    d = ImageDomain(ImageOptions())
    d.setup()
    return d


_CACHE = {}


def _cached(x, y):
    """One fitted metric model per data set for the whole module (fitting takes seconds)."""
    key = (x.data_ptr(), len(x))
    if key not in _CACHE:
        _CACHE[key] = MetricModel(x, y)
    return _CACHE[key]


@pytest.fixture(scope="module")
def metric_model(digits):
    return _cached(digits._train.x, digits._train.y)


def test_classifier_and_frechet_on_real_digits_vs_noise(digits, metric_model):
    tr, va = digits._train, digits._val
    # "samples" = 1000 real training digits (a perfect generator of the training set); the
    # reference is the held-out set. At 1000 samples the floor varies by ~6% between draws.
    g = torch.Generator().manual_seed(1)
    idx = torch.randperm(len(tr.x), generator=g)[:1000]
    real = image_metrics(metric_model, tr.x[idx], tr.y[idx], tr.x, va.x, va.y)
    assert real["classifier_test_accuracy"] >= 0.93
    assert real["class_consistency"] >= 0.95  # training digits, their own labels
    assert 0.75 < real["frechet_ratio"] < 1.3, real
    noise = torch.rand(1000, 1, 16, 16) * 2 - 1
    far = image_metrics(metric_model, noise, tr.y[idx], tr.x, va.x, va.y)
    assert far["frechet_ratio"] > 20 and far["class_consistency"] < 0.5, far
    # a mode-dropping "generator" (only digits 0-4) is clearly worse than real data
    half = tr.x[tr.y < 5]
    assert image_metrics(metric_model, half, None, tr.x, va.x, va.y)["frechet_ratio"] > 3


def test_evaluate_gives_high_consistency_on_real_held_out_digits(digits, monkeypatch, tmp_path):
    """Domain.evaluate with a 'sampler' that returns held-out digits of the requested class."""
    va = digits._val
    by_class = {c: va.x[va.y == c] for c in range(10)}
    seen = {c: 0 for c in range(10)}

    def sample_fn(batch):
        out = []
        for c in batch["cond"].tolist():
            out.append(by_class[c][seen[c] % len(by_class[c])])
            seen[c] += 1
        return torch.stack(out)

    import diffcore_image.domain as dom

    monkeypatch.setattr(dom, "MetricModel", lambda x, y, **kw: _cached(x, y))
    m = digits.evaluate(sample_fn, 300, tmp_path)
    assert m["class_consistency"] >= 0.9
    assert set(m) >= {"class_consistency", "frechet", "frechet_floor", "frechet_ratio", "classifier_test_accuracy"}
    assert (tmp_path / "eval_grid.png").is_file()


def test_unlabelled_folder_gets_pca_frechet(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(120):
        a = np.full((8, 8), 60, np.uint8)
        a[rng.integers(0, 8), :] = 250  # one bright row
        Image.fromarray(a).save(tmp_path / f"{i}.png")
    d = ImageDomain(ImageOptions(path=str(tmp_path), resolution=8, val_fraction=0.25))
    d.setup()
    m = d.evaluate(lambda b: torch.rand(b["shape"]) * 2 - 1, 30, None)
    assert "class_consistency" not in m and m["frechet_ratio"] > 3, m
    real = d._train.x
    m = d.evaluate(lambda b: real[: b["shape"][0]], 30, None)
    assert m["frechet_ratio"] < 2, m
