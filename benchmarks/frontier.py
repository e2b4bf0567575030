"""Samplers at 4-50 model evaluations on the exact target suite: choose diffcore's recommended
sampler per (schedule family, NFE) on the *tuning* targets, then report it against diffusers'
schedulers on the *held-out* targets.

    # the tuning half: every candidate's z (one process per schedule, in parallel), then the choice
    python benchmarks/frontier.py matrix --schedules linear --matrix /tmp/m_linear.json   # and cosine, flow
    python benchmarks/frontier.py tune --matrix /tmp/m_linear.json /tmp/m_cosine.json /tmp/m_flow.json
    python benchmarks/frontier.py report --out docs/benchmarks.md   # the held-out tables

Method. Every sampler is fed the exact predictor of a suite target (diffcore.testing.suite), so
what is measured is the sampler's own error, as z = (energy distance to a fresh target sample -
mean null distance) / std of the null distances at the same n (z <= ~2: indistinguishable from
the target). ``matrix`` runs every deterministic sampler of the table, with its default options
and the variants in VARIANTS, at every spacing that applies, at each NFE budget, on every tuning
target and seed; and, for TUNED_SAMPLERS at TUNED_NFES, a grid of its own searched on the tuning
targets (``optimise_grid``, spacing "tuned"; about 1-2 min per sampler and budget). ``tune`` sums each candidate's per-target z up by a criterion (mean, max, mean
of log(z + 3), median) and keeps the best candidate; which criterion is itself decided by
leave-one-target-out on the tuning targets (choose on five, score on the sixth), rather than
fixed in advance: how a choice carries over to targets it was not made on is what matters.
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
import yaml

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


VARIANTS = {  # option variants tried beside each sampler's defaults (the orders its paper discusses)
    "unipc": [{"order": 1}, {"order": 3}],
    "unipc-bh1": [{"order": 2}, {"order": 3}],
    "deis": [{"order": 2}],
    "ipndm": [{"order": 3}],
}


# Tuned grids (spacing "tuned"): for these samplers and budgets the N model times themselves are
# searched, on the tuning targets only, for the grid whose samples land closest to the exact
# probability-flow ODE's from the same noise (an "optimal step" search in the spirit of Align
# Your Steps, Sabour et al. 2024, and GITS, Chen et al. 2024). Below 15 evaluations the grid
# matters as much as the solver; above it every candidate is already at the target.
TUNED_SAMPLERS = (("ipndm", {"order": 3}), ("unipc-bh1", {}))
TUNED_NFES = (4, 5, 6, 8, 10)
TUNE_N = 400  # samples per tuning target in the search (the z of the result uses N fresh ones)
TUNE_SEED = 100  # the search's noise, apart from the seeds that score candidates


def optimise_grid(schedule, sampler: str, options: dict, nfe: int, *, evals: int | None = None) -> list[float]:
    """Log-SNR fractions of the best grid (grid.tuned_times) for ``sampler`` at ``nfe`` on the
    tuning targets: minimise the mean over targets of log(mean squared distance to the exact
    ODE's endpoint / the target's total variance), Nelder-Mead over the N - 1 gaps between
    model times and the slack before t_min, starting from the best named spacing. The exact
    endpoint is DPM-Solver++(3M) at 400 log-SNR steps from the same noise."""
    import numpy as np
    from scipy.optimize import minimize

    steps = steps_for(sampler, nfe, schedule, options)
    targets = [suite.get(t) for t in suite.TUNING]
    noises = [torch.randn(TUNE_N, t.dim, generator=torch.Generator().manual_seed(TUNE_SEED + i), dtype=F64)
              for i, t in enumerate(targets)]
    teacher = sampling.SamplingPlan.make(schedule, "dpm-solver++3m", 400, "logsnr")
    exact = [teacher.run(t.predictor(schedule), z) for t, z in zip(targets, noises)]
    scale = [float(x.var(0).sum()) for x in exact]

    def fractions(u):
        w = np.exp(u - u.max())
        return [0.0] + list(np.cumsum(w / w.sum())[:steps - 1])

    def loss(u):
        try:
            ts = sampling.tuned_times(schedule, steps, fractions(u), round_steps=False)
            plan = sampling.SamplingPlan.make(schedule, sampler, options=options, times=ts)
        except ValueError:
            return 1e3
        errs = []
        for t, z, x0, v in zip(targets, noises, exact, scale):
            e = float(((plan.run(t.predictor(schedule), z) - x0) ** 2).sum(1).mean()) / v
            errs.append(math.log(e + 1e-8) if math.isfinite(e) else 20.0)
        return statistics.fmean(errs)

    def start(spacing):  # a named spacing's grid as the search's parameters
        lam = schedule.log_snr(torch.tensor(sampling.timesteps(schedule, steps, spacing), dtype=F64))
        lam_end = schedule.log_snr(torch.tensor(schedule.t_min, dtype=F64))
        f = ((lam - lam[0]) / (lam_end - lam[0])).tolist()
        gaps = [b - a for a, b in zip(f, f[1:])] + [1 - f[-1]]
        return np.log(np.maximum(gaps, 1e-3))

    # start from the named spacing this sampler does best with (by the same loss)
    starts = [start(sp) for sp in SPACINGS if schedule.discrete or not sp.startswith("leading")]
    u0 = min(starts, key=loss)
    res = minimize(loss, u0, method="Nelder-Mead", options=dict(maxfev=evals or 60 * steps + 100, xatol=1e-3, fatol=1e-4))
    best = res.x if res.fun < loss(u0) else u0
    for u in (best, u0):  # rounded for the table; a gap that rounds away falls back to the start
        f = [round(float(v), 4) for v in fractions(u)]
        if all(b > a for a, b in zip(f, f[1:])):
            return f
    return [round(k / (steps - 1), 4) for k in range(steps)]


def candidates(schedule) -> list[tuple[str, str, dict]]:
    """(sampler, spacing, options) worth trying: deterministic samplers of the table (stochastic
    ones need tens to hundreds of evaluations), each with its defaults and the option variants
    above, every spacing that applies to the schedule."""
    out = []
    for spec in sampling.specs():
        if spec.stochastic or spec.nfe is None:
            continue
        for opts in [{}] + VARIANTS.get(spec.name, []):
            for sp in SPACINGS:
                if sp.startswith("leading") and not schedule.discrete:
                    continue
                out.append((spec.name, sp, opts))
    return out


def key(sampler: str, spacing: str, options: dict) -> str:
    """One candidate as a string (JSON key): 'unipc|trailing|order=3'."""
    return "|".join([sampler, spacing, ",".join(f"{k}={v}" for k, v in sorted(options.items()))])


def unkey(k: str) -> tuple[str, str, dict]:
    sampler, spacing, opts = k.split("|")
    return sampler, spacing, {a: yaml.safe_load(b) for a, b in (o.split("=") for o in opts.split(",") if o)}


def steps_for(sampler: str, nfe: int, schedule, options=None) -> int | None:
    """The most steps whose declared evaluations fit in ``nfe`` (None: not even one)."""
    return sampling.get(sampler).steps_within(nfe, options, cap=usable_steps(schedule))


def z_ours(target_name, schedule, sampler, spacing, nfe, seed, options=None, times=None) -> float:
    """z of one candidate on one target and seed; ``times``: the model times of a tuned grid."""
    target = suite.get(target_name)
    steps = steps_for(sampler, nfe, schedule, options)
    if steps is None:
        return math.inf
    noise = torch.randn(N, target.dim, generator=torch.Generator().manual_seed(seed), dtype=F64)
    try:
        if times is not None:
            plan = sampling.SamplingPlan.make(schedule, sampler, options=options, times=times)
        else:
            plan = sampling.SamplingPlan.make(schedule, sampler, steps, spacing, options)
        x = plan.run(target.predictor(schedule), noise)
    except ValueError:
        return math.inf
    if not torch.isfinite(x).all():
        return math.inf
    return float(suite.z_score(x, target, N, seed))


def matrix(args) -> None:
    """z of every candidate on every tuning target and seed, per schedule and NFE, into
    ``--matrix`` (JSON: {schedule: {nfe: {candidate: [z per (target, seed)]}}}), so that the
    selection (``tune``) can be rerun without sampling. One process per schedule runs in
    parallel: ``matrix --schedules linear --matrix m_linear.json``."""
    t0 = time.time()
    path = Path(args.matrix[0])
    old = json.loads(path.read_text()) if args.add and path.exists() else {}  # --add: new candidates only
    out: dict = old.get("z", {})
    grids: dict = old.get("grids", {})  # {schedule: {nfe: {candidate: log-SNR fractions}}} of the tuned ones
    for name in args.schedules:
        s = schedules.get(name)
        for nfe in args.nfes:
            row = out.setdefault(name, {}).setdefault(str(nfe), {})
            for sampler, spacing, opts in candidates(s):
                if key(sampler, spacing, opts) in row or (args.spacings and spacing not in args.spacings):
                    continue
                row[key(sampler, spacing, opts)] = [z_ours(t, s, sampler, spacing, nfe, seed, opts)
                                                    for t in suite.TUNING for seed in args.seeds]
            for sampler, opts in TUNED_SAMPLERS if nfe in TUNED_NFES and not args.no_tuned else ():
                k = key(sampler, "tuned", opts)
                if k in row:
                    continue
                f = grids.setdefault(name, {}).setdefault(str(nfe), {})[k] = optimise_grid(s, sampler, opts, nfe)
                ts = sampling.tuned_times(s, steps_for(sampler, nfe, s, opts), f)
                row[k] = [z_ours(t, s, sampler, "tuned", nfe, seed, opts, ts) for t in suite.TUNING for seed in args.seeds]
                print(f"{name:7s} nfe {nfe:3d}: tuned grid for {k}: mean z {statistics.fmean(row[k]):.2f} ({time.time() - t0:.0f} s)", flush=True)
            best = min(row.items(), key=lambda kv: statistics.fmean(kv[1]))
            print(f"{name:7s} nfe {nfe:3d}: lowest mean z {best[0]} {statistics.fmean(best[1]):.2f} ({time.time() - t0:.0f} s)", flush=True)
            Path(args.matrix[0]).write_text(json.dumps({"seeds": args.seeds, "targets": suite.TUNING, "z": out, "grids": grids}))
    print(f"wrote {args.matrix[0]} in {time.time() - t0:.0f} s")
def _per_target(zs: list[float], seeds: int) -> list[float]:
    """Mean over seeds of each target's z (the matrix lists them target by target)."""
    return [statistics.fmean(zs[i:i + seeds]) for i in range(0, len(zs), seeds)]


