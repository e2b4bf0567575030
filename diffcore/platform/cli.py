"""The ``diffcore`` command line: train, sample, edit, evaluate, plugins, schedule.

Every mistake a user can fix (a config key, a value out of range, a bad checkpoint, a broken
plugin under --strict-plugins) ends as one line ``error: ...`` on stderr and exit code 2,
without a traceback. Heavy imports (Lightning) happen inside the commands that need them,
so ``diffcore --help`` and ``diffcore plugins`` stay quick.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from diffcore.platform.cliopts import (  # noqa: F401  (EXIT_USER_ERROR, fail: part of the CLI's API)
    EXIT_USER_ERROR, _describe_options, _notes, describe_settings, _sampler_options, _times, fail, friendly, output_dir, parse_extra_options,
)
from diffcore.platform.cliopts import (  # the options sample and evaluate share
    _ACCELERATOR, _DEVICES, _GUIDANCE_OPTION, _GUIDANCE_VARIANT, _NUM_NODES, _SET_SAMPLING, _SPACING, _TIMES,
)
from diffcore.platform.cliopts import LazyHelp, count_value, later, out_path, seed_value

app = typer.Typer(
    name="diffcore",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts contain [default: ...] and [-1, 1]: plain text, not markup
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"diffcore {version('diffcore')}")
        except PackageNotFoundError:
            typer.echo("diffcore (not installed)")
        raise typer.Exit()


@app.callback()
def _main(
    strict_plugins: bool = typer.Option(
        False, "--strict-plugins", help="Make a plugin that fails to load or register an error (also: DIFFCORE_STRICT_PLUGINS=1)."
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Diffusion and flow generative models: train, sample and evaluate any plugin's domain.

    Start with `diffcore plugins` (what is installed), then
    `diffcore train --plugin NAME --out RUN` and `diffcore sample --run RUN`.
    """
    import warnings

    from diffcore.contract.legacy import PluginDeprecationWarning
    from diffcore.platform.plugin_status import set_strict_flag

    if not sys.warnoptions:  # Python hides DeprecationWarning outside __main__; a plugin's author should see this one
        warnings.simplefilter("default", PluginDeprecationWarning)
    set_strict_flag(strict_plugins)  # sets DIFFCORE_STRICT_PLUGINS=1, also seen by the processes DDP re-launches
    if strict_plugins:
        from diffcore.platform.registry import reset_registry

        reset_registry()


# ----------------------------------------------------------------------- train
TRAINING_FLAGS = ("max_steps", "seed", "accelerator", "devices", "num_nodes", "strategy", "precision", "threads")


def _training_flag(key: str) -> str:
    """A train flag's help: the config field's own description (one text, not a copy), read
    when the help is shown (the config imports torch)."""

    def text() -> str:
        from diffcore.platform.config import TrainingConfig

        return f"{TrainingConfig.model_fields[key].description} Same as --set training.{key}=VALUE."

    return later(text)


@app.command(cls=LazyHelp)
@friendly
def train(
    plugin: Optional[str] = typer.Option(None, "--plugin", "-p", help="Recipe to train (`diffcore plugins` lists them); may also come from `plugin:` in --config."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config file, applied over the recipe's defaults."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override one key: --set training.lr=1e-3 (value parsed as YAML). Repeatable; later ones win."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", parser=out_path, metavar="PATH", help="Run directory to create [default: runs/<plugin>-<date>-<time>]. Refused if it already holds a run, unless --resume."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help=_training_flag("max_steps")),
    seed: Optional[int] = typer.Option(None, "--seed", help=_training_flag("seed")),
    accelerator: Optional[str] = typer.Option(None, "--accelerator", help=_training_flag("accelerator")),
    devices: Optional[int] = typer.Option(None, "--devices", help=_training_flag("devices")),
    num_nodes: Optional[int] = typer.Option(None, "--num-nodes", min=1, help=_training_flag("num_nodes")),
    strategy: Optional[str] = typer.Option(None, "--strategy", help=_training_flag("strategy")),
    precision: Optional[str] = typer.Option(None, "--precision", help=_training_flag("precision")),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help=_training_flag("threads")),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from checkpoints/last.ckpt (else the newest readable step=N.ckpt); the step count continues (raise --max-steps)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show Lightning's progress bar."),
) -> None:
    """Train a recipe's backbone on its domain's data and write a run directory.

    Config resolution: core defaults < recipe defaults < --config FILE < --set KEY=VALUE <
    the flags below (--max-steps ... --threads). The run directory receives config.yaml (resolved), checkpoints/,
    ema.safetensors, metrics.csv and previews/.

    Ctrl-C (SIGINT) or SIGTERM stops after the current step with a checkpoint (exit 130 or
    143); `diffcore train --out RUN --resume` continues. One process trains into a run at a time.
    """
    from diffcore.platform import interrupts, runs

    with interrupts.catching():  # a signal from here on stops cleanly, never with a traceback
        try:
            _train(plugin, config, set_, out, resume, progress, (max_steps, seed, accelerator, devices, num_nodes, strategy, precision, threads))
        except (interrupts.Interrupted, KeyboardInterrupt) as e:  # KeyboardInterrupt: a second Ctrl-C
            stop = e if isinstance(e, interrupts.Interrupted) else interrupts.Interrupted(interrupts.SIGINT)
            if runs.launcher_rank() == 0:
                typer.echo(stop.message(), err=True)
            raise typer.Exit(stop.exit_code) from None


