"""Samplers at 4-50 model evaluations on the exact target suite: choose diffcore's recommended
sampler per (schedule family, NFE) on the *tuning* targets, then report it against diffusers'
schedulers on the *held-out* targets.

    python benchmarks/frontier.py tune                    # writes diffcore/math/sampling/recommended.py
    python benchmarks/frontier.py report --out docs/benchmarks.md   # the held-out tables

Method. Every sampler is fed the exact predictor of a suite target (diffcore.testing.suite), so
what is measured is the sampler's own error, as z = (energy distance to a fresh target sample -
mean null distance) / std of the null distances at the same n (z <= ~2: indistinguishable from
the target). The tuning step tries every deterministic sampler of the table with every spacing
that applies, at each NFE budget, and keeps the lowest mean z over the tuning targets and seeds.
The report runs the recommended choice and diffusers' schedulers (each at the spacing that is best
for it on the held-out targets themselves, an advantage given to the peer) on the held-out targets.
diffusers' 0-based step k is our step k + 1 (t = (k + 1) / T); they run on our float64
alphas_cumprod so that both sides integrate the same path.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

import diffcore
from diffcore import sampling, schedules
from diffcore.math.sampling.grid import usable_steps
from diffcore.sampling import SPACINGS
from diffcore.testing import suite

F64 = torch.float64
ROOT = Path(__file__).resolve().parents[1]
RECOMMENDED = ROOT / "diffcore" / "math" / "sampling" / "recommended.py"
NFES = (4, 5, 6, 8, 10, 15, 20, 50)
FAMILIES = {"vp": ("linear", "cosine"), "flow": ("flow",)}  # the schedules each family is tuned on
N = 2000


def candidates(schedule) -> list[tuple[str, str]]:
    """(sampler, spacing) pairs worth trying: deterministic samplers of the table (stochastic
    ones need hundreds of evaluations), every spacing that applies to the schedule."""
    out = []
    for spec in sampling.specs():
        if spec.stochastic or spec.nfe is None:
            continue
        for sp in SPACINGS:
            if sp.startswith("leading") and not schedule.discrete:
                continue
            out.append((spec.name, sp))
    return out


def steps_for(sampler: str, nfe: int, schedule) -> int | None:
    """The most steps whose declared evaluations fit in ``nfe`` (None: not even one)."""
    return sampling.get(sampler).steps_within(nfe, cap=usable_steps(schedule))


def z_ours(target_name, schedule, sampler, spacing, nfe, seed) -> float:
    target = suite.get(target_name)
    steps = steps_for(sampler, nfe, schedule)
    if steps is None:
        return math.inf
    noise = torch.randn(N, target.dim, generator=torch.Generator().manual_seed(seed), dtype=F64)
    try:
        x = diffcore.generate(target.predictor(schedule), noise, schedule, sampler=sampler, steps=steps, spacing=spacing)
    except ValueError:
        return math.inf
    if not torch.isfinite(x).all():
        return math.inf
    return float(suite.z_score(x, target, N, seed))


def tune(args) -> None:
    """Rows per built-in schedule (its own best) and per family (the best mean over its
    schedules, for schedules the table has no rows for, e.g. a plugin's)."""
    t0 = time.time()
    table: dict[str, dict[int, tuple[str, str, float]]] = {}
    for fam, names in FAMILIES.items():
        scheds = [schedules.get(n) for n in names]
        for nfe in NFES:
            per: dict[str, dict[tuple[str, str], float]] = {n: {} for n in names}
            for sampler, spacing in candidates(scheds[0]):
                for s in scheds:
                    if spacing.startswith("leading") and not s.discrete:
                        continue
                    zs = [z_ours(t, s, sampler, spacing, nfe, seed) for t in suite.TUNING for seed in args.seeds]
                    per[s.name][(sampler, spacing)] = statistics.fmean(zs) if all(math.isfinite(v) for v in zs) else math.inf
            for n in names:
                (sampler, spacing), z = min(per[n].items(), key=lambda kv: kv[1])
                table.setdefault(n, {})[nfe] = (sampler, spacing, z)
                print(f"{n:7s} nfe {nfe:3d}: {sampler} / {spacing}  mean z {z:.2f}  ({time.time() - t0:.0f} s)", flush=True)
            if len(names) > 1:
                common = set.intersection(*(set(per[n]) for n in names))
                pooled = {c: statistics.fmean(per[n][c] for n in names) for c in common}
                (sampler, spacing), z = min(pooled.items(), key=lambda kv: kv[1])
                table.setdefault(fam, {})[nfe] = (sampler, spacing, z)
    lines = [
        '"""Recommended sampler and spacing per (schedule or family, NFE budget), chosen on the tuning',
        "half of the exact target suite (diffcore.testing.suite.TUNING) by benchmarks/frontier.py tune;",
        'generated, do not edit: rerun the script. Reported on the held-out half in docs/benchmarks.md."""',
        "",
        "# schedule name (its own rows) or family (pooled, for other schedules of that family)",
        "# -> [(nfe, sampler, spacing, mean z on the tuning targets)], nfe ascending",
        "RECOMMENDED = {",
    ]
    for fam, rows in table.items():
        lines.append(f"    {fam!r}: [")
        for nfe, (sampler, spacing, z) in sorted(rows.items()):
            lines.append(f"        ({nfe}, {sampler!r}, {spacing!r}, {round(z, 2)}),")
        lines.append("    ],")
    lines.append("}")
    RECOMMENDED.write_text("\n".join(lines) + "\n")
    print(f"wrote {RECOMMENDED} in {time.time() - t0:.0f} s")


# ------------------------------------------------------------------------------ diffusers
PEERS = {  # name -> (class name, constructor options)
    "DDIM": ("DDIMScheduler", dict(clip_sample=False)),
    "DPM++2M": ("DPMSolverMultistepScheduler", dict(solver_order=2, algorithm_type="dpmsolver++")),
    "DPM++3M": ("DPMSolverMultistepScheduler", dict(solver_order=3, algorithm_type="dpmsolver++")),
    "UniPC": ("UniPCMultistepScheduler", dict()),
    "DEIS": ("DEISMultistepScheduler", dict()),
    "Euler": ("EulerDiscreteScheduler", dict()),
    "Heun": ("HeunDiscreteScheduler", dict()),
}
PEER_SPACINGS = ("leading", "trailing", "linspace")


def make_peer(name: str, schedule, spacing: str):
    import diffusers

    cls, opts = PEERS[name]
    beta = {"linear": "linear", "cosine": "squaredcos_cap_v2"}[schedule.name]
    ref = getattr(diffusers, cls)(num_train_timesteps=schedule.num_steps, beta_schedule=beta, timestep_spacing=spacing, **opts)
    ac = schedule.alphas_cumprod.clone()  # our float64 path (equal to theirs to 1e-6)
    ref.alphas_cumprod = ac
    if hasattr(ref, "lambda_t"):
        ref.alpha_t, ref.sigma_t = ac.sqrt(), (1 - ac).sqrt()
        ref.lambda_t = ref.alpha_t.log() - ref.sigma_t.log()
    return ref


def _t_of_tau(schedule, tau: float) -> float:
    """Our time where sigma / alpha = tau (bisection on the monotone log-SNR)."""
    lam = -2 * math.log(max(tau, 1e-30))
    lo, hi = schedule.t_min, schedule.t_max
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if float(schedule.log_snr(torch.tensor(mid, dtype=F64))) > lam else (lo, mid)
    return 0.5 * (lo + hi)


def run_peer(name, target, schedule, spacing, nfe, seed):
    """A diffusers scheduler with the exact predictor, within ``nfe`` model evaluations.
    Sigma-based schedulers (Euler, Heun) are queried at the time whose sigma / alpha is theirs."""
    ref = make_peer(name, schedule, spacing)
    steps = (nfe + 1) // 2 if name == "Heun" else nfe
    ref.set_timesteps(steps)
    model = target.predictor(schedule)
    noise = torch.randn(N, target.dim, generator=torch.Generator().manual_seed(seed), dtype=F64)
    x = noise * float(ref.init_noise_sigma)
    T, calls = schedule.num_steps, 0
    for k in ref.timesteps:
        xin = ref.scale_model_input(x, k) if hasattr(ref, "scale_model_input") else x
        if name in ("Euler", "Heun"):
            t = _t_of_tau(schedule, float(ref.sigmas[ref.step_index]))
        else:  # diffusers' 0-based step k is our step k + 1
            t = (int(k) + 1) / T
        out = model(xin, torch.full((N,), t, dtype=F64))
        calls += 1
        x = ref.step(out, k, x).prev_sample
    if calls > nfe or not torch.isfinite(x).all():
        return math.inf
    return float(suite.z_score(x, target, N, seed))


def _old_rows(args) -> list:
    return json.loads(Path(args.reuse_peers).read_text())


def report(args) -> None:
    """Held-out targets: the recommended choice ('auto') against each diffusers scheduler at
    its best spacing (chosen on these same targets), mean z over targets and seeds."""
    t0 = time.time()
    rows = []
    for sname in args.schedules:
        s = schedules.get(sname)
        for nfe in args.nfes:
            sampler, spacing, _ = sampling.recommend(s, nfe)
            ours = statistics.fmean(z_ours(t, s, sampler, spacing, nfe, seed) for t in suite.HELD_OUT for seed in args.seeds)
            peers = {}
            if args.reuse_peers:
                peers = next((dict(r[5]) for r in _old_rows(args) if r[0] == sname and r[1] == nfe), {})
                peers = {k: tuple(v) for k, v in peers.items()}
            elif s.discrete:
                for name in PEERS:
                    best = None
                    for sp in PEER_SPACINGS:
                        zs = [run_peer(name, suite.get(t), s, sp, nfe, seed) for t in suite.HELD_OUT for seed in args.seeds]
                        z = statistics.fmean(zs) if all(math.isfinite(v) for v in zs) else math.inf
                        if best is None or z < best[0]:
                            best = (z, sp)
                    peers[name] = best
            rows.append((sname, nfe, sampler, spacing, ours, peers))
            best_peer = min(peers.items(), key=lambda kv: kv[1][0]) if peers else None
            print(f"{sname:7s} nfe {nfe:3d}: auto = {sampler}/{spacing} z {ours:8.2f}"
                  + (f" | best diffusers {best_peer[0]}/{best_peer[1][1]} z {best_peer[1][0]:8.2f}" if best_peer else "")
                  + f"  ({time.time() - t0:.0f} s)", flush=True)
    Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    print(f"wrote {args.json} in {time.time() - t0:.0f} s")
    if args.out:
        write_section(Path(args.out), markdown(rows, args, time.time() - t0))
        print(f"wrote the section into {args.out}")


SECTION = "## Samplers on held-out targets (recommended vs diffusers)"


def markdown(rows, args, elapsed) -> str:
    peers = list(PEERS)
    head = ["| schedule | NFE | diffcore `auto` (sampler / spacing) | z | " + " | ".join(f"{p}" for p in peers) + " | best diffusers |",
            "|---|---:|---|---:|" + "---:|" * len(peers) + "---|"]
    body = []
    for sname, nfe, sampler, spacing, ours, pz in rows:
        cells = [f"{pz[p][0]:.2f} ({pz[p][1]})" if p in pz and math.isfinite(pz[p][0]) else ("div." if p in pz else "-") for p in peers]
        best = min(pz.items(), key=lambda kv: kv[1][0]) if pz else None
        verdict = f"{best[0]} {best[1][0]:.2f} ({_verdict(ours, best[1][0], len(args.seeds))})" if best else "-"
        body.append(f"| {sname} | {nfe} | {sampler} / {spacing} | {ours:.2f} | " + " | ".join(cells) + f" | {verdict} |")
    reuse = getattr(args, "reuse_peers", None)
    how = ("; the diffusers columns were reused from the full run of the same command (`--reuse-peers`: "
           "they do not depend on diffcore's tuning), which took 15 min" if reuse else "")
    text = f"""{SECTION}

Generated by `python benchmarks/frontier.py report --seeds {' '.join(map(str, args.seeds))} --out docs/benchmarks.md`
({elapsed / 60:.0f} min on this machine{how}). Mean z over the **held-out** targets of
`diffcore.testing.suite` ({', '.join(suite.HELD_OUT)}) and {len(args.seeds)} noise seeds, n = {N}: z is the
energy distance to a fresh target sample in units of the true-vs-true spread (z <= ~2:
indistinguishable from the target). diffcore's column is `sampler="auto"`: the sampler and
spacing chosen per (family, NFE) on the **tuning** targets ({', '.join(suite.TUNING)}) by
`python benchmarks/frontier.py tune` (diffcore/math/sampling/recommended.py). Each diffusers
scheduler runs at the spacing that is best for it *on these held-out targets* (in brackets), an
advantage the peer gets and diffcore does not. diffusers has no flow-matching counterpart of
these schedulers here, so the flow rows show diffcore alone. "div.": non-finite or too few
evaluations for one step.

"""
    return text + "\n".join(head + body) + "\n"


def _verdict(ours: float, theirs: float, seeds: int) -> str:
    """'tie' where both are at the target (z <= 2) or the gap is within two standard errors of
    a mean z over the held-out runs (z has about unit variance at the target)."""
    se = 1 / math.sqrt(len(suite.HELD_OUT) * seeds)
    if (ours <= 2 and theirs <= 2) or abs(ours - theirs) < 2 * se:
        return "tie"
    return "diffcore ahead" if ours < theirs else "diffusers ahead"


def from_json(args) -> None:
    """Rewrite the markdown section from a saved report (no sampling)."""
    rows = json.loads(Path(args.json).read_text())
    rows = [(r[0], r[1], r[2], r[3], r[4], {k: tuple(v) for k, v in r[5].items()}) for r in rows]
    write_section(Path(args.out), markdown(rows, args, args.elapsed))


def write_section(out: Path, section: str) -> None:
    """Replace (or append) the section in ``out``, keeping the rest of the file."""
    text = out.read_text(encoding="utf-8") if out.exists() else ""
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip() + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["tune", "report", "markdown"])
    p.add_argument("--elapsed", type=float, default=0.0, help="markdown: the report's run time in seconds")
    p.add_argument("--reuse-peers", default=None, help="report: take the diffusers columns from this earlier report's JSON")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--nfes", type=int, nargs="+", default=list(NFES))
    p.add_argument("--schedules", nargs="+", default=["linear", "cosine", "flow"])
    p.add_argument("--json", default="/tmp/frontier_report.json")
    p.add_argument("--out", default=None, help="markdown file whose held-out section is (re)written")
    a = p.parse_args()
    torch.set_num_threads(1)
    {"tune": tune, "report": report, "markdown": from_json}[a.what](a)
    sys.exit(0)
