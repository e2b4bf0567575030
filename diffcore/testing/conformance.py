"""The plugin conformance kit: does a plugin keep diffcore's contract? It says what to fix.
(This module gathers the public names; each family of checks has its own module.)

Call it from your plugin's own tests (it is re-exported by :mod:`diffcore.testing`)::

    import diffcore.testing
    import my_package.plugin

    def test_my_plugin_conforms():
        diffcore.testing.check_plugin(my_package.plugin, name="my-plugin",
                                      domain_options={"my-domain": {"num": 64}})

or piece by piece::

    report = check_domain(MyDomain, options={"num": 64})
    check_backbone(my_spec, report.domain)          # a set-up instance of the domain
    check_sampler(my_sampler_spec)                  # a SamplerSpec, or a bare function
    check_schedule(MySchedule, options={"beta": 2.0})

Every function runs all of its checks, collects every problem, and then raises one
:class:`ConformanceError` (an ``AssertionError``, so pytest shows it as a failed test) that
lists them, each with what to change. With ``raise_on_failure=False`` it only returns the
:class:`Report` (``report.ok``, ``report.problems``, ``report.warnings``, ``report.passed``).

What is checked (with small options, a whole plugin takes seconds on a CPU):

hooks (:func:`check_plugin`, :mod:`.plugin`)
    the plugin object loads through the platform's one plugin loader (a dry run of
    :mod:`diffcore.platform.registry`, which reports every failure in the words of
    ``diffcore plugins``): no misspelled ``diffcore_*`` hook, no hook that raises, every
    ``register(...)`` gets the right kind of object under a name taken neither by diffcore nor
    by another installed plugin; no hook left without ``@diffcore.hookimpl``; each recipe
    names an existing domain and a backbone for that domain, and its ``defaults`` resolve into
    a valid run config.
options models (:func:`check_options_model`, :mod:`.options`)
    pydantic models that refuse unknown keys (a typo in a config must be an error), whose
    defaults validate (pydantic does not check defaults by itself) and survive the JSON/YAML
    round trip of a run's ``config.yaml``.
a domain (:func:`check_domain`, :mod:`.domain`, :mod:`.domain_data`, :mod:`.domain_sampling`)
    ``setup()`` works and is idempotent; training items are dicts with a floating ``x`` (and
    optional ``cond``, ``mask``); ``collate`` makes a batch dict (a ``mask`` broadcastable to
    ``x``, 0/1, when items differ in size); ``noise()`` has ``x``'s shape and dtype, is zero at
    padding, about standard normal where ``mask`` = 1, and reproducible with its generator;
    ``state_dict()`` is JSON and restores a fresh domain that can sample without ``setup()``
    (as ``diffcore sample`` does); ``sample_batches`` gives consistent ``shape``/``cond``/
    ``mask`` covering ``num``; ``write_samples(results, out_dir, options)`` writes files inside
    ``out_dir`` and returns their paths; optionally ``evaluate(sample_fn, num, out_dir,
    batch_size)`` returns ``{name: number}`` and generates in batches of at most ``batch_size``.
    A method of the contract's old form (without ``options`` / ``batch_size``) is a warning.
a backbone (:func:`check_backbone`, :mod:`.backbone`)
    ``build(options, domain)`` gives an ``nn.Module`` whose ``forward(x_t, t, cond)`` returns
    ``x_t``'s shape and dtype, accepts ``cond=None`` (and no ``cond`` at all), depends on
    ``t`` and on ``x_t``, trains (finite loss, gradients), and is rebuilt from the domain's
    saved state so that its weights load back (safetensors) and give the same outputs.
an autoencoder (:func:`check_autoencoder`, :mod:`.autoencoder`)
    ``build(options, domain)`` gives an ``nn.Module`` with ``encode``, ``decode`` and ``loss``;
    decode(encode(x)) has the data's shape and no NaN; a short fit with its own loss brings it
    close to x on the domain's data (MSE below half the data's variance); it is rebuilt from
    the domain's saved state with weights that load back and reconstruct the same.
a sampler (:func:`check_sampler`, :mod:`.sampler`)
    a ``SamplerSpec`` or a bare function of the first convention: the calling convention;
    with the exact denoiser of a Gaussian mixture (:class:`diffcore.testing.GaussianMixture`)
    it reproduces the target within sampling noise; it keeps ``x``'s dtype, is reproducible
    with its generator, draws fresh noise through ``noise_fn`` when given one, and calls
    ``callback`` once per step; its declared options' defaults pass their own checks and an
    undeclared option is refused.
a schedule (:func:`check_schedule`, :mod:`.schedule`)
    a :class:`diffcore.schedules.Schedule` with 0 <= t_min < t_max <= 1; alpha, sigma and
    log-SNR float64, finite and positive on [t_min, t_max]; log-SNR consistent with alpha and
    sigma and decreasing in t; derivatives matching finite differences; discrete schedules'
    betas consistent with alpha; DDIM and DDPM reproduce a Gaussian mixture through it.
"""

from __future__ import annotations

from .autoencoder import check_autoencoder
from .backbone import check_backbone
from .domain import check_domain
from .options import check_options_model
from .plugin import check_plugin
from .report import ConformanceError, Report
from .sampler import check_sampler
from .schedule import check_schedule

__all__ = [
    "ConformanceError", "Report", "check_autoencoder", "check_backbone", "check_domain", "check_options_model",
    "check_plugin", "check_sampler", "check_schedule",
]
