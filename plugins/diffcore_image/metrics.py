"""Sample-quality metrics for images, computed from a small classifier trained on real images.

- **Class consistency**: the fraction of class-conditional samples that the classifier
  assigns to the class they were asked for.
- **Fréchet distance** (the FID recipe of Heusel et al. 2017, with our classifier in place of
  Inception): fit a Gaussian to the classifier's hidden-layer features of the samples and of
  the held-out real images, d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).
- **Its floor**: the same distance between two disjoint *real* sets of the same size (a
  subset of the training images vs the held-out images, averaged over ``FLOOR_DRAWS``
  subsets). With a finite sample even a perfect
  generator scores about this, so ``frechet_ratio = frechet / frechet_floor`` is the
  number to read: 1 means indistinguishable from real data at this sample size.

For ``data.dataset: shapes64`` the classifier is a small CNN with a shape head and a colour
head (:class:`ShapesMetricModel`), and :func:`shapes_metrics` adds shape and colour
consistency apart. Otherwise, for labelled data the features are the hidden layer of a
one-hidden-layer MLP (scikit-learn ``MLPClassifier``, fixed seed, so the metric is
deterministic) trained on the training split; without labels they are the first principal components of the pixels and
the distance of each image from their subspace.
"""

from __future__ import annotations

import numpy as np
import torch

