"""DPM-Solver++ SDE samplers at low NFE: the largest z over three tuning targets (seed 1), beside
the ODE solver; `python benchmarks/sde_low_nfe.py` (about 3 min). Figures in docs/benchmarks.md."""
import sys, math, torch
sys.path.insert(0, "benchmarks")
torch.set_num_threads(1)
import frontier as F
from diffcore.math import schedules
for sched in ["linear", "cosine", "flow"]:
    s = schedules.get(sched)
    for sampler in ["dpm-solver++", "dpm-solver++2m-sde", "dpm-solver++3m-sde"]:
        row = []
        for nfe in [4, 5, 6, 8, 10, 20]:
            zs = [F.z_ours(t, s, sampler, None, nfe, 1) for t in ["mixture-2d-3", "unbalanced-8d-3", "aniso-16d-16"]]
            row.append(max(zs))
        print(sched, sampler, " ".join(f"{z:9.1f}" for z in row), flush=True)
