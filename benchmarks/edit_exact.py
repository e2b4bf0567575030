"""Inpainting against the exact conditional: replacement, RePaint and SMC on the Gaussian
mixtures of diffcore.testing.suite, whose conditional given some coordinates is known in closed
form (GaussianMixture.conditional).

For each target, ``--inputs`` points are drawn from the target itself (typical inputs); the
first half of the coordinates is kept, the rest generated, ``--num`` outputs per input, with the
exact denoiser (the ideal network), so what is measured is the editing method's own error. The
figure is the energy distance of the generated free coordinates to samples of the exact
conditional, divided by the median of that distance between two exact sample sets of the same
size (the null: ~1 is "within sampling noise"; the null's 95th percentile is printed beside).

    OMP_NUM_THREADS=1 python benchmarks/edit_exact.py --out docs/editing-exact-100.json
    OMP_NUM_THREADS=1 python benchmarks/edit_exact.py --steps 1000 --particles 16 --num 300 --out docs/editing-exact-1000.json
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from diffcore.math.sampling import SamplingPlan
from diffcore.math.sampling.edits import edit, smc
from diffcore.testing import suite
from diffcore.testing.targets import GaussianMixture, energy_distance

METHODS: dict[str, dict] = {}


def methods(resample: int, particles: int) -> dict[str, dict]:
    return {"replacement": dict(resample=1), f"repaint r={resample}": dict(resample=resample),
            f"smc K={particles}": dict(particles=particles)}


def run(target, method, x_in, keep, plan, n, seed):
    g = torch.Generator().manual_seed(seed)
    opts = METHODS[method]
    model = target.predictor(plan.schedule, "eps")
    k = opts.get("particles", 1)
    known = x_in.expand(n * k, -1).clone()
    noise = torch.randn(n * k, target.dim, generator=g, dtype=torch.float64)
    if "particles" in opts:
        x = smc(plan, model, noise, known=known, keep=keep, particles=k, generator=g)
        return x.view(n, k, -1)[:, 0]
    return edit(plan, model, noise, known=known, keep=keep, resample=opts["resample"], generator=g)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", nargs="*", default=[n for n in suite.TUNING + suite.HELD_OUT if isinstance(suite.get(n), GaussianMixture) and suite.get(n).dim <= 16])
    ap.add_argument("--inputs", type=int, default=4)
    ap.add_argument("--num", type=int, default=500)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--schedule", default="linear")
    ap.add_argument("--resample", type=int, default=10)
    ap.add_argument("--particles", type=int, default=64)
    ap.add_argument("--out", default=None)
    ap.add_argument("--table", nargs="*", default=None, help="print the markdown table of these result files and exit")
    args = ap.parse_args()
    if args.table is not None:
        print(table(args.table))
        return
    METHODS.update(methods(args.resample, args.particles))
    torch.set_num_threads(1)
    plan = SamplingPlan.make(args.schedule, "ddpm", args.steps)
    rows = []
    for name in args.targets:
        target = suite.get(name)
        d = target.dim
        kept_idx = list(range(d // 2 if d > 1 else 1))
        keep = torch.zeros(d, dtype=torch.float64)
        keep[kept_idx] = 1
        inputs = target.sample(args.inputs, torch.Generator().manual_seed(123))
        for i, x_in in enumerate(inputs):
            cond = target.conditional(kept_idx, x_in[kept_idx])
            null = cond.null_distances(args.num, repeats=20, seed=i)
            ref = cond.sample(args.num, torch.Generator().manual_seed(1000 + i))
            for method in METHODS:
                t0 = time.time()
                x = run(target, method, x_in[None], keep, plan, args.num, seed=i)
                ed = float(energy_distance(x[:, [j for j in range(d) if j not in kept_idx]], ref))
                row = dict(target=name, input=i, method=method, ratio=ed / float(null.median()),
                           null_p95_ratio=float(null.quantile(0.95) / null.median()), seconds=time.time() - t0)
                rows.append(row)
                print(f"{name:16s} input {i} {method:13s} ED/null-median {row['ratio']:8.1f} (null p95 {row['null_p95_ratio']:.1f})", flush=True)
    summary = {}
    for method in METHODS:
        r = sorted(x["ratio"] for x in rows if x["method"] == method)
        summary[method] = dict(median=r[len(r) // 2], within_p95=sum(x["ratio"] <= x["null_p95_ratio"] for x in rows if x["method"] == method), cases=len(r))
        print(method, summary[method])
    if args.out:
        with open(args.out, "w") as f:
            json.dump(dict(args=vars(args), rows=rows, summary=summary), f, indent=1)


def table(paths: list[str]) -> str:
    """One markdown table: per target, the median over its inputs of each method's ratio, for
    each result file (its steps in the header); the last rows count the cases within the null's
    95th percentile."""
    res = [json.load(open(p)) for p in paths]
    cols = [(r, m) for r in res for m in r["summary"]]
    head = "| target | " + " | ".join(f"{m}, {r['args']['steps']} steps" for r, m in cols) + " |"
    lines = [head, "|---" * (len(cols) + 1) + "|"]
    for name in dict.fromkeys(row["target"] for row in res[0]["rows"]):
        cells = []
        for r, m in cols:
            vals = sorted(x["ratio"] for x in r["rows"] if x["target"] == name and x["method"] == m)
            cells.append(f"{vals[len(vals) // 2]:.1f}" if vals else "-")
        split = "tuning" if name in suite.TUNING else "held-out"
        lines.append(f"| {name} ({split}) | " + " | ".join(cells) + " |")
    lines.append("| median of all cases | " + " | ".join(f"{r['summary'][m]['median']:.1f}" for r, m in cols) + " |")
    lines.append("| cases within the null's p95 | " + " | ".join(f"{r['summary'][m]['within_p95']} / {r['summary'][m]['cases']}" for r, m in cols) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
