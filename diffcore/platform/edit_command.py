"""``diffcore edit``: inpaint, SDEdit or invert-and-resample a user's inputs with a trained run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from diffcore.platform.cliopts import (
    _describe_options, _notes, _sampler_options, _times, count_value, fail, out_path, output_dir, parse_extra_options, seed_value,
)


def edit(
    ctx: typer.Context,
    run: Path = typer.Option(..., "--run", "-r", help="Run directory written by `diffcore train`."),
    input_: list[str] = typer.Option([], "--input", "-i", help="An input to edit: a file of the domain's kind (PNG, WAV, SDF...) or domain text (a SMILES); repeatable."),
    mode: str = typer.Option("inpaint", "--mode", "-m", help="inpaint: keep the masked part, generate the rest; sdedit: noise the input to --strength and denoise it; invert: DDIM-invert the input, then sample it back (with another --class or --guidance)."),
    strength: Optional[float] = typer.Option(None, "--strength", help="How far into the noise the edit starts, in (0, 1]: 1 from pure noise, small stays close to the input [default: inpaint 1, sdedit 0.6, invert 1]."),
    resample: int = typer.Option(1, "--resample", min=1, help="RePaint: run each step this many times, jumping back in between, to harmonise the kept and generated parts (1: off)."),
    particles: int = typer.Option(1, "--particles", min=1, help="SMC inpainting (SMCDiff): K particles per output, weighed by how well they explain the kept part; exact as K and the steps grow, K times the cost; runs ddpm on the plan's grid (1: off)."),
    num: int = typer.Option(1, "--num", "-n", parser=count_value, metavar="INTEGER", help="Outputs per input."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Samples per batch [default: sampling.batch_size]."),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="Sampler [default: the run's sampling.sampler; invert always samples back with ddim]."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Sampling steps of the whole grid (an edit of strength s runs the last s of them) [default: sampling.steps]."),
    spacing: Optional[str] = typer.Option(None, "--spacing", help="Where the steps go [default: sampling.spacing, else the sampler's own]."),
    times: Optional[str] = typer.Option(None, "--times", help="The model times themselves, comma-separated and decreasing (instead of --steps/--spacing)."),
    option: list[str] = typer.Option([], "--option", help="A sampler option, KEY=VALUE (repeatable), as for `diffcore sample`."),
    class_: list[str] = typer.Option([], "--class", help="Class label (name or index) of the outputs; repeatable (cycled)."),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="Classifier-free guidance scale w >= 0 [default: sampling.guidance]."),
    guidance_variant: Optional[str] = typer.Option(None, "--guidance-variant", help="How --guidance is applied: cfg, interval, rescaled, apg, cfg++, as for `diffcore sample` [default: sampling.guidance_variant]."),
    guidance_option: list[str] = typer.Option([], "--guidance-option", help="An option of the guidance variant, KEY=VALUE (repeatable), as for `diffcore sample` [default: sampling.guidance_options]."),
    seed: int = typer.Option(0, "--seed", parser=seed_value, metavar="INTEGER", help="Seed of the noise, 0 to 2**32 - 1."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Weights to use instead of RUN/ema.safetensors."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", parser=out_path, metavar="PATH", help="Output folder (must be new or empty) [default: RUN/edits/<date>-<time>]."),
    domain_help: bool = typer.Option(False, "--domain-help", help="List the edit options this run's domain accepts (its masks), and exit."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch's intra-op CPU threads [default: sampling.threads, else half the cores]."),
) -> None:
    """Edit inputs with a trained run: inpaint a masked part, restyle (SDEdit), or invert and
    sample back with another class. Writes the domain's files, a before/after picture and
    edit.json (the settings) to --out.

    The mask is the domain's: e.g. images --box x0,y0,x1,y1, --half right or --mask FILE;
    audio --keep 0:0.25 or --gap 0.2:0.3 (seconds); molecules --fix-atoms 0 --fix-atoms 1 or --core SMARTS.
    `diffcore edit --run RUN --domain-help` lists them.
    """
    from diffcore.platform import config as cfgmod
    from diffcore.platform import budget, editing, runs

    r = runs.load_run(run, checkpoint)
    domain = r.domain
    if not domain.supports_editing():
        fail(f"the {domain.name!r} domain does not support editing (its plugin does not implement Domain.edit_batches); "
             "see docs/plugins.md, 'Editing'")
    if r.config.latent.autoencoder is not None:  # before any note: the refusal is the one line
        fail(f"diffcore edit does not support latent diffusion runs yet (this run has latent.autoencoder "
             f"{r.config.latent.autoencoder}); edit with a run trained on the {domain.name!r} data itself")
    model = domain.EditOptions
    if domain_help:
        typer.echo(f"edit options of the {domain.name!r} domain:\n{_describe_options(model)}")
        return
    options = parse_extra_options(list(ctx.args), model, domain.name)
    if not input_:
        fail("give at least one --input (a file of the domain's kind, e.g. a PNG, WAV or SDF, or a SMILES for molecules)")
    strength = editing.check_settings(mode, strength, resample)
    out = output_dir(out, run / "edits")
    plan = cfgmod.sampling_plan(r.config, key="cli", sampler=sampler, steps=steps, spacing=spacing, times=_times(times),
                                guidance=guidance, options=_sampler_options(option, None), guidance_variant=guidance_variant,
                                guidance_options=_sampler_options(guidance_option, None, "--guidance-option"))
    _notes(plan)
    ran = editing.effective_plan(plan, mode, strength, resample, particles)
    if ran.sampler != plan.sampler:
        why = "--mode invert inverts and samples back with ddim (eta 0)" if mode == "invert" else "--particles runs ddpm's kernels"
        typer.echo(f"note: {why} on the {plan.spacing} grid; --sampler {plan.sampler} and its options are not used", err=True)
    runs.use_threads(threads or r.config.sampling.threads)
    batches = domain.edit_batches(input_, num, batch_size or r.config.sampling.batch_size,
                                  classes=runs.class_ids(domain, class_ or None), options=options)
    # an edit holds the output, the input and its mask per sample: 3 tensors
    batches = budget.checked_batches(batches, num * len(input_), what=f"--num {num} x {len(input_)} input(s)", copies=3, out_dir=out)
    results = editing.edit_run(r, ran, batches, mode=mode, strength=strength, resample=resample, particles=particles, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    paths = domain.write_edits(results, out)
    settings = editing.record(ran, mode=mode, strength=strength, resample=resample, particles=particles, seed=seed,
                              inputs=input_, num=num, classes=class_, domain_options=options, weights=r.weights)
    (out / editing.EDIT_JSON).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    typer.echo(f"wrote {len(paths)} file(s) and {editing.EDIT_JSON} to {out}")