def _train(plugin, config, set_, out, resume, progress, flag_values) -> None:
    from diffcore.platform import config as cfgmod
    from diffcore.platform import ddp_failure, interrupts, nodes, runs

    flags: dict[str, Any] = {}
    given = dict(zip(TRAINING_FLAGS, flag_values))
    for key, value in given.items():
        if value is not None:
            flags[key] = value
    flags = {"training": flags} if flags else {}

    rank = runs.launcher_rank()
    if rank > 0 and os.environ.get(runs.RUN_DIR_ENV):
        out = Path(os.environ[runs.RUN_DIR_ENV])  # a DDP process re-launched by rank 0
    if resume:
        if out is None:
            fail("--resume needs --out RUN_DIR (the run to continue)")
        if not (out / runs.CONFIG).is_file():
            fail(f"--resume: {out} is not a run directory (no {runs.CONFIG})")
        base = cfgmod.load_yaml(out / runs.CONFIG, "run config")
        resolved = cfgmod.resolve(plugin, config, set_, flags, base=base)
    else:
        resolved = cfgmod.resolve(plugin, config, set_, flags)
        if out is None:
            out = Path("runs") / f"{resolved.recipe.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    interrupts.check()
    cfgmod.check_hardware(resolved.config)  # an accelerator or precision this machine cannot run: refused before any work
    nodes.check(resolved.config.training.num_nodes)  # several nodes: MASTER_ADDR/PORT/NODE_RANK set, node 0 answering
    from diffcore.platform import extensions, training  # Lightning: imported once the config is known to be valid

    added = extensions.build(resolved.config.training, out.resolve())  # training.callbacks/logger: refused before any work
    prepared = training.prepare_run_dir(resolved, out, resume=resume) if rank == 0 else None
    world = resolved.config.training.devices * resolved.config.training.num_nodes
    if rank == 0 and world > 1:
        ddp_failure.watch(out, world)  # a launched process's death: one line, not a silent kill
    try:
        for note in prepared.notes if prepared else []:
            typer.echo(f"note: {note}", err=True)
        for line in added.lines if prepared else []:
            typer.echo(f"added {line}")
        trainer = training.train(resolved, out, resume=resume, progress=progress, start=prepared and prepared.start, added=added)
    except (interrupts.Interrupted, KeyboardInterrupt) as e:  # KeyboardInterrupt: a second Ctrl-C
        stop = e if isinstance(e, interrupts.Interrupted) else interrupts.Interrupted(interrupts.SIGINT)
        stop.run_dir = out  # the message says how to resume this run
        raise stop from None
    except Exception as e:  # a DDP process died: one line instead of the collective's traceback
        why = ddp_failure.reason(e, world)
        if why is None:
            raise
        ddp_failure.report(out, rank, world, why)
        raise typer.Exit(ddp_failure.EXIT) from None
    finally:
        if prepared:
            prepared.release()
    if rank == 0:
        typer.echo(f"trained {trainer.global_step} steps ({trainer.world_size} process(es)); run directory: {out}")
        typer.echo(f"next: diffcore sample --run {out}")


