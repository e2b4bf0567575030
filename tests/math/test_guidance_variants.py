"""Guidance variants (diffcore.math.guidance): CFG against a closed form, and each variant's
defining property.

The exact target: condition "c" is N(mu_c, s^2 I), the null condition N(mu_u, s^2 I). With
the same covariance each exact eps is affine in the mean (eps = (x - a E[x0|x]) / sigma, with
E[x0|x] = mu + a s^2 / (a^2 s^2 + sigma^2) (x - a mu)), so CFG with scale w is the exact eps of
N(mu_u + w (mu_c - mu_u), s^2 I): a deterministic sampler run on it must draw that Gaussian.
"""

import math

import pytest
import torch

from diffcore.math import schedules
from diffcore.math.denoiser import Denoiser
from diffcore.math.forward import to_x0_eps
from diffcore.math.guidance import Guidance, classifier_free, guided
from diffcore.math.sampling.ddim import sample_ddim
from diffcore.math.sampling.plan import SamplingPlan
from diffcore.testing import GaussianMixture

F64 = torch.float64
D, S = 8, 0.5
MU_C = torch.linspace(-1.0, 1.0, D, dtype=F64)
MU_U = torch.zeros(D, dtype=F64) + 0.3
SCHED = schedules.get("cosine")


def net_for(prediction="eps", mu_c=MU_C, mu_u=MU_U):
    """net(x, t, cond): the exact conditional model for cond not None, else the null one."""
    pc = GaussianMixture(mu_c[None], S).predictor(SCHED, prediction)
    pu = GaussianMixture(mu_u[None], S).predictor(SCHED, prediction)
    return lambda x, t, cond=None: pc(x, t) if cond is not None else pu(x, t)


def point(n=16, t=0.6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, D, generator=g, dtype=F64) * 1.3, torch.full((n,), t, dtype=F64)


def x0_of(out, x, t, prediction="eps"):
    return to_x0_eps(prediction, out, x, t, SCHED)[0]


def apply(variant, x, t, prediction="eps", w=4.0, **options):
    """The exact models guided by ``variant`` at scale ``w``, evaluated at (x, t)."""
    return guided(net_for(prediction), "c", Guidance.make(w, variant, options), SCHED, prediction)(x, t)


# ------------------------------------------------------------------------ (1) plain CFG
@pytest.mark.parametrize("w", [0.0, 1.0, 2.5])
def test_cfg_samples_the_closed_form_gaussian(w):
    n = 4000
    model = classifier_free(net_for(), "c", w)
    noise = torch.randn(n, D, generator=torch.Generator().manual_seed(7), dtype=F64)
    x = SamplingPlan.make(SCHED, "ddim", 100).run(model, noise)
    mu = MU_U + w * (MU_C - MU_U)
    # z-tests at 5 standard errors: mean (s / sqrt n) and variance (s^2 sqrt(2 / (n - 1))).
    assert (x.mean(0) - mu).abs().max() < 5 * S / math.sqrt(n)
    assert (x.var(0) - S**2).abs().max() < 5 * S**2 * math.sqrt(2 / (n - 1))


# ------------------------------------------------------------------------ (2) interval
def test_interval_covering_everything_is_cfg_and_empty_is_conditional():
    net, x, t = net_for(), *point()
    every = guided(net, "c", Guidance.make(3.0, "interval", {"lo": 0.0, "hi": math.inf}), SCHED)
    empty = guided(net, "c", Guidance.make(3.0, "interval", {"lo": 1.0, "hi": 1.0}), SCHED)
    assert torch.equal(every(x, t), classifier_free(net, "c", 3.0)(x, t))
    assert torch.equal(empty(x, t), net(x, t, "c"))
    # A whole run: only the steps inside (lo, hi] are guided, so the result lies between the two.
    noise = torch.randn(64, D, generator=torch.Generator().manual_seed(1), dtype=F64)
    plan = SamplingPlan.make(SCHED, "ddim", 20)
    runs = {k: plan.run(m, noise) for k, m in (("cfg", classifier_free(net, "c", 3.0)), ("cond", lambda x, t: net(x, t, "c")),
                                               ("every", every), ("empty", empty),
                                               ("part", guided(net, "c", Guidance.make(3.0, "interval", {"lo": 0.5, "hi": 3.0}), SCHED)))}
    assert torch.equal(runs["every"], runs["cfg"]) and torch.equal(runs["empty"], runs["cond"])
    assert not torch.allclose(runs["part"], runs["cfg"]) and not torch.allclose(runs["part"], runs["cond"])


def test_interval_is_per_sample():
    net, x, _ = net_for(), *point(4)
    t = torch.tensor([0.1, 0.5, 0.7, 0.95], dtype=F64)
    level = SCHED.sigma(t) / SCHED.alpha(t)
    lo, hi = float(level[1]) - 1e-9, float(level[2])
    out = guided(net, "c", Guidance.make(3.0, "interval", {"lo": lo, "hi": hi}), SCHED)(x, t)
    inside = torch.tensor([False, True, True, False])
    assert torch.equal(out[inside], classifier_free(net, "c", 3.0)(x, t)[inside])
    assert torch.equal(out[~inside], net(x, t, "c")[~inside])


