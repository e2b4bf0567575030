"""The EGNN is E(3)-equivariant, and so is sampling with it: rotating, reflecting and
translating the input transforms the output accordingly, and generated geometry (pairwise
distances) does not depend on the frame of the noise."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("rdkit")

import diffcore  # noqa: E402
from diffcore_molecule.data import Rules, from_smiles, to_graph  # noqa: E402
from diffcore_molecule.domain import pad_graphs, zero_com_noise  # noqa: E402
from diffcore_molecule.backbone import EGNN, EGNNOptions  # noqa: E402

SMILES = ["CC(=O)O", "c1ccccc1O", "CCN"]  # 8, 13 and 10 atoms with hydrogens: padding is exercised


def _batch():
    rules = Rules()
    graphs = [to_graph(s, from_smiles(s, rules), rules) for s in SMILES]
    batch = pad_graphs([{"cond": {"atoms": g.atoms, "pairs": g.pairs}} for g in graphs])
    return {k: (v.double() if torch.is_tensor(v) else {kk: vv.double() for kk, vv in v.items()}) for k, v in batch.items()}


def _net(seed=0, **kw):
    torch.manual_seed(seed)
    net = EGNN(_batch()["cond"]["atoms"].shape[-1], _batch()["cond"]["pairs"].shape[-1], EGNNOptions(hidden=32, layers=3, **kw))
    # the last coordinate layers start at zero (identity map); give them weights so the test means something
    for layer in net.layers:
        if layer.coord is not None:
            torch.nn.init.normal_(layer.coord.weight, std=0.3)
    return net.double().eval()


def _rotation(seed: int, reflect: bool = False) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    q = q * torch.sign(torch.linalg.det(q))  # a proper rotation
    if reflect:
        q = q @ torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    return q


@pytest.mark.parametrize("reflect", [False, True])
@pytest.mark.parametrize("kw", [{}, {"coord_updates": False}, {"output": "displacement"}, {"distance_filter": False, "message_layers": 2}])
def test_output_rotates_with_the_input_and_ignores_translation(reflect, kw):
    batch = _batch()
    net = _net(**kw)
    mask = batch["mask"]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch["mask"].shape[:2] + (3,), generator=g, dtype=torch.float64) * mask
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    R = _rotation(2, reflect)
    shift = torch.tensor([1.5, -2.0, 0.7], dtype=torch.float64)
    out = net(x, t, batch["cond"])
    out_moved = net((x @ R.T + shift) * mask, t, batch["cond"])
    assert out.abs().max() > 1e-2  # not trivially zero
    torch.testing.assert_close(out_moved, out @ R.T, atol=1e-4, rtol=0)
    # output: zero at padding, zero centre of mass over the real atoms
    assert out[mask.expand_as(out) == 0].abs().max() == 0
    com = out.sum(1) / mask.sum(1)
    assert com.abs().max() < 1e-10


def test_output_permutes_with_the_atoms():
    batch = _batch()
    net = _net()
    n = int(batch["mask"][1].sum())
    x = torch.randn(1, n, 3, dtype=torch.float64)
    cond = {k: v[1:2, :n] if k != "pairs" else v[1:2, :n, :n] for k, v in batch["cond"].items()}
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.3], dtype=torch.float64)
    out = net(x, t, cond)
    cond_p = {"atoms": cond["atoms"][:, perm], "pairs": cond["pairs"][:, perm][:, :, perm], "atom_mask": cond["atom_mask"][:, perm]}
    torch.testing.assert_close(net(x[:, perm], t, cond_p), out[:, perm], atol=1e-10, rtol=0)


def _pairwise(x, mask):
    d = torch.cdist(x, x)
    m = mask[..., 0]
    return d * m[:, :, None] * m[:, None, :]


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_generated_geometry_does_not_depend_on_the_frame(sampler):
    """Sampling from rotated noise (and rotated fresh noise in stochastic steps) gives the
    rotated samples, so distances -- any E(3)-invariant statistic -- are unchanged."""
    batch = _batch()
    net = _net()
    mask = batch["mask"]
    schedule = diffcore.schedules.get("cosine", num_steps=50)
    R = _rotation(5, reflect=True)

    def run(rot):
        g = torch.Generator().manual_seed(7)
        noise_fn = lambda like: zero_com_noise(like, mask, g) @ rot.T  # noqa: E731
        z = noise_fn(torch.zeros(mask.shape[:2] + (3,), dtype=torch.float64))
        return diffcore.generate(lambda x, t: net(x, t, batch["cond"]), z, schedule, sampler=sampler, steps=10,
                                 noise_fn=noise_fn)

    eye = torch.eye(3, dtype=torch.float64)
    a, b = run(eye), run(R)
    torch.testing.assert_close(b, a @ R.T, atol=1e-4, rtol=0)
    torch.testing.assert_close(_pairwise(b, mask), _pairwise(a, mask), atol=1e-4, rtol=0)
    # generated samples stay centred and zero at padding
    assert (a.sum(1) / mask.sum(1)).abs().max() < 1e-8
    assert a[mask.expand_as(a) == 0].abs().max() == 0


@pytest.mark.parametrize("kw", [{}, {"coord_updates": False}, {"distance_filter": False}])
def test_every_parameter_gets_a_gradient(kw):
    # DistributedDataParallel (--strategy ddp) fails on parameters that take no part in the loss
    b = _batch()
    net = EGNN(b["cond"]["atoms"].shape[-1], b["cond"]["pairs"].shape[-1], EGNNOptions(hidden=16, layers=3, **kw)).double()
    x = torch.randn(b["cond"]["atoms"].shape[:2] + (3,), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    net(x, torch.tensor(0.5, dtype=torch.float64), b["cond"]).pow(2).sum().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None]
    assert not missing, missing