# ----------------------------------------------------------- train-autoencoder
from diffcore.platform.autoencoder_command import train_autoencoder as _train_autoencoder  # noqa: E402

app.command("train-autoencoder")(friendly(_train_autoencoder))


# ---------------------------------------------------------------------- sample
def _builtin_samplers() -> list[str]:
    from diffcore.math import sampling

    return [spec.name for spec in sampling.specs() if spec.owner is None]


def _load_device(accelerator: str, devices: int, num_nodes: int) -> str | None:
    """Where ``load_run`` puts the model: ``--accelerator``'s device for one process; the CPU
    when several share the work (each moves it to its own device once launched)."""
    import torch

    if accelerator not in ("auto", "cpu", "gpu", "cuda"):
        fail(f"--accelerator {accelerator}: expected cpu, gpu or auto")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        fail(f"--accelerator {accelerator}: no GPU is visible to this process (torch.cuda.is_available() is False); use --accelerator cpu or auto")
    if devices * num_nodes > 1 or accelerator == "cpu":
        return "cpu"
    return "cuda" if accelerator in ("gpu", "cuda") else None


@contextlib.contextmanager
def _world(run, accelerator: str, devices: int, num_nodes: int, what: str = "sampling"):
    """The processes that generate together (one: this one), ``run`` moved to this process's
    device; their process group is closed on leaving."""
    from diffcore.platform import generation, nodes

    nodes.check(num_nodes)
    world = generation.launch(accelerator, devices, num_nodes, what)
    if world.device is not None and world.device != run.device:
        run.to(world.device)  # the backbone and a latent run's autoencoder
    try:
        yield world
    finally:
        world.close()