def _finite_mean(v) -> float:
    v = list(v)
    return statistics.fmean(v) if all(math.isfinite(x) for x in v) else math.inf


CRITERIA = {  # how the per-target z of one candidate are summed up into one score (lower is better)
    "mean": _finite_mean,
    "max": lambda v: max(v),
    "log": lambda v: _finite_mean(math.log(x + 3) for x in v),  # z >= ~-1 at the target: log keeps one hard target from deciding
    "median": lambda v: statistics.median(v),
}


def choose(table: dict[str, list[float]], targets: list[int], criterion: str) -> str:
    """The candidate with the best ``criterion`` over the targets at positions ``targets``."""
    f = CRITERIA[criterion]
    return min(table, key=lambda k: (f([table[k][i] for i in targets]), k))


def tune(args) -> None:
    """Choose the recommended rows from the matrix files: the selection criterion is itself
    chosen by leave-one-target-out on the tuning targets (choose on five, score on the sixth),
    then applied to all six. Writes diffcore/math/sampling/recommended.py."""
    data = [json.loads(Path(m).read_text()) for m in args.matrix]
    seeds = len(data[0]["seeds"])
    z = {name: {int(nfe): {k: _per_target(v, seeds) for k, v in cands.items()} for nfe, cands in rows.items()}
         for d in data for name, rows in d["z"].items()}
    n = len(data[0]["targets"])
    # leave one target out: each criterion's z on the left-out target, relative to the best criterion's, per (schedule, NFE)
    loo = {c: [] for c in CRITERIA}
    for name, rows in z.items():
        for nfe, table in rows.items():
            held = {c: _finite_mean(table[choose(table, [i for i in range(n) if i != j], c)][j] for j in range(n)) for c in CRITERIA}
            best = min(held.values())
            for c, v in held.items():
                loo[c].append(math.log((v + 3) / (best + 3)) if math.isfinite(v) else math.inf)
                print(f"  loo {name:7s} nfe {nfe:3d} {c:7s} mean z on the left-out target {v:8.2f}")
    score = {c: _finite_mean(v) for c, v in loo.items()}
    criterion = args.criterion or min(score, key=score.get)
    print("leave-one-target-out (mean log ratio to the best criterion; 0 = always best):",
          ", ".join(f"{c} {v:.3f}" for c, v in score.items()), "->", criterion, "(given)" if args.criterion else "")
    grids: dict = {}  # merged over the files (two may hold one schedule at different budgets)
    for d in data:
        for name, rows in d.get("grids", {}).items():
            grids.setdefault(name, {}).update({int(nfe): g for nfe, g in rows.items()})
    # rows for budgets the matrix files do not cover are kept as they are (e.g. a matrix of 4-10 only)
    table: dict[str, dict[int, tuple]] = {name: {r[0]: tuple(r[1:]) for r in rows} for name, rows in _current().items()}
    for name, rows in z.items():
        for nfe, cands in rows.items():
            k = choose(cands, list(range(n)), criterion)
            table.setdefault(name, {})[nfe] = (*unkey(k), _finite_mean(cands[k]), *([grids[name][nfe][k]] if "|tuned|" in k else []))
    for fam, names in FAMILIES.items():  # pooled rows, for other schedules of the family
        if len(names) > 1 and all(nm in z for nm in names):
            for nfe in z[names[0]]:
                # a tuned grid belongs to its schedule: the pooled rows choose among the named spacings
                common = set.intersection(*(set(z[nm][nfe]) for nm in names)) - {k for k in z[names[0]][nfe] if "|tuned|" in k}
                pooled = {k: [v for nm in names for v in z[nm][nfe][k]] for k in common}
                k = choose(pooled, list(range(n * len(names))), criterion)
                table.setdefault(fam, {})[nfe] = (*unkey(k), _finite_mean(pooled[k]))
    lines = [
        '"""Recommended sampler, spacing and options per (schedule or family, NFE budget), chosen on the',
        "tuning half of the exact target suite (diffcore.testing.suite.TUNING) by benchmarks/frontier.py",
        "matrix + tune; generated, do not edit: rerun the script. Reported on the held-out half in",
        'docs/benchmarks.md."""',
        "",
        f"CRITERION = {criterion!r}  # how the tuning targets' z were summed up (chosen by leave-one-target-out)",
        "",
        "# schedule name (its own rows) or family (pooled, for other schedules of that family)",
        "# -> [(nfe, sampler, spacing, options, mean z on the tuning targets[, grid])], nfe ascending;",
        "# spacing 'tuned': the row's grid, log-SNR fractions from the noisiest time (0) to t_min (1)",
        "# (diffcore.math.sampling.grid.tuned_times), searched on the tuning targets",
        "RECOMMENDED = {",
    ]
    for fam, rows in table.items():
        lines.append(f"    {fam!r}: [")
        for nfe, (sampler, spacing, opts, zz, *grid) in sorted(rows.items()):
            lines.append(f"        ({nfe}, {sampler!r}, {spacing!r}, {opts!r}, {round(zz, 2)}" + "".join(f", {g!r}" for g in grid) + "),")
        lines.append("    ],")
    lines.append("}")
    RECOMMENDED.write_text("\n".join(lines) + "\n")
    print(f"wrote {RECOMMENDED}")