# ------------------------------------------------------------------------ (3) rescaled CFG
@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_rescaled_phi0_is_cfg_and_phi1_keeps_the_conditional_std(prediction):
    net, x, t = net_for(prediction), *point()
    cfg = classifier_free(net, "c", 4.0)(x, t)
    assert torch.allclose(apply("rescaled", x, t, prediction, phi=0.0), cfg, rtol=0, atol=1e-12)
    phi1 = apply("rescaled", x, t, prediction, phi=1.0)
    std_c = x0_of(net(x, t, "c"), x, t, prediction).std(1)
    assert torch.allclose(x0_of(phi1, x, t, prediction).std(1), std_c, rtol=1e-10, atol=0)
    assert not torch.allclose(x0_of(cfg, x, t, prediction).std(1), std_c, rtol=1e-3, atol=0)  # it did something
    # space="output": the network's own output (the paper's v) is what is rescaled
    out1 = apply("rescaled", x, t, prediction, phi=1.0, space="output")
    assert torch.allclose(out1.std(1), net(x, t, "c").std(1), rtol=1e-10, atol=0)


# ------------------------------------------------------------------------ (4) APG
@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_apg_eta1_is_cfg_and_eta0_is_orthogonal(prediction):
    net, x, t = net_for(prediction), *point()
    cfg = classifier_free(net, "c", 4.0)(x, t)
    assert torch.allclose(apply("apg", x, t, prediction, eta=1.0), cfg, rtol=0, atol=1e-10)
    eta0 = apply("apg", x, t, prediction, eta=0.0)
    x0c = x0_of(net(x, t, "c"), x, t, prediction)
    update = x0_of(eta0, x, t, prediction) - x0c
    cos = (update * x0c).sum(1) / (update.norm(dim=1) * x0c.norm(dim=1))
    assert cos.abs().max() < 1e-10
    assert (update.norm(dim=1) > 1e-3).all()  # the orthogonal part is not empty
    # the same guidance through CFG's own update is not orthogonal (the test can fail)
    cfg_update = x0_of(cfg, x, t, prediction) - x0c
    assert ((cfg_update * x0c).sum(1) / (cfg_update.norm(dim=1) * x0c.norm(dim=1))).abs().min() > 1e-3


def test_apg_threshold_and_momentum():
    net, x, t = net_for(), *point()
    x0c = x0_of(net(x, t, "c"), x, t)
    d = x0c - x0_of(net(x, t, None), x, t)
    r = 0.5 * float(d.norm(dim=1).min())
    cut = apply("apg", x, t, eta=1.0, r=r)
    assert torch.allclose((x0_of(cut, x, t) - x0c).norm(dim=1), torch.full((x.shape[0],), 3.0 * r, dtype=F64), rtol=1e-10)
    # momentum: the first call is plain APG, the second adds beta times the first difference
    mom = guided(net, "c", Guidance.make(4.0, "apg", {"eta": 1.0, "beta": -0.5}), SCHED)
    first, second = mom(x, t), mom(x, t)
    assert torch.allclose(first, classifier_free(net, "c", 4.0)(x, t), atol=1e-10, rtol=0)
    assert torch.allclose(x0_of(second, x, t) - x0c, 3.0 * (d - 0.5 * d), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------ (5) CFG++
@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_cfgpp_ddim_step_is_the_papers_update(prediction):
    """Chung et al. 2024, CFG++ with DDIM: x_s = alpha_s x0_lambda + sigma_s eps_u."""
    net, lam = net_for(prediction), 0.6
    x, _ = point()
    ts = [0.8, 0.55, 0.3, 0.1, None]
    model = guided(net, "c", Guidance.make(lam, "cfg++"), SCHED, prediction, ts=ts)
    got = sample_ddim(Denoiser(model, SCHED, prediction), x, ts, eta=0.0)
    ref = x
    for t, s in zip(ts, ts[1:]):
        tt = torch.full((x.shape[0],), t, dtype=F64)
        x0c, _ = to_x0_eps(prediction, net(ref, tt, "c"), ref, tt, SCHED)
        x0u, eps_u = to_x0_eps(prediction, net(ref, tt, None), ref, tt, SCHED)
        a_s, s_s = (1.0, 0.0) if s is None else (float(SCHED.alpha(torch.tensor(s, dtype=F64))), float(SCHED.sigma(torch.tensor(s, dtype=F64))))
        ref = a_s * (x0u + lam * (x0c - x0u)) + s_s * eps_u
    assert torch.allclose(got, ref, rtol=0, atol=1e-10)
    # plain CFG with the same scale takes another path
    plain = sample_ddim(Denoiser(classifier_free(net, "c", lam), SCHED, prediction), x, ts, eta=0.0)
    assert not torch.allclose(plain, ref, atol=1e-3)


# ------------------------------------------------------------------------ the spec
def test_guidance_spec_is_checked():
    assert Guidance.make(2.0, "apg").options == {"eta": 0.0, "r": 0.0, "beta": 0.0}
    for bad in [dict(variant="nope"), dict(variant="apg", options={"gamma": 1}), dict(variant="rescaled", options={"phi": 2}),
                dict(variant="interval", options={"lo": 2.0, "hi": 1.0}), dict(scale=-1.0)]:
        with pytest.raises(ValueError):
            Guidance.make(**{"scale": 2.0, **bad})
    with pytest.raises(ValueError, match="ts"):
        guided(net_for(), "c", Guidance.make(0.5, "cfg++"), SCHED)
    x, t = point()
    # no condition: the unconditional model, whatever the variant
    assert torch.equal(guided(net_for(), None, Guidance.make(3.0, "apg"), SCHED)(x, t), net_for()(x, t, None))
