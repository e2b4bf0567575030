"""Hook specifications: what a diffcore plugin can provide.

A plugin is a module (or any object) with functions marked ``@diffcore.hookimpl`` whose names
are the hooks below. It is found through the entry-point group ``diffcore``::

    # the plugin's pyproject.toml
    [project.entry-points.diffcore]
    my-plugin = "my_package.plugin"

Every hook receives a ``register`` callback (the pattern of ``llm``'s hooks) and calls it
once per thing it provides. The built-in plugins (image-unet, audio-spectrogram,
molecule-coords) use exactly these hooks; the core never names them.

A plugin that fails to import, or whose hook raises, is reported by ``diffcore plugins`` and
skipped; set ``DIFFCORE_STRICT_PLUGINS=1`` (or pass ``--strict-plugins``) to make that an error
while you develop a plugin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy
from pydantic import BaseModel
from torch import nn

from .domain import Domain, NoOptions

PROJECT = "diffcore"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class BackboneSpec:
    """A denoising network for one domain.

    ``build(options, domain)`` returns an ``nn.Module`` whose ``forward(x_t, t, cond=None)``
    takes ``x_t`` shaped like the domain's data, ``t`` a float tensor ``[B]`` in [0, 1]
    (the diffusion time; t = 1 is the noise end) and the domain's condition (``None`` means
    unconditional: the model must then predict unconditionally, which classifier-free
    guidance relies on), and returns a tensor shaped like ``x_t`` (the prediction named by
    the run's ``diffusion.prediction``). For training, ``domain``
    has been set up (``setup()``, data read); at sampling it is only restored from the run's
    ``domain_state.json`` (``load_state_dict``, no data read). So ``build`` may read
    ``domain.labels`` or statistics that ``state_dict`` keeps, never the data sets.
    ``Options`` validates the ``backbone:`` section.
    """

    name: str
    domain: str
    build: Callable[[BaseModel, Domain], nn.Module]
    Options: type[BaseModel] = NoOptions
    description: str = ""


@dataclass(frozen=True)
class Recipe:
    """What ``diffcore train --plugin NAME`` picks: a domain, its default backbone, and the
    run-config defaults that suit them (a nested dict, e.g.
    ``{"diffusion": {"schedule": "cosine"}, "training": {"max_steps": 4000}}``), applied
    before the user's ``--config`` file and ``--set`` overrides."""

    name: str
    domain: str
    backbone: str
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AutoencoderSpec:
    """A first-stage autoencoder for one domain (latent diffusion: Rombach et al. 2022).

    ``build(options, domain)`` returns an ``nn.Module`` with

    - ``encode(x)``: ``x`` a training batch's ``x`` ``[B, ...]`` -> a posterior with ``mode()``,
      ``sample(generator=None)`` and ``kl()`` (:class:`diffcore.nn.DiagonalGaussian`), or a
      plain tensor (a deterministic encoder);
    - ``decode(z)``: latents -> ``x`` in the domain's normalised space, shaped like the data;
    - ``loss(x)``: its own training loss of one batch -> ``(loss, {name: float})`` (LDM:
      reconstruction plus a small KL term; optionally a spectral or perceptual term).

    ``domain`` has been set up (training: data read) or restored from its saved state (a
    trained autoencoder run): ``build`` may read its channels, labels or statistics, never
    the data sets. ``Options`` validates the ``autoencoder:`` section of ``diffcore
    train-autoencoder``. :class:`diffcore.KLAutoencoderOptions` and
    :func:`diffcore.build_kl_autoencoder` give the generic KL autoencoder of
    :mod:`diffcore.nn.autoencoder`, which the built-in plugins register for their domains.
    """

    name: str
    domain: str
    build: Callable[[BaseModel, Domain], nn.Module]
    Options: type[BaseModel] = NoOptions
    description: str = ""


class DiffcoreHookspecs:
    """The hooks. Implement any subset."""

    @hookspec
    def diffcore_register_domains(self, register: Callable[[type[Domain]], None]) -> None:
        """Register domain classes: ``register(MyDomain)``. ``MyDomain`` subclasses
        :class:`diffcore.Domain` and sets ``name`` and ``Options``; its writer is
        ``write_samples(self, results, out_dir, options)`` (``options``: the validated
        ``SampleOptions`` the samples were asked with, or ``None``) and its metrics
        ``evaluate(self, sample_fn, num, out_dir, batch_size)`` (generate in batches of at most
        ``batch_size``). The older forms without ``options`` / ``batch_size`` are still called,
        with a :class:`diffcore.contract.PluginDeprecationWarning`. A domain that overrides
        :meth:`diffcore.Domain.edit_batches` (and optionally ``EditOptions``, ``write_edits``)
        supports ``diffcore edit``: inpainting, SDEdit and inversion on its users' files."""

    @hookspec
    def diffcore_register_backbones(self, register: Callable[[BackboneSpec], None]) -> None:
        """Register backbones: ``register(BackboneSpec(name="unet", domain="image",
        build=build_unet, Options=UNetOptions))``. A backbone may target a domain that
        another plugin provides (it is matched by name)."""

    @hookspec
    def diffcore_register_recipes(self, register: Callable[[Recipe], None]) -> None:
        """Register recipes, the names ``--plugin`` accepts:
        ``register(Recipe(name="image-unet", domain="image", backbone="unet"))``."""

    @hookspec
    def diffcore_register_autoencoders(self, register: Callable[[AutoencoderSpec], None]) -> None:
        """Register first-stage autoencoders for latent diffusion:
        ``register(AutoencoderSpec(name="image-kl", domain="image", build=build_ae,
        Options=AEOptions))``. ``diffcore train-autoencoder --plugin RECIPE`` trains the
        domain's autoencoder into a run directory of its own; a diffusion run that sets
        ``latent.autoencoder: AE_RUN`` then trains and samples on its latents (docs/latent.md)."""

    @hookspec
    def diffcore_register_samplers(self, register: Callable[..., None]) -> None:
        """Register samplers beside the built-in ones, each with its entry in the sampler
        table (:class:`diffcore.sampling.SamplerSpec`)::

            register(SamplerSpec("my-sampler", fn, default_spacing="logsnr", order=2, evals="2N",
                                 options={"r": Option(0.5, float, gt=0.0, le=1.0, description="...")},
                                 reference="Lu et al. 2022, Algorithm 1"))

        ``fn(denoiser, x, ts, *, generator=None, callback=None, noise_fn=None, **options)``
        follows the calling convention of :mod:`diffcore.sampling.table` (read its docstring):
        ``ts`` are the model times followed by the clean end, so the loop walks
        ``zip(ts, ts[1:])``. The entry's options are what ``sampling.options`` and
        ``--option KEY=VALUE`` accept, checked against their types and ranges before ``fn`` runs;
        the sampler becomes available to :func:`diffcore.generate`, ``sampling.sampler`` and
        ``diffcore sample --sampler my-sampler``. Use :func:`diffcore.sampling.noise_source` for
        fresh noise.

        The first form, ``register("my-sampler", fn)`` with ``fn.default_spacing`` and ``ts``
        holding the model times only (the last step returning x0_hat), still works: the function
        is wrapped at the edge (:func:`diffcore.sampling.from_function`) and its keyword
        options are read from its signature, without ranges."""

    @hookspec
    def diffcore_register_schedules(self, register: Callable[[str, Callable[..., Any]], None]) -> None:
        """Register noise schedules: ``register("my-schedule", factory)`` where
        ``factory(**options)`` returns a :class:`diffcore.schedules.Schedule`; it becomes
        available to :func:`diffcore.schedules.get` and to ``diffusion.schedule``."""