def _current() -> dict:
    """The rows of recommended.py as it stands (read as data, not imported)."""
    import ast

    tree = ast.parse(RECOMMENDED.read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "RECOMMENDED")
    return ast.literal_eval(node.value)


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


FLOW_PEERS = {  # diffusers' schedulers on the flow-matching path (sigma = t, velocity = noise - x0)
    **{k: PEERS[k] for k in ("DPM++2M", "DPM++3M", "UniPC", "DEIS")},  # with use_flow_sigmas
    "Euler": ("FlowMatchEulerDiscreteScheduler", dict()),
    "Heun": ("FlowMatchHeunDiscreteScheduler", dict()),
}
FLOW_SHIFTS = ("shift=1", "shift=3")  # SD3's time shift sigma' = k sigma / (1 + (k - 1) sigma); 1: none


def run_flow_peer(name, target, schedule, shift, nfe, seed):
    """A diffusers flow-matching scheduler with the exact velocity, within ``nfe`` evaluations;
    the model is queried at the scheduler's own sigma, which is our time on the straight path."""
    import diffusers

    cls, opts = FLOW_PEERS[name]
    k = float(shift.split("=")[1])
    if cls.startswith("FlowMatch"):
        ref = getattr(diffusers, cls)(num_train_timesteps=1000, shift=k)
    else:
        ref = getattr(diffusers, cls)(num_train_timesteps=1000, use_flow_sigmas=True, prediction_type="flow_prediction",
                                      flow_shift=k, **opts)
    ref.set_timesteps((nfe + 1) // 2 if name == "Heun" else nfe)
    model = target.predictor(schedule, "velocity")
    x = torch.randn(N, target.dim, generator=torch.Generator().manual_seed(seed), dtype=F64)
    calls = 0
    for i, step in enumerate(ref.timesteps):
        out = model(x, torch.full((N,), float(ref.sigmas[i]), dtype=F64))
        calls += 1
        x = ref.step(out, step, x).prev_sample
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
            sampler, spacing, _, opts, times, _ = sampling.recommend(s, nfe)
            ours = statistics.fmean(z_ours(t, s, sampler, spacing, nfe, seed, opts, times)
                                    for t in suite.HELD_OUT for seed in args.seeds)
            sampler += "".join(f" {k}={v}" for k, v in opts.items())
            peers = {}
            if args.reuse_peers:
                peers = next((dict(r[5]) for r in _old_rows(args) if r[0] == sname and r[1] == nfe), {})
                peers = {k: tuple(v) for k, v in peers.items()}
            if not peers:  # each peer at its best spacing (discrete) or flow shift (flow) on these targets
                names, ways, run = (PEERS, PEER_SPACINGS, run_peer) if s.discrete else (FLOW_PEERS, FLOW_SHIFTS, run_flow_peer)
                for name in names:
                    best = None
                    for way in ways:
                        z = _finite_mean(run(name, suite.get(t), s, way, nfe, seed) for t in suite.HELD_OUT for seed in args.seeds)
                        if best is None or z < best[0]:
                            best = (z, way)
                    peers[name] = best
            rows.append((sname, nfe, sampler, spacing, ours, peers))
            best_peer = min(peers.items(), key=lambda kv: kv[1][0]) if peers else None
            print(f"{sname:7s} nfe {nfe:3d}: auto = {sampler}/{spacing} z {ours:8.2f}"
                  + (f" | best diffusers {best_peer[0]}/{best_peer[1][1]} z {best_peer[1][0]:8.2f}" if best_peer else "")
                  + f"  ({time.time() - t0:.0f} s)", flush=True)
    Path(args.json[0]).write_text(json.dumps(rows, indent=1, default=str))
    print(f"wrote {args.json[0]} in {time.time() - t0:.0f} s")
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
    files = getattr(args, "json", None) or []
    parallel = (f"; run as {len(files)} processes, one per schedule (`report --schedules S --json FILE`), "
                f"merged by `markdown --json FILE ... --elapsed SECONDS`" if len(files) > 1 else "")
    reuse = getattr(args, "reuse_peers", None)
    how = ("; the diffusers columns were reused from the full run of the same command (`--reuse-peers`: "
           "they do not depend on diffcore's tuning), which took 15 min" if reuse else "")
    text = f"""{SECTION}

Generated by `python benchmarks/frontier.py report --seeds {' '.join(map(str, args.seeds))} --out docs/benchmarks.md`
({elapsed / 60:.0f} min on this machine{how}{parallel}). Mean z over the **held-out** targets of
`diffcore.testing.suite` ({', '.join(suite.HELD_OUT)}) and {len(args.seeds)} noise seeds, n = {N}: z is the
energy distance to a fresh target sample in units of the true-vs-true spread (z <= ~2:
indistinguishable from the target). diffcore's column is `sampler="auto"`: the sampler and
spacing (and options, e.g. `order=3`) chosen per (schedule, NFE) on the **tuning** targets
({', '.join(suite.TUNING)}) by `python benchmarks/frontier.py matrix` then `tune`
(diffcore/math/sampling/recommended.py; the matrix: about 33 min for every budget, three processes,
and 20 min for the budgets 4-10 with the tuned grids; spacing "tuned" = a grid of its own searched on
the tuning targets, docs/theory.md section 10). Each diffusers
scheduler runs at the spacing that is best for it *on these held-out targets* (in brackets), an
advantage the peer gets and diffcore does not. On flow the peers are diffusers' flow-matching
schedulers (FlowMatchEuler/Heun, and DPM++/UniPC/DEIS with `use_flow_sigmas`), each at its best
time shift (SD3's sigma' = k sigma / (1 + (k - 1) sigma), k = 1 or 3, in brackets). "div.":
non-finite or too few evaluations for one step.

"""
    plot(rows)
    return text + "\n".join(head + body) + f"\n\n![held-out z against NFE](img/{PLOT.name})\n"


PLOT = ROOT / "docs" / "img" / "frontier_heldout.png"


def plot(rows, path: Path = PLOT) -> None:
    """z against NFE per schedule: diffcore's `auto` and each diffusers scheduler at its best
    spacing (symlog axis: linear up to 2, the target's noise level, logarithmic above)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    names = [s for s in ("linear", "cosine", "flow") if any(r[0] == s for r in rows)]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), sharey=True)
    for ax, sname in zip(axes if len(names) > 1 else [axes], names):
        mine = sorted((r for r in rows if r[0] == sname), key=lambda r: r[1])
        nfes = [r[1] for r in mine]
        for i, peer in enumerate(PEERS):  # one colour per scheduler in every panel
            zs = [r[5][peer][0] if peer in r[5] and math.isfinite(r[5][peer][0]) else float("nan") for r in mine]
            if any(math.isfinite(z) for z in zs):
                ax.plot(nfes, zs, "-", lw=1.1, alpha=0.7, color=f"C{i}", label=f"diffusers {peer}")
        ax.plot(nfes, [r[4] for r in mine], "k-o", lw=2.2, ms=4, label="diffcore auto")
        ax.axhline(2, color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=2)
        ax.set_xticks(nfes, [str(n) for n in nfes])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_title(sname)
        ax.set_xlabel("model evaluations (NFE)")
    (axes[0] if len(names) > 1 else axes).set_ylabel("z (held-out mean; <= 2: at the target)")
    (axes[0] if len(names) > 1 else axes).legend(fontsize=7, loc="upper right")  # the panel with every scheduler
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _verdict(ours: float, theirs: float, seeds: int) -> str:
    """'tie' where both are at the target (z <= 2) or the gap is within two standard errors of
    a mean z over the held-out runs (z has about unit variance at the target)."""
    se = 1 / math.sqrt(len(suite.HELD_OUT) * seeds)
    if (ours <= 2 and theirs <= 2) or abs(ours - theirs) < 2 * se:
        return "tie"
    return "diffcore ahead" if ours < theirs else "diffusers ahead"


def from_json(args) -> None:
    """Rewrite the markdown section from a saved report (no sampling)."""
    rows = [r for path in args.json for r in json.loads(Path(path).read_text())]
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
    p.add_argument("what", choices=["matrix", "tune", "report", "markdown"])
    p.add_argument("--elapsed", type=float, default=0.0, help="markdown: the report's run time in seconds")
    p.add_argument("--reuse-peers", default=None, help="report: take the diffusers columns from this earlier report's JSON")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--nfes", type=int, nargs="+", default=list(NFES))
    p.add_argument("--schedules", nargs="+", default=["linear", "cosine", "flow"])
    p.add_argument("--json", nargs="+", default=["/tmp/frontier_report.json"],
                   help="report: the file written; markdown: the files read (e.g. one per schedule, run in parallel)")
    p.add_argument("--add", action="store_true", help="matrix: keep the file's candidates, compute the missing ones")
    p.add_argument("--spacings", nargs="+", default=None, help="matrix: only these spacings")
    p.add_argument("--criterion", choices=list(CRITERIA), default=None,
                   help="tune: sum the targets' z up this way instead of the leave-one-target-out choice (e.g. to keep the "
                        "criterion of the rows a partial matrix leaves as they are)")
    p.add_argument("--no-tuned", action="store_true", help="matrix: skip the tuned grids (TUNED_SAMPLERS at TUNED_NFES)")
    p.add_argument("--matrix", nargs="+", default=["/tmp/frontier_matrix.json"], help="matrix: the file written; tune: the files read")
    p.add_argument("--out", default=None, help="markdown file whose held-out section is (re)written")
    a = p.parse_args()
    torch.set_num_threads(1)
    {"matrix": matrix, "tune": tune, "report": report, "markdown": from_json}[a.what](a)
    sys.exit(0)