FEATURES = 64          # hidden units of the metric classifier / principal components
MAX_FIT_IMAGES = 5000  # the metric model is fitted on at most this many training images
FLOOR_DRAWS = 5        # the floor is averaged over this many random real subsets


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of ``a`` and of ``b``.

    Tr((S1 S2)^(1/2)) is computed as the sum of square roots of the eigenvalues of the
    symmetric S1^(1/2) S2 S1^(1/2) (same spectrum as S1 S2), which stays real and stable.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(s1)
    s1_half = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.linalg.eigvalsh(s1_half @ s2 @ s1_half)
    tr_sqrt = np.sqrt(np.clip(cross, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)


def _flat(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().clamp(-1, 1).reshape(len(x), -1).cpu().numpy()


class MetricModel:
    """A classifier (when labels exist) and a feature map fitted on real training images.

    ``features``: hidden units of the classifier, or principal components without labels.
    Keep it well below the number of reference images, or the Fréchet distance of two
    Gaussians fitted to that few points says little."""

    def __init__(self, x_train: torch.Tensor, y_train: torch.Tensor | None, *, seed: int = 0, features: int = FEATURES):
        rng = np.random.default_rng(seed)
        idx = np.arange(len(x_train))
        if len(idx) > MAX_FIT_IMAGES:
            idx = np.sort(rng.choice(idx, MAX_FIT_IMAGES, replace=False))
        X = _flat(x_train[idx])
        self.classifier = None
        if y_train is not None:
            import warnings

            from sklearn.exceptions import ConvergenceWarning
            from sklearn.neural_network import MLPClassifier

            # 150 Adam epochs: past ~97% held-out accuracy on digits; more epochs change little.
            self.classifier = MLPClassifier(
                hidden_layer_sizes=(features,), alpha=1e-3, learning_rate_init=3e-3, max_iter=150, random_state=seed
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                self.classifier.fit(X, y_train[idx].numpy())
        else:
            from sklearn.decomposition import PCA

            self.pca = PCA(n_components=min(features, X.shape[0] - 1, X.shape[1]), random_state=seed).fit(X)

    def features(self, x: torch.Tensor) -> np.ndarray:
        X = _flat(x)
        if self.classifier is None:
            # the principal components, plus the distance from the principal subspace (what
            # the components cannot see: noise, artefacts off the data's main directions)
            z = self.pca.transform(X)
            residual = np.linalg.norm(X - self.pca.inverse_transform(z), axis=1, keepdims=True)
            return np.concatenate([z, residual], axis=1)
        # the hidden layer: relu(X W1 + b1)
        return np.maximum(X @ self.classifier.coefs_[0] + self.classifier.intercepts_[0], 0.0)

    def predict(self, x: torch.Tensor) -> np.ndarray:
        return self.classifier.predict(_flat(x))


def image_metrics(
    model: MetricModel,
    samples: torch.Tensor,
    requested: torch.Tensor | None,
    real_train: torch.Tensor,
    real_val: torch.Tensor,
    y_val: torch.Tensor | None,
    *,
    seed: int = 0,
) -> dict[str, float]:
    """The metrics of ``samples`` (classes ``requested``, or ``None``) against ``real_val``.

    The floor compares random subsets of ``real_train`` with ``real_val``, each subset
    having as many images as ``samples`` (capped by the training set size); it is averaged
    over ``FLOOR_DRAWS`` subsets, since one draw varies by tens of percent at a few hundred
    images."""
    out: dict[str, float] = {"num_samples": float(len(samples)), "num_reference": float(len(real_val))}
    if model.classifier is not None:
        if y_val is not None and len(y_val):
            out["classifier_test_accuracy"] = float((model.predict(real_val) == y_val.numpy()).mean())
        if requested is not None:
            out["class_consistency"] = float((model.predict(samples) == requested.numpy()).mean())
    if len(real_val) >= 2 and len(samples) >= 2:
        ref = model.features(real_val)
        out["frechet"] = frechet_distance(model.features(samples), ref)
        rng = np.random.default_rng(seed)
        k = min(len(samples), len(real_train))
        feats = model.features(real_train)
        floors = [frechet_distance(feats[rng.choice(len(feats), k, replace=False)], ref) for _ in range(FLOOR_DRAWS)]
        out["frechet_floor"] = float(np.mean(floors))
        out["frechet_floor_sd"] = float(np.std(floors))
        out["frechet_ratio"] = out["frechet"] / max(out["frechet_floor"], 1e-12)
    return out


# ----------------------------------------------------------------------------- shapes64
SHAPES_STEPS = 400  # Adam steps of the shapes64 metric CNN (batch SHAPES_BATCH; ~15-25 s on one CPU thread)
SHAPES_BATCH = 64


class _MaxAndMean(torch.nn.Module):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.cat([h.amax(dim=(2, 3)), h.mean(dim=(2, 3))], dim=1)


class ShapesMetricModel:
    """The metric model of ``data.dataset: shapes64``: a small CNN trained at evaluate time on
    real training renders (seeded, so deterministic on a CPU), with two heads, shape (4) and
    colour (6). Four 3x3 convolutions with BatchNorm and ReLU (16, 32, 64, 64 channels; the
    first three stride 2: 64 -> 8 pixels), the global max and mean of each channel (128
    numbers, what is there and how much of it: the Fréchet features), then a 64-unit ReLU
    layer, the input of both heads. (Flattening the 8x8 map instead keeps position but learns
    shape far slower: 40% shape accuracy after the same steps. The 64-unit layer as features
    makes a noisier distance: between 1,000 real renders and the held-out ones its standard
    deviation over draws is 25-50% of its mean, one direction dominating; with the 128 pooled
    numbers, 8-10%.) Trained with light Gaussian noise on the inputs (sd 0.05) so that a
    sample's faint artefacts do not flip its verdict. Same interface as :class:`MetricModel`; ``predict`` gives class ids
    ``shape * 6 + colour``."""

    def __init__(self, x_train: torch.Tensor, y_train: torch.Tensor, *, seed: int = 0,
                 steps: int | None = None, batch_size: int = SHAPES_BATCH, num_colours: int = 6, num_shapes: int = 4):
        from torch import nn

        self.num_colours = num_colours
        steps = SHAPES_STEPS if steps is None else steps
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            layers, c_in = [], x_train.shape[1]
            for c, stride in ((16, 2), (32, 2), (64, 2), (64, 1)):
                layers += [nn.Conv2d(c_in, c, 3, stride, 1), nn.BatchNorm2d(c), nn.ReLU()]
                c_in = c
            self.trunk = nn.Sequential(*layers, _MaxAndMean())  # -> the features, [B, 128]
            self.hidden = nn.Sequential(nn.Linear(2 * c_in, FEATURES), nn.ReLU())
            self.shape_head, self.colour_head = nn.Linear(FEATURES, num_shapes), nn.Linear(FEATURES, num_colours)
            params = [*self.trunk.parameters(), *self.hidden.parameters(), *self.shape_head.parameters(),
                      *self.colour_head.parameters()]
            opt = torch.optim.Adam(params, lr=2e-3)
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.15)
            y_train = y_train.long()
            shape_y, colour_y = y_train // num_colours, y_train % num_colours
            g = torch.Generator().manual_seed(seed)
            for _ in range(steps):
                idx = torch.randint(0, len(x_train), (batch_size,), generator=g)
                x = x_train[idx].float()
                x = x + 0.05 * torch.randn(x.shape, generator=g)
                h = self.hidden(self.trunk(x))
                loss = nn.functional.cross_entropy(self.shape_head(h), shape_y[idx]) + nn.functional.cross_entropy(
                    self.colour_head(h), colour_y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        self.classifier = self  # what image_metrics checks for
        self.trunk.eval()  # BatchNorm: the running statistics from here on
        for p in params:
            p.requires_grad_(False)

    @torch.no_grad()
    def _pooled(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.trunk(x[i:i + 500].detach().float().clamp(-1, 1).cpu()) for i in range(0, len(x), 500)])

    def features(self, x: torch.Tensor) -> np.ndarray:
        return self._pooled(x).double().numpy()

    @torch.no_grad()
    def predict_parts(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(shape ids, colour ids) of images ``x``."""
        h = self.hidden(self._pooled(x))
        return self.shape_head(h).argmax(1).numpy(), self.colour_head(h).argmax(1).numpy()

    def predict(self, x: torch.Tensor) -> np.ndarray:
        s, c = self.predict_parts(x)
        return s * self.num_colours + c


def shapes_metrics(model: ShapesMetricModel, samples: torch.Tensor, requested: torch.Tensor | None,
                   real_train: torch.Tensor, real_val: torch.Tensor, y_val: torch.Tensor | None, *, seed: int = 0) -> dict[str, float]:
    """:func:`image_metrics` (``class_consistency``: shape and colour both right) plus
    ``shape_consistency`` and ``colour_consistency`` of class-conditional samples, and the
    classifier's own shape and colour accuracy on the held-out real renders."""
    out = image_metrics(model, samples, requested, real_train, real_val, y_val, seed=seed)
    k = model.num_colours
    if y_val is not None and len(y_val):
        s, c = model.predict_parts(real_val)
        out["classifier_shape_accuracy"] = float((s == (y_val // k).numpy()).mean())
        out["classifier_colour_accuracy"] = float((c == (y_val % k).numpy()).mean())
    if requested is not None:
        s, c = model.predict_parts(samples)
        out["shape_consistency"] = float((s == (requested // k).numpy()).mean())
        out["colour_consistency"] = float((c == (requested % k).numpy()).mean())
    return out