@app.command(cls=LazyHelp, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@friendly
def sample(
    ctx: typer.Context,
    run: Path = typer.Option(..., "--run", "-r", help="Run directory written by `diffcore train`."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Weights to use instead of RUN/ema.safetensors: a .safetensors file or a Lightning .ckpt (loaded without executing code)."),
    sampler: Optional[str] = typer.Option(None, "--sampler", help=later(lambda: f"auto (chosen for the --steps budget of model evaluations, docs/benchmarks.md), {', '.join(_builtin_samplers())}, or a plugin's [default: the run's sampling.sampler].")),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Sampling steps; with --sampler auto, the budget of model evaluations [default: sampling.steps]."),
    spacing: Optional[str] = _SPACING,
    times: Optional[str] = _TIMES,
    num: Optional[int] = typer.Option(None, "--num", "-n", parser=count_value, metavar="INTEGER", help="Number of samples, at most 1000000 and what fits in memory [default: sampling.num]."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Samples per batch [default: sampling.batch_size]."),
    seed: int = typer.Option(0, "--seed", parser=seed_value, metavar="INTEGER", help="Seed of the noise, 0 to 2**32 - 1: the same seed gives the same samples."),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="Classifier-free guidance scale w >= 0 (1: plain conditional; cfg++: its lambda in [0, 1]) [default: sampling.guidance]."),
    guidance_variant: Optional[str] = _GUIDANCE_VARIANT,
    guidance_option: list[str] = _GUIDANCE_OPTION,
    class_: list[str] = typer.Option([], "--class", help="Class label (name or index) to generate; repeatable (cycled over the samples)."),
    option: list[str] = typer.Option([], "--option", help="A sampler option, KEY=VALUE (repeatable), e.g. --option eta=0.5 for ddim, --option corrector_steps=2 for pc; checked against the sampler's table entry (docs/samplers.md) [default: sampling.options]."),
    eta: Optional[float] = typer.Option(None, "--eta", help="Shorthand for --option eta=ETA; refused by a sampler that does not declare eta (of the built-ins: ddim and the dpm-solver++ SDE samplers)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", parser=out_path, metavar="PATH", help="Output folder (must be new or empty) [default: RUN/samples/<date>-<time>]."),
    domain_help: bool = typer.Option(False, "--domain-help", help="List the extra options this run's domain accepts, and its sampling settings (RUN/config.yaml), and exit."),
    set_: list[str] = _SET_SAMPLING,
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch's intra-op CPU threads [default: sampling.threads, else half the cores]."),
    accelerator: str = _ACCELERATOR,
    devices: int = _DEVICES,
    num_nodes: int = _NUM_NODES,
) -> None:
    """Generate samples from a trained run and write them as the domain's files.

    Domains may accept extra options (e.g. molecules: --smiles CCO, repeatable, and
    --smiles-file FILE); `diffcore sample --run RUN --domain-help` lists them.
    """
    from diffcore.contract import legacy
    from diffcore.platform import config as cfgmod
    from diffcore.platform import generation, runs

    r = runs.load_run(run, checkpoint, device=_load_device(accelerator, devices, num_nodes), sets=set_)
    model = r.domain.SampleOptions
    if domain_help:
        typer.echo(f"options of the {r.domain.name!r} domain:\n{_describe_options(model)}")
        settings = describe_settings(r.domain)
        if settings:
            typer.echo(settings)
        return
    options = parse_extra_options(list(ctx.args), model, r.domain.name)  # defaults if none given
    out = output_dir(out, run / "samples")
    plan = cfgmod.sampling_plan(r.config, key="cli", sampler=sampler, steps=steps, spacing=spacing, times=_times(times),
                                guidance=guidance, options=_sampler_options(option, eta), guidance_variant=guidance_variant,
                                guidance_options=_sampler_options(guidance_option, None, "--guidance-option"))
    if runs.launcher_rank() == 0:
        _notes(plan)
    runs.use_threads(threads or r.config.sampling.threads)
    with _world(r, accelerator, devices, num_nodes) as world:
        results = generation.sample(r, plan, num or r.config.sampling.num, batch_size=batch_size, seed=seed,
                                    classes=class_ or None, options=options, out_dir=out, world=world)
    if world.rank != 0:
        return  # rank 0 writes every sample
    out.mkdir(parents=True, exist_ok=True)
    paths = legacy.write_samples(r.domain, results, out, options)
    typer.echo(f"wrote {len(paths)} file(s) to {out}" + (f" ({world.size} processes)" if world.size > 1 else ""))


# -------------------------------------------------------------------- evaluate
@app.command()
@friendly
def evaluate(
    run: Path = typer.Option(..., "--run", "-r", help="Run directory written by `diffcore train`."),
    num: int = typer.Option(512, "--num", "-n", parser=count_value, metavar="INTEGER", help="Number of samples the metrics are computed from (at most 1000000)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Samples per batch [default: sampling.batch_size]."),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="Sampler: auto (chosen for the --steps budget of model evaluations) or any sampler of docs/samplers.md (`diffcore plugins` lists plugins' ones) [default: the run's sampling.sampler]."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Sampling steps; with --sampler auto, the budget of model evaluations [default: sampling.steps]."),
    spacing: Optional[str] = _SPACING,
    times: Optional[str] = _TIMES,
    guidance: Optional[float] = typer.Option(None, "--guidance", help="Classifier-free guidance scale w >= 0 [default: sampling.guidance]."),
    guidance_variant: Optional[str] = _GUIDANCE_VARIANT,
    guidance_option: list[str] = _GUIDANCE_OPTION,
    seed: int = typer.Option(0, "--seed", parser=seed_value, metavar="INTEGER", help="Seed of the sampling noise, 0 to 2**32 - 1."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Weights to evaluate instead of RUN/ema.safetensors."),
    option: list[str] = typer.Option([], "--option", help="A sampler option, KEY=VALUE (repeatable), as for `diffcore sample` [default: sampling.options]."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch's intra-op CPU threads [default: sampling.threads, else half the cores]."),
    set_: list[str] = _SET_SAMPLING,
    list_: bool = typer.Option(False, "--list", help="Print the evaluations recorded in RUN/metrics.json, one line each, and exit."),
    accelerator: str = _ACCELERATOR,
    devices: int = _DEVICES,
    num_nodes: int = _NUM_NODES,
) -> None:
    """Compute the domain's quality metrics; record them in RUN/metrics.json (one record per
    sampler, steps, spacing, options, guidance, seed, num and weights, and per model times and
    the domain's own sampling settings of RUN/config.yaml's data: section where there are any)
    and print them."""
    from diffcore.platform import config as cfgmod
    from diffcore.platform import generation, records, runs

    if list_:
        if set_:
            fail("--list prints the recorded evaluations and takes no --set; drop one of them")
        if not Path(run).is_dir():
            fail(f"--run {run}: no such run directory")
        try:
            typer.echo(records.table(records.load(Path(run) / runs.METRICS_JSON)))
        except (ValueError, UnicodeDecodeError) as e:
            fail(f"{Path(run) / runs.METRICS_JSON}: cannot be read as evaluation records ({e})")
        return
    r = runs.load_run(run, checkpoint, device=_load_device(accelerator, devices, num_nodes), sets=set_)
    plan = cfgmod.sampling_plan(r.config, key="cli", sampler=sampler, steps=steps, spacing=spacing, times=_times(times),
                                guidance=guidance, options=_sampler_options(option, None), guidance_variant=guidance_variant,
                                guidance_options=_sampler_options(guidance_option, None, "--guidance-option"))
    if runs.launcher_rank() == 0:
        _notes(plan)
    runs.use_threads(threads or r.config.sampling.threads)
    with _world(r, accelerator, devices, num_nodes, "evaluation") as world:
        metrics = generation.evaluate(r, plan, num, seed=seed, batch_size=batch_size, world=world)
    if world.rank == 0:
        typer.echo(json.dumps(metrics, indent=2, sort_keys=True))


# ------------------------------------------------------------------------ edit
from diffcore.platform.edit_command import edit as _edit  # noqa: E402

app.command("edit", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(friendly(_edit))


# --------------------------------------------------------------------- plugins
@app.command()
@friendly
def plugins(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List the installed plugins: what each provides, its package and version, and its
    status (a plugin that failed to load is shown with its error and skipped)."""
    from diffcore.platform.registry import get_registry

    reg = get_registry()
    if as_json:
        data = [
            {"name": p.name, "package": p.package, "version": p.version, "status": p.status, "provides": p.provides}
            for p in reg.plugins.values()
        ]
        typer.echo(json.dumps(data, indent=2))
        return
    if not reg.plugins:
        typer.echo("no plugins installed (entry-point group 'diffcore')")
        return
    for p in reg.plugins.values():
        pkg = f"{p.package or '(in-process)'} {p.version or ''}".strip()
        typer.echo(f"{p.name}  [{p.label}]  {pkg}")
        if p.ok:
            provided = [f"{kind}: {', '.join(names)}" for kind, names in p.provides.items() if names]
            typer.echo("    " + ("; ".join(provided) or "provides nothing"))
            for r in p.provides["recipes"]:
                desc = reg.recipes[r].description
                typer.echo(f"    recipe {r}: domain {reg.recipes[r].domain}, backbone {reg.recipes[r].backbone}" + (f" - {desc}" if desc else ""))
        else:
            typer.echo(f"    {'note' if p.overridden else 'error'}: {p.status}")


# -------------------------------------------------------------------- schedule
@app.command()
@friendly
def schedule(
    names: list[str] = typer.Argument(..., metavar="NAME", help="Schedule names, e.g. linear cosine vp flow."),
    steps: Optional[int] = typer.Option(None, "--steps", "-T", min=2, help="Number of steps the table counts in [default: a discrete schedule's own T, else 1000]."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG with alpha_bar(t) and log-SNR(t) side by side."),
    alpha_bar: list[float] = typer.Option([0.5, 0.1, 0.01], "--alpha-bar", help="alpha_bar levels for the table (repeatable)."),
    log_snr: list[float] = typer.Option([0.0, -5.0], "--log-snr", help="log-SNR levels for the table (repeatable)."),
) -> None:
    """Compare noise schedules: where each passes given noise levels, and how many of its
    steps are spent at log-SNR < -5 (almost pure noise)."""
    from diffcore.platform import schedview
    from diffcore.platform.registry import get_registry

    get_registry()  # load the plugins: their schedules join the schedule table
    table = schedview.crossings(names, steps, alpha_bar, log_snr)
    typer.echo(table)
    if plot is not None:
        schedview.plot(names, plot)
        typer.echo(f"plot written to {plot}")


def main(argv: list[str] | None = None) -> None:
    """The ``diffcore`` console script."""
    app(args=argv, prog_name="diffcore")


if __name__ == "__main__":  # `python -m diffcore.cli` (also how DDP re-launches it)
    main()
