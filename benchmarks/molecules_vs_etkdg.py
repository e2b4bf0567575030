"""A trained molecule run against rdkit's ETKDG v3 and ETKDG v3 + MMFF94, over several seeds.

For each seed, ``diffcore evaluate --run RUN --seed S`` (the installed CLI, in a subprocess
with ``OMP_NUM_THREADS`` = ``--threads``) scores the model and both baselines on the run's
held-out molecules with the same number of conformers per molecule (``eval_factor`` x its
references; ``plugins/diffcore_molecule/metrics.py``); the record of that seed is read back
from ``RUN/metrics.json``. The table (markdown) gives mean +- std over the seeds::

    python benchmarks/molecules_vs_etkdg.py --run runs/mol --seeds 0 1 2 [--num 512] [--steps 200]

``--etkdg-only`` scores only the baselines, in this process, without a model: on a run's
held-out molecules (``--run``), or on those of the data options given here (``--config
FILE`` and/or ``--set data.KEY=VALUE``; references cached in ``--workdir``)::

    python benchmarks/molecules_vs_etkdg.py --etkdg-only --set data.val_fraction=0.99 \\
        --set data.smiles=drugs.smi --set data.max_atoms=80 --set data.elements=[H,C,N,O,F,S,Cl] --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

COLUMNS = [("cov_r", "COV-R", 2), ("amr_r", "AMR-R (Å)", 3), ("cov_p", "COV-P", 2), ("amr_p", "AMR-P (Å)", 3),
           ("chirality", "chirality", 3), ("connectivity", "connectivity", 3), ("clashes", "clashes", 3),
           ("seconds_per_molecule", "s/molecule", 3)]
ROWS = [("", "diffcore model"), ("start_", "the model's own start conformers (paired: before the model)"),
        ("etkdg_", "rdkit ETKDG v3"), ("etkdg_mmff_", "rdkit ETKDG v3 + MMFF94")]


def cell(values: list[float], digits: int) -> str:
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if not len(v):
        return "-"
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def table(per_seed: dict[int, dict[str, float]], rows=ROWS) -> str:
    """Markdown: one row per method (mean ± std over the seeds), one column per metric."""
    head = "| | " + " | ".join(name for _, name, _ in COLUMNS) + " |"
    lines = [head, "| --- |" + " ---: |" * len(COLUMNS)]
    for prefix, name in rows:
        if not any(prefix + "cov_r" in m for m in per_seed.values()):
            continue
        cells = [cell([m.get(prefix + key) for m in per_seed.values()], d) for key, _, d in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    first = next(iter(per_seed.values()))
    seeds = ", ".join(map(str, per_seed))
    lines.append("")
    lines.append(f"{int(first.get('num_molecules', 0))} held-out molecules, {int(first.get('num_conformers', 0))} conformers "
                 f"per method, delta {first.get('delta', float('nan')):g} Å; seeds {seeds} (mean ± std).")
    return "\n".join(lines)


# ----------------------------------------------------------------------- model runs
def evaluate_seed(run: Path, seed: int, args) -> dict[str, float]:
    """``diffcore evaluate`` for one seed; its record from ``RUN/metrics.json``."""
    cmd = ["diffcore", "evaluate", "--run", str(run), "--seed", str(seed), "--threads", str(args.threads)]
    for flag, value in (("--num", args.num), ("--steps", args.steps), ("--sampler", args.sampler),
                        ("--batch-size", args.batch_size), ("--accelerator", args.accelerator)):
        if value is not None:
            cmd += [flag, str(value)]
    cmd += args.evaluate_arg
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    start = time.perf_counter()
    if subprocess.run(cmd, env=env).returncode != 0:
        raise SystemExit(f"diffcore evaluate failed for seed {seed} (its message is above)")
    print(f"  seed {seed}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    doc = json.loads((run / "metrics.json").read_text())
    latest = {k: v for k, v in doc.items() if k != "records"}  # the flat view: the evaluation just made
    if (latest.get("evaluated_with") or {}).get("seed") != seed:
        matching = [r for r in doc.get("records", []) if (r.get("evaluated_with") or {}).get("seed") == seed]
        if not matching:
            raise SystemExit(f"{run}/metrics.json has no record of seed {seed}")
        latest = matching[-1]["metrics"]
    return {k: float(v) for k, v in latest.items() if isinstance(v, (int, float))}


# -------------------------------------------------------------------- ETKDG only
def held_out(args):
    """The molecule domain of the ``data:`` section of ``--run``'s config (or of ``--config``,
    or the defaults), with the ``--set data.KEY=VALUE`` overrides, and the held-out molecules
    that ``diffcore evaluate --num`` would score. Only the data section is read, so a run whose
    diffusion or backbone settings no longer resolve can still be scored."""
    from diffcore.platform.layers import merge, sets_to_dict
    from diffcore.platform.yamlfile import load_yaml
    from diffcore.platform.registry import get_registry

    source = args.run / "config.yaml" if args.run is not None else args.config
    raw = load_yaml(source) if source is not None else {}
    data = merge(raw.get("data") or {}, sets_to_dict(args.set).get("data") or {})
    workdir = args.run / "cache" if args.run is not None else args.workdir
    registry = get_registry()  # the run's own domain (molecule-torsion or molecule) and its data options
    domain_cls = registry.domain(registry.recipe(raw.get("plugin") or "molecule-coords").domain)
    domain = domain_cls(domain_cls.Options.model_validate(data), workdir=workdir)
    domain.setup()
    graphs, total, num = [], 0, args.num or 512
    for i in domain.val_idx:
        g = domain.graphs[i]
        need = domain.options.eval_factor * len(g.coords)
        if graphs and total + need > num:
            break
        graphs.append(g)
        total += need
    return domain, graphs


def etkdg_only(args) -> dict[int, dict[str, float]]:
    import torch
    from diffcore_molecule import metrics as M

    torch.set_num_threads(args.threads)
    domain, graphs = held_out(args)
    o = domain.options
    counts = [o.eval_factor * len(g.coords) for g in graphs]
    out = {}
    for seed in args.seeds:
        torch.manual_seed(seed)  # as diffcore evaluate --seed: the baselines' seed follows it
        start = time.perf_counter()
        summary, rows = M.evaluate_baselines(graphs, counts, o.delta, M.baseline_seed(o.seed))
        print(f"  seed {seed}: {len(graphs)} molecules in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        out[seed] = {"num_molecules": float(len(graphs)), "num_conformers": float(sum(counts)), "delta": float(o.delta), **summary}
        if args.out is not None:
            M.write_table([{"name": g.name, "smiles": g.smiles, "atoms": g.num_atoms, "references": len(g.coords), **r}
                           for g, r in zip(graphs, rows)], args.out.with_name(f"{args.out.stem}-seed{seed}.csv"))
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, help="a trained molecule run (diffcore train --out)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--num", type=int, help="conformers in all per method (diffcore evaluate --num; default 512)")
    p.add_argument("--steps", type=int, help="sampling steps (default: the run's)")
    p.add_argument("--sampler", help="sampler (default: the run's)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--accelerator", help="cpu, gpu or auto (diffcore evaluate --accelerator)")
    p.add_argument("--threads", type=int, default=1, help="torch / OpenMP threads (default 1)")
    p.add_argument("--evaluate-arg", action="append", default=[], help="one more argument for diffcore evaluate (repeatable)")
    p.add_argument("--etkdg-only", action="store_true", help="score only ETKDG and ETKDG + MMFF, without a model")
    p.add_argument("--config", type=Path, help="--etkdg-only without --run: a config file (its data: section)")
    p.add_argument("--set", action="append", default=[], help="--etkdg-only: a data option, data.KEY=VALUE (repeatable)")
    p.add_argument("--workdir", type=Path, default=Path(".cache/molecules_vs_etkdg"), help="--etkdg-only without --run: the reference cache")
    p.add_argument("--out", type=Path, help="write the markdown table here (and the per-seed metrics beside it, .json)")
    args = p.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if args.run is None and not args.etkdg_only:
        p.error("--run is required (or --etkdg-only)")
    if args.etkdg_only:
        per_seed = etkdg_only(args)
        text = table(per_seed, ROWS[1:])
    else:
        per_seed = {s: evaluate_seed(args.run, s, args) for s in args.seeds}
        text = table(per_seed)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        args.out.with_suffix(".json").write_text(json.dumps(per_seed, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
