"""Does inpainting give the right conditional distribution? Keep x, let the model generate y,
and compare the generated y with exact draws of p(y | x) from the data's own generator
(diffcore_points.data.conditional): the 1-D energy distance (Szekely & Rizzo 2013) per x,
beside its floor (two exact sets of the same size). Rows: `diffcore edit` with replacement and
with RePaint; SMCDiff through the Python API (not behind `diffcore edit` yet); and the model's
own answer without editing, its unconditional samples whose x lies within 0.02 of the given x.

    diffcore train --plugin points-mlp --set backbone.class_conditional=false --out runs/moons-uncond --threads 1
    python examples/diffcore-points/benchmarks/edit_points.py --run runs/moons-uncond --out edit-bench

Prints a markdown table and writes DIR/conditional.png (histograms) and each setting's
`diffcore edit` folder (samples.csv, edit.png). Needs the plugin installed (`diffcore plugins`).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
import yaml

import diffcore.testing as dt
from diffcore_points.data import DEFAULT_NOISE, conditional

XS = {"two-moons": [-0.5, 0.0, 0.5, 1.0, 1.5, 2.0], "8-gaussians": [-2.0, -1.414, 0.0, 1.414, 2.0],
      "swiss-roll": [-2.0, -1.0, 0.0, 1.0, 2.0]}
SETTINGS = {  # name -> (extra `diffcore edit` flags, network evaluations per output)
    "replacement, dpm-solver++2s, 10 steps (the run's sampler)": ([], 19),
    "replacement, ddpm, 200 steps": (["--sampler", "ddpm", "--steps", "200"], 200),
    "RePaint, ddim, 50 steps x 10": (["--sampler", "ddim", "--steps", "50", "--resample", "10"], 500),
    "RePaint, ddpm, 200 steps x 5": (["--sampler", "ddpm", "--steps", "200", "--resample", "5"], 1000),
}
SHOWN = ("replacement, dpm", "RePaint, ddpm", "SMCDiff")  # the settings drawn in conditional.png
WINDOW = 0.02  # the model's own samples with |x - x*| < WINDOW


def cli(*args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["diffcore", *args, "--threads", "1"], check=True, capture_output=True, text=True)
    return time.perf_counter() - t0


def read(path: Path) -> np.ndarray:
    with open(path) as f:
        return np.array([[float(r["x"]), float(r["y"])] for r in csv.DictReader(f)])


def energy(a: np.ndarray, b: np.ndarray) -> float:
    return float(dt.energy_distance(torch.tensor(a[:, None]), torch.tensor(b[:, None])))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--num", type=int, default=1000, help="outputs per x")
    p.add_argument("--own", type=int, default=200_000, help="unconditional samples for the model's own answer (0: skip)")
    p.add_argument("--particles", type=int, default=10, help="SMCDiff particles per output (0: skip)")
    p.add_argument("--out", type=Path, default=Path("edit-bench"))
    a = p.parse_args()
    data = yaml.safe_load((a.run / "config.yaml").read_text())["data"]
    name, noise = data["dataset"], data.get("noise") or DEFAULT_NOISE[data["dataset"]]
    xs, n = XS[name], a.num
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "inputs.csv").write_text("x,y\n" + "".join(f"{v},\n" for v in xs))  # y empty: generated
    exact = [conditional(name, noise, 0, v, n, seed=1) for v in xs]
    floor = [energy(conditional(name, noise, 0, v, n, seed=2), e) for v, e in zip(xs, exact)]
    rows, ys = {}, {}
    for i, (setting, (flags, evals)) in enumerate(SETTINGS.items()):
        out = a.out / f"edit-{i}"
        secs = cli("edit", "--run", str(a.run), "--input", str(a.out / "inputs.csv"), "--num", str(n),
                   "--seed", "0", "--out", str(out), *flags)
        pts = read(out / "samples.csv").reshape(len(xs), n, 2)  # n outputs per input, in input order
        err = np.abs(pts[:, :, 0] - np.array(xs)[:, None]).max()
        assert err < 1e-5, f"{setting}: x not kept ({err})"
        ys[setting] = pts[:, :, 1]
        rows[setting] = ([energy(y, e) for y, e in zip(pts[:, :, 1], exact)], evals, secs)
    if a.particles:
        setting = f"SMCDiff (Python API), ddpm, 200 steps, {a.particles} particles"
        t0 = time.perf_counter()
        ys[setting] = smc_outputs(a.run, xs, n, a.particles)
        rows[setting] = ([energy(y, e) for y, e in zip(ys[setting], exact)], 200 * a.particles, time.perf_counter() - t0)
    if a.own:
        secs = cli("sample", "--run", str(a.run), "--num", str(a.own), "--seed", "0", "--out", str(a.out / "own"))
        own = read(a.out / "own" / "samples.csv")
        near = [own[np.abs(own[:, 0] - v) < WINDOW, 1] for v in xs]
        share = [len(y) / a.own for y in near]
        rows[f"no editing: the model's samples with \\|x - x*\\| < {WINDOW}"] = (
            [energy(y, e) for y, e in zip(near, exact)], f"19 per sample, {min(share):.1%}-{max(share):.1%} of them in the window", secs)
    print(f"{name}, {n} outputs per x; energy distance of y to exact draws of p(y | x)\n")
    print("| | " + " | ".join(f"x = {v:g}" for v in xs) + " | mean | network evaluations per output | wall time |")
    print("| --- " * (len(xs) + 4) + "|")
    print("| floor (two exact sets) | " + " | ".join(f"{f:.4f}" for f in floor) + f" | {np.mean(floor):.4f} | | |")
    for setting, (eds, evals, secs) in rows.items():
        print(f"| {setting} | " + " | ".join(f"{e:.4f}" for e in eds) + f" | {np.mean(eds):.4f} | {evals} | {secs:.0f} s |")
    figure(xs, exact, ys, a.out / "conditional.png")


def smc_outputs(run_dir: Path, xs: list[float], n: int, particles: int) -> list[np.ndarray]:
    """SMCDiff (Trippe et al. 2022; diffcore.sampling.edits.smc, not behind `diffcore edit`
    yet): per x, n groups of `particles` particles; one output per group, so that the n
    outputs are independent."""
    from diffcore.math.sampling.edits import smc
    from diffcore.platform import config, runs

    torch.set_num_threads(1)
    run = runs.load_run(run_dir)
    plan = config.sampling_plan(run.config, key="cli", sampler="ddpm", steps=200)
    g = torch.Generator().manual_seed(0)
    ys = []
    for v in xs:
        (b,) = run.domain.edit_batches([f"{v},"], n * particles, n * particles)
        x = smc(plan, run.net, torch.randn(b["shape"], generator=g), known=b["known"], keep=b["keep"],
                particles=particles, generator=g)
        ys.append(run.domain.denormalise(x[::particles].double().numpy())[:, 1])
    return ys


def figure(xs, exact, ys, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = (len(xs) + 1) // 2
    fig = Figure(figsize=(2.6 * cols, 4.6), dpi=80)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, cols).ravel()
    for i, (ax, v) in enumerate(zip(axes, xs)):
        bins = np.linspace(*np.percentile(np.concatenate([exact[i], *[y[i] for y in ys.values()]]), [0.5, 99.5]), 40)
        ax.hist(exact[i], bins, density=True, color="0.8", label="exact p(y | x)")
        for setting, y in ((k, y) for k, y in ys.items() if k.startswith(SHOWN)):
            ax.hist(y[i], bins, density=True, histtype="step", label=setting.split(" (")[0])
        ax.set_title(f"y given x = {v:g}", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[len(xs):]:
        ax.axis("off")
    axes[0].legend(fontsize=6, loc="upper left", frameon=False)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
