"""Pixel vs latent diffusion on shapes64 at the same CPU budget (issue: latent diffusion).

    python benchmarks/latent_vs_pixel.py [--budget-min 15] [--ae-share 0.33] [--out-dir DIR] [--doc docs/domains/shapes64.md]

Both legs get the same budget of CPU time on one thread each, the autoencoder included in the
latent leg's: the pixel leg trains the image U-Net on 3x64x64 renders for the whole budget; the
latent leg trains the image autoencoder (3x64x64 -> 4x16x16) for ``--ae-share`` of it, then the
U-Net on the latents for the rest. Steps are set from a short probe of each stage's CPU seconds
per step (CPU time of the child process, not wall time, so the two legs may run side by side on
a shared machine). Then each run samples 64 images (timed: wall and CPU) and is evaluated on
``--num`` class-conditional samples (shape and colour consistency, Fréchet ratio over the
real-vs-real floor: docs/domains/shapes64.md), with the same sampler and steps.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CLI = [sys.executable, "-m", "diffcore.platform.cli"]
DATA = ["--set", "data.dataset=shapes64"]
PIXEL_NET = ["--set", "backbone.channel_mult=[1,2,2,2]", "--set", "backbone.attention_resolutions=[8]"]
COMMON = ["--threads", "1", "--set", "training.batch_size=64", "--set", "training.log_every=10",
          "--set", "training.preview_num=0"]  # no previews: the budget goes to training


def cpu_of(args: list[str]) -> tuple[float, float, str]:
    """(wall s, CPU s of the child from its own resource usage, stdout) of one diffcore command."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    start = time.perf_counter()
    proc = subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = [], []
    t_out = threading.Thread(target=lambda: out.append(proc.stdout.read()))
    t_err = threading.Thread(target=lambda: err.append(proc.stderr.read()))
    t_out.start(), t_err.start()
    _, status, usage = os.wait4(proc.pid, 0)
    t_out.join(), t_err.join()
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"failed: diffcore {' '.join(args)}\n{''.join(err)[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, "".join(out)


def per_step(make, tmp: Path, name: str, short: int = 2, long: int = 8) -> tuple[float, float]:
    """(CPU seconds per step, CPU seconds of start-up and end) of a training command, from two
    probe runs of ``short`` and ``long`` steps."""
    _, a, _ = cpu_of(make(tmp / f"{name}-probe-a", short))
    _, b, _ = cpu_of(make(tmp / f"{name}-probe-b", long))
    per = max((b - a) / (long - short), 1e-3)
    return per, max(a - short * per, 0.0)


def leg_pixel(budget: float, tmp: Path, res: dict) -> None:
    def make(out, steps):
        return ["train", "--plugin", "image-unet", "--out", str(out), "--max-steps", str(steps), *COMMON, *DATA, *PIXEL_NET]
    s, fixed = per_step(make, tmp, "pixel")
    steps = max(1, int((budget - fixed) / s))
    wall, cpu, _ = cpu_of(make(tmp / "pixel", steps))
    res["pixel"] = {"run": str(tmp / "pixel"), "steps": steps, "cpu_per_step": s, "train_cpu": cpu, "train_wall": wall}


def leg_latent(budget: float, share: float, tmp: Path, res: dict) -> None:
    def make_ae(out, steps):
        return ["train-autoencoder", "--plugin", "image-unet", "--out", str(out), "--max-steps", str(steps),
                "--threads", "1", "--batch-size", "32", *DATA]
    s_ae, fixed_ae = per_step(make_ae, tmp, "ae", 10, 40)
    ae_steps = max(1, int((budget * share - fixed_ae) / s_ae))
    ae_wall, ae_cpu, _ = cpu_of(make_ae(tmp / "ae", ae_steps))
    ae_metrics = json.loads((tmp / "ae" / "metrics.json").read_text())

    def make(out, steps):
        return ["train", "--plugin", "image-unet", "--out", str(out), "--max-steps", str(steps), *COMMON, *DATA,
                "--set", f"latent.autoencoder={tmp / 'ae'}"]
    s, fixed = per_step(make, tmp, "latent", 10, 40)
    steps = max(1, int((budget - ae_cpu - fixed) / s))
    wall, cpu, _ = cpu_of(make(tmp / "latent", steps))
    res["latent"] = {"run": str(tmp / "latent"), "steps": steps, "cpu_per_step": s, "train_cpu": cpu + ae_cpu,
                     "train_wall": wall + ae_wall, "ae_steps": ae_steps, "ae_cpu": ae_cpu, "ae_psnr": ae_metrics.get("psnr")}


