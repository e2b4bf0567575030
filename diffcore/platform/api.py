"""A trained run from Python in one line: ``diffcore.load(RUN_DIR)``.

    import diffcore
    pipe = diffcore.load("runs/digits")
    x = pipe.sample(16, sampler="dpm-solver++", steps=20, cond="3")     # a tensor [16, 1, 16, 16]

The loaded weights come from the run's safetensors (or a Lightning checkpoint read with
``weights_only=True``): loading never executes code from the run folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..contract import legacy
from . import config as cfgmod
from . import generation, runs


class Pipeline:
    """A run's domain, network and config, with ``sample`` (and ``write`` for the domain's files)."""

    def __init__(self, run: runs.Run):
        self.run = run

    @property
    def domain(self):
        return self.run.domain

    @property
    def model(self) -> torch.nn.Module:
        return self.run.net

    @property
    def config(self):
        return self.run.config

    @property
    def device(self) -> torch.device:
        return self.run.device

    def plan(self, sampler: str | None = None, steps: int | None = None, *, spacing: str | None = None,
             guidance: float | None = None, guidance_variant: str | None = None, guidance_options: dict | None = None,
             **options):
        """The sampling plan: the run's ``sampling:`` section with these overrides (``guidance_variant``:
        cfg, interval, rescaled, apg or cfg++, with its ``guidance_options``: docs/samplers.md)."""
        return cfgmod.sampling_plan(self.config, key="sample", sampler=sampler, steps=steps, spacing=spacing,
                                    guidance=guidance, options=options or None, guidance_variant=guidance_variant,
                                    guidance_options=guidance_options)

    def generate(self, num: int | None = None, *, sampler: str | None = None, steps: int | None = None,
                 spacing: str | None = None, guidance: float | None = None, cond: Any = None, seed: int = 0,
                 batch_size: int | None = None, sample_options: dict | None = None, **options):
        """``[(x, batch)]`` as the domain's writer takes them (see :meth:`sample`)."""
        plan = self.plan(sampler, steps, spacing=spacing, guidance=guidance, **options)
        return generation.sample(self.run, plan, num or self.config.sampling.num, batch_size=batch_size, seed=seed,
                           classes=_classes(cond), options=self._sample_options(sample_options))

    def _sample_options(self, given: dict | None):
        """The domain's ``SampleOptions`` validated from ``given`` (``None`` if it has none)."""
        model = self.domain.SampleOptions
        return None if model is None else model.model_validate(given or {})

    def sample(self, num: int | None = None, **kw) -> torch.Tensor | list[torch.Tensor]:
        """Generate ``num`` samples (default ``sampling.num``) in the domain's tensor layout.
        ``sampler``, ``steps``, ``spacing``, ``guidance`` and sampler options (``eta=0.5``)
        override the run's ``sampling:`` section; ``cond`` is a class label or index (or a
        list, cycled); ``seed`` fixes the noise; ``sample_options`` are the domain's extra
        sample options (e.g. ``{"smiles": ["CCO"]}``). One tensor when every batch has the same
        layout, else a list of per-batch tensors (variable-size data). A latent diffusion run's
        samples are decoded (:meth:`generate` gives its latents)."""
        xs = [x for x, _ in self.generate(num, **kw)]
        from .latent import LatentDomain

        if isinstance(self.domain, LatentDomain):  # a latent run: the data, decoded (generate gives the latents)
            xs = [self.domain.decode(x) for x in xs]
        same = all(x.shape[1:] == xs[0].shape[1:] for x in xs)
        return torch.cat(xs) if same else xs

    def write(self, out_dir: str | Path, num: int | None = None, **kw) -> list[Path]:
        """Generate as :meth:`sample` does and write the domain's files (PNG, WAV, SDF...)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        results = self.generate(num, **kw)
        return legacy.write_samples(self.domain, results, out, self._sample_options(kw.get("sample_options")))

    def __repr__(self) -> str:
        return f"Pipeline({str(self.run.dir)!r}, domain={self.domain.name!r}, weights={self.run.weights.name!r})"


def load(run_dir: str | Path, checkpoint: str | Path | None = None, *, device: str | None = None,
         threads: int | None = None) -> Pipeline:
    """Load a run written by ``diffcore train`` (its EMA weights, or ``checkpoint``) on
    ``device`` (default: CUDA if available, else CPU); ``threads`` sets torch's CPU threads
    (default: ``sampling.threads``, else half the cores). Raises :class:`diffcore.UserError`
    naming what is wrong with the folder."""
    run = runs.load_run(run_dir, checkpoint, device=device)
    runs.use_threads(threads or run.config.sampling.threads)
    return Pipeline(run)


def _classes(cond: Any) -> Sequence | None:
    return None if cond is None else ([cond] if isinstance(cond, (str, int)) else list(cond))
