"""Choose the molecule-coords sampling defaults on the TUNING molecules, never on the test set.

    OMP_NUM_THREADS=1 python benchmarks/molecule_sampler_tuning.py --run RUN \
        --grid euler-maruyama:20:0.6:100 euler-maruyama:20:0.6:100:mmff --molecules 40 --seeds 0 1

The tuning molecules are the run's ``val_fraction`` split of its training source with at least
``--min-heavy`` heavy atoms (drug-sized molecules never trained on, distinct from the 40 test ligands that ``diffcore evaluate`` and
benchmarks/molecules_vs_etkdg.py report on). For each ``SAMPLER:STEPS`` of the grid and each
seed, ``eval_factor`` x (references) conformers per molecule are generated and scored as
``diffcore evaluate`` scores them (COV-R / AMR-R / COV-P / AMR-P at the run's delta); ETKDG with
the same K, without and with MMFF94, are the reference rows. Prints a markdown table (mean over seeds, and the spread).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from diffcore.platform import runs  # noqa: E402
from diffcore_molecule import metrics as M  # noqa: E402

KEYS = ("cov_r", "amr_r", "cov_p", "amr_p", "clashes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--grid", nargs="+", default=["euler-maruyama:20", "ddim:20", "dpm-solver++:10"],
                    help="SAMPLER:STEPS[:INIT_STRENGTH[:RELAX_STEPS[:LOCAL[:min|nomin[:POOL]]]]] (init strength < 1: start "
                         "from the start conformer's torsions, SDEdit; relax steps: torsion steps against steric overlap after "
                         "sampling; LOCAL: data.sampling_local_structure; min: data.sampling_minimise, MMFF94 on the samples; "
                         "POOL: data.sampling_pool. Fields left out are strength 1, relax 0, etkdg, nomin and pool 1, not the "
                         "recipe's defaults)")
    ap.add_argument("--molecules", type=int, default=40)
    ap.add_argument("--min-heavy", type=int, default=17, help="tune on drug-sized molecules: at least this many heavy atoms "
                    "(the test ligands have 18-35)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    for item in a.grid:  # before the long baseline rows
        if len(item.split(":")) > 5 and item.split(":")[5] not in ("min", "nomin"):
            ap.error(f"--grid {item}: the sixth field is 'min' (data.sampling_minimise) or 'nomin'")
    torch.set_num_threads(a.threads)
    run = runs.load_run(a.run)
    dom = run.domain
    dom.setup()
    idx = dom.tune_idx or dom.val_idx
    graphs = [g for g in (dom.graphs[i] for i in idx) if g.mol.GetNumHeavyAtoms() >= a.min_heavy][: a.molecules]
    o = dom.options
    counts = [o.eval_factor * len(g.coords) for g in graphs]
    print(f"{len(graphs)} tuning molecules of >= {a.min_heavy} heavy atoms ({'split of the training source' if dom.tune_idx else 'held-out split'}), "
          f"{sum(counts)} conformers per setting, delta {o.delta}", file=sys.stderr)
    rows = {}
    for item in ["etkdg", "etkdg+mmff"] + a.grid:
        per_seed = []
        for seed in a.seeds:
            torch.manual_seed(seed)
            t0 = time.perf_counter()
            if item in ("etkdg", "etkdg+mmff"):
                scores = [M.score_baseline(g.mol, g.coords.double().numpy(), k, 10_000 + seed + i, item == "etkdg+mmff", o.delta)
                          for i, (g, k) in enumerate(zip(graphs, counts))]
            else:
                sampler, steps, *rest = item.split(":")
                dom.options = type(dom.options).model_validate({  # validated: a misspelt LOCAL is an error
                    **dom.options.model_dump(), "init_strength": float(rest[0]) if rest else 1.0,
                    "relax_steps": int(rest[1]) if len(rest) > 1 else 0,
                    "sampling_local_structure": rest[2] if len(rest) > 2 else "etkdg",
                    "sampling_minimise": len(rest) > 3 and rest[3] == "min",
                    "sampling_pool": int(rest[4]) if len(rest) > 4 else 1})
                fn = runs.sample_fn(run, sampler=sampler, steps=int(steps))
                gens = M.generate(dom, graphs, counts, fn)
                scores = [M.score(g.mol, g.coords.double().numpy(), np.stack(x), o.delta) for g, x in zip(graphs, gens)]
            scores = [s for s in scores if s is not None]
            per_seed.append({k: float(np.mean([s[k] for s in scores])) for k in KEYS} | {"s": time.perf_counter() - t0})
            print(item, seed, per_seed[-1], file=sys.stderr, flush=True)
        rows[item] = per_seed
    print("| setting | " + " | ".join(KEYS) + " | wall s |")
    print("|---|" + "---|" * (len(KEYS) + 1))
    for item, per_seed in rows.items():
        cells = []
        for k in KEYS + ("s",):
            v = [r[k] for r in per_seed]
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            cells.append(f"{statistics.mean(v):.3f} ± {sd:.3f}" if k != "s" else f"{statistics.mean(v):.0f}")
        print(f"| {item} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