def measure(name: str, args, res: dict) -> None:
    run_dir = res[name]["run"]
    opts = ["--sampler", args.sampler, "--steps", str(args.steps), "--threads", "1"]
    wall, cpu, _ = cpu_of(["sample", "--run", run_dir, "--out", run_dir + "/samples64", "--num", "64", "--batch-size", "64", *opts])
    res[name].update(sample64_wall=wall, sample64_cpu=cpu)
    _, _, out = cpu_of(["evaluate", "--run", run_dir, "--num", str(args.num), "--batch-size", "100", *opts])
    res[name]["metrics"] = json.loads(out[out.index("{"):])


def table(res: dict, args) -> str:
    rows = ["| | pixel U-Net (3x64x64) | latent U-Net (4x16x16) |", "|---|---:|---:|"]
    p, q = res["pixel"], res["latent"]
    def row(label, f):
        rows.append(f"| {label} | {f(p)} | {f(q)} |")
    row("training CPU time (autoencoder included)", lambda r: f"{r['train_cpu'] / 60:.1f} min")
    row("autoencoder steps / PSNR", lambda r: f"{r['ae_steps']} / {r['ae_psnr']:.1f} dB" if "ae_steps" in r else "-")
    row("diffusion steps (batch 64)", lambda r: f"{r['steps']}")
    row("diffusion steps per CPU second", lambda r: f"{1 / r['cpu_per_step']:.2f}")
    row(f"sampling 64 images ({args.sampler}, {args.steps} steps), wall / CPU", lambda r: f"{r['sample64_wall']:.1f} s / {r['sample64_cpu']:.1f} s")
    for k in ("shape_consistency", "colour_consistency", "frechet", "frechet_floor", "frechet_ratio"):
        row(k.replace("_", " "), lambda r, k=k: f"{r['metrics'][k]:.3f}")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-min", type=float, default=15.0, help="CPU minutes per leg")
    ap.add_argument("--ae-share", type=float, default=0.33, help="share of the latent leg's budget for the autoencoder")
    ap.add_argument("--sampler", default="auto")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--num", type=int, default=480, help="samples evaluated (20 per class)")
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=Path("/tmp/latent_vs_pixel.json"))
    args = ap.parse_args()
    tmp = args.out_dir or Path(tempfile.mkdtemp(prefix="lvp-"))
    tmp.mkdir(parents=True, exist_ok=True)
    budget, res, t0 = args.budget_min * 60, {}, time.time()
    legs = [threading.Thread(target=leg_pixel, args=(budget, tmp, res)),
            threading.Thread(target=leg_latent, args=(budget, args.ae_share, tmp, res))]
    for t in legs:
        t.start()
    for t in legs:
        t.join()
    if set(res) != {"pixel", "latent"}:
        sys.exit("a leg failed (see above)")
    print(f"trained in {(time.time() - t0) / 60:.1f} min (wall)", flush=True)
    evals = [threading.Thread(target=measure, args=(name, args, res)) for name in ("pixel", "latent")]
    for t in evals:
        t.start()
    for t in evals:
        t.join()
    args.json.write_text(json.dumps(res, indent=1))
    print(table(res, args))
    print(f"runs under {tmp}; figures in {args.json}; {(time.time() - t0) / 60:.1f} min in all")


if __name__ == "__main__":
    main()
