"""Losses: weightings, the classical objectives as special cases, masks, training works."""

import pytest
import torch

import diffcore
from diffcore import forward, losses, schedules
from diffcore.testing import GaussianMixture, energy_distance

F64 = torch.float64
GM = GaussianMixture.default()


def fixed_noise(eps):
    return lambda like: eps


def imperfect_eps_model(schedule):
    exact = GM.predictor(schedule, "eps")
    return lambda x, t: exact(x, t) + 0.3 * torch.sin(3 * x)


@pytest.mark.parametrize("name", ["cosine", "vp", "ve", "flow"])
def test_snr_weighting_makes_every_prediction_the_eps_mse(name):
    """With weighting "snr" the loss is the eps-MSE whatever the network predicts."""
    s = schedules.get(name)
    g = torch.Generator().manual_seed(0)
    x0 = GM.sample(512, g)
    eps = torch.randn(512, 2, generator=g, dtype=F64)
    t = losses.sample_t(s, 512, generator=g).to(F64)
    eps_model = imperfect_eps_model(s)
    ref = ((eps_model(forward.q_sample(s, x0, t, eps), t) - eps) ** 2).mean()
    for pred in forward.PREDICTIONS:
        model = lambda x, tt, p=pred: forward.convert(eps_model(x, tt), "eps", p, x, tt, s)  # noqa: E731
        val = diffcore.DiffusionLoss(s, pred, "snr")(model, x0, t=t, noise_fn=fixed_noise(eps))
        assert float(val) == pytest.approx(float(ref), rel=1e-6), pred


def test_min_snr_weights():
    s = schedules.get("cosine")
    t = torch.tensor([0.01, 0.3, 0.9], dtype=F64)
    snr = torch.exp(s.log_snr(t))
    assert torch.allclose(diffcore.DiffusionLoss(s, "eps", "min-snr", 5.0).weight(t), snr.clamp(max=5) / snr)
    assert torch.allclose(diffcore.DiffusionLoss(s, "x0", "min-snr", 5.0).weight(t), snr.clamp(max=5))
    assert torch.allclose(diffcore.DiffusionLoss(s, "v", "min-snr", 5.0).weight(t), snr.clamp(max=5) / (snr + 1))


def test_smld_and_flow_matching_are_special_cases():
    g = torch.Generator().manual_seed(1)
    x0 = GM.sample(256, g)
    eps = torch.randn(256, 2, generator=g, dtype=F64)
    ve = schedules.get("ve")
    t = losses.sample_t(ve, 256, generator=g).to(F64)
    score_model = lambda x, tt: -x / (1 + ve.sigma(tt)[:, None] ** 2)  # noqa: E731
    sig = ve.sigma(t)[:, None]
    x_t = x0 + sig * eps
    # Song & Ermon (2019), eq. 6 with lambda(sigma) = sigma^2
    dsm = (sig**2 * (score_model(x_t, t) + eps / sig) ** 2).mean()
    assert float(diffcore.DiffusionLoss(ve, "score", "snr")(score_model, x0, t=t, noise_fn=fixed_noise(eps))) == pytest.approx(float(dsm), rel=1e-9)
    fl = schedules.get("flow")
    v_model = lambda x, tt: 0.5 * x  # noqa: E731
    x_t = (1 - t[:, None]) * x0 + t[:, None] * eps
    fm = ((v_model(x_t, t) - (eps - x0)) ** 2).mean()  # Lipman et al. (2023), conditional FM
    assert float(diffcore.DiffusionLoss(fl, "velocity")(v_model, x0, t=t, noise_fn=fixed_noise(eps))) == pytest.approx(float(fm), rel=1e-9)


def test_exact_denoiser_minimises_the_loss():
    s = schedules.get("linear")
    loss = diffcore.DiffusionLoss(s, "eps")
    x0 = GM.sample(4000, torch.Generator().manual_seed(2))
    exact = GM.predictor(s, "eps")
    vals = []
    for model in [exact, lambda x, t: exact(x, t) * 1.1, lambda x, t: exact(x, t) + 0.05]:
        vals.append(float(loss(model, x0, generator=torch.Generator().manual_seed(3))))
    assert vals[0] < vals[1] and vals[0] < vals[2]


def test_mask_ignores_padding_and_cond_is_passed():
    s = schedules.get("cosine")
    x0 = torch.randn(4, 6, 3)
    mask = torch.ones(4, 6, 1)
    mask[:, 4:] = 0
    seen = []

    def model(x, t, cond):
        seen.append(cond)
        out = torch.zeros_like(x)
        out[:, 4:] = 1e6  # garbage at padding must not count
        return out

    val = diffcore.DiffusionLoss(s, "x0")(model, x0, "graph", mask=mask, generator=torch.Generator().manual_seed(0))
    assert seen == ["graph"]
    assert float(val) == pytest.approx(float((x0[:, :4] ** 2).mean()), rel=1e-5)


def test_training_times():
    s = schedules.get("linear", num_steps=25)
    t = losses.sample_t(s, 2000, generator=torch.Generator().manual_seed(0))
    assert set((t * 25).round().int().tolist()) == set(range(1, 26))
    with pytest.raises(ValueError, match="num_steps > 20"):
        schedules.get("linear", num_steps=10)
    v = schedules.get("vp")
    t = losses.sample_t(v, 2000, generator=torch.Generator().manual_seed(0))
    assert float(t.min()) >= v.t_min and float(t.max()) <= v.t_max


def test_bad_names():
    with pytest.raises(ValueError, match="valid"):
        diffcore.DiffusionLoss("cosine", "noise")
    with pytest.raises(ValueError, match="valid"):
        diffcore.DiffusionLoss("cosine", "eps", "likelihood")


def test_a_small_network_learns_the_mixture():
    """The loss trains: an MLP fit for 1500 steps samples several times closer to the target than noise does."""
    torch.manual_seed(0)
    s = schedules.get("linear")
    net = torch.nn.Sequential(torch.nn.Linear(3, 128), torch.nn.SiLU(), torch.nn.Linear(128, 128), torch.nn.SiLU(), torch.nn.Linear(128, 2))
    model = lambda x, t: net(torch.cat([x, t[:, None]], dim=1))  # noqa: E731
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    loss = diffcore.DiffusionLoss(s, "eps")
    g = torch.Generator().manual_seed(1)
    for _ in range(1500):
        x0 = GM.sample(256, g).float()
        opt.zero_grad()
        loss(model, x0).backward()
        opt.step()
    target = GM.sample(1000, g)
    x = diffcore.generate(model, torch.randn(1000, 2, generator=g), s, sampler="ddim", steps=50)
    d_model = float(energy_distance(x, target))
    d_noise = float(energy_distance(torch.randn(1000, 2, generator=g), target))
    assert d_model < 0.3 * d_noise, (d_model, d_noise)
