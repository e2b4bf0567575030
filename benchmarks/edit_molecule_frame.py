"""How the EGNN's x0 prediction is put into the kept atoms' frame when editing molecules: the
tuning table of docs/domains/molecules.md, "Editing" (chosen on *training* molecules; the
held-out figures come from ``benchmarks/edit_molecule.py``).

    OMP_NUM_THREADS=1 python benchmarks/edit_molecule_frame.py --run RUN --core ring \\
        --variant rigid --tau 1.0 [--molecules 120] [--steps 50] [--num 3]

``--variant``: ``centred`` (x0_hat left on the input's centroid), ``transl`` (translated
towards the kept atoms' centroid by w), ``rigid`` (moved by w towards its Kabsch fit onto the
kept atoms: :func:`diffcore_molecule.backbone.anchor`, the default), with
``w = tau^2 / (tau^2 + e^2)`` (``--tau 1e9``: undamped). Molecules are taken evenly along the
run's train split; the cores are those of ``edit_molecule.py``; DDPM with ``--steps`` steps, no
RePaint, seed 0. Prints the fraction of edits whose perceived bonds are the molecule's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import diffcore
from diffcore.platform import config as cfgmod
from diffcore.platform import runs
from diffcore_molecule import edit as E
from diffcore_molecule.backbone import anchor
from diffcore_molecule.metrics import connectivity_ok

sys.path.insert(0, str(Path(__file__).parent))
import edit_molecule as B  # noqa: E402


def framed(net, cond: dict, variant: str, tau: float):
    """The network with the edit keys taken out of ``cond`` and the frame handled by ``variant``."""
    bare = {k: v for k, v in cond.items() if k not in ("fixed", "known")}
    fixed, known, mask = cond["fixed"], cond["known"], cond["atom_mask"]

    def model(x, t):
        out = net(x, t, bare)
        if variant == "centred":
            return out
        if variant == "rigid":
            return anchor(out, mask, fixed, known, tau)
        w = (fixed * mask)[..., None]
        nf = w.sum(1, keepdim=True).clamp(min=1.0)
        c_out, c_known = (out * w).sum(1, keepdim=True) / nf, (known * w).sum(1, keepdim=True) / nf
        e2 = (((out - c_out) - (known - c_known)).pow(2) * w).sum((1, 2), keepdim=True) / nf
        return (out + tau**2 / (tau**2 + e2) * (c_known - c_out)) * mask[..., None]

    return model


def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--core", choices=("ring", "half"), default="ring")
    ap.add_argument("--variant", choices=("centred", "transl", "rigid"), default="rigid")
    ap.add_argument("--tau", type=float, default=1.0)
    ap.add_argument("--molecules", type=int, default=120)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--num", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    run = runs.load_run(args.run)
    dom = run.domain
    dom.setup()  # the train split (a loaded run only restores the domain)
    plan = cfgmod.sampling_plan(run.config, key="cli", steps=args.steps)
    idx = dom.train_idx[:: max(1, len(dom.train_idx) // args.molecules)][: args.molecules]
    pick = {"ring": B.ring_core, "half": B.half_core}[args.core]
    edits = [E.EditInput(g, g.coords[0].double().numpy(), pick(g.mol), g.name)
             for g in (dom.graphs[i] for i in idx) if pick(g.mol)]
    t0, results = time.time(), []
    for b in E.batches_of(dom, edits, args.num, 128):
        g = torch.Generator().manual_seed(0)
        known, keep = b["known"], b["keep"]
        x = diffcore.edit(plan, framed(run.net, b["cond"], args.variant, args.tau), dom.noise(known, b, generator=g),
                          known=known, keep=keep, generator=g, noise_fn=lambda z, b=b: dom.noise(z, b, generator=g))
        results.append((x * b["mask"], b))
    ok = [connectivity_ok(e.graph.mol, c) for e, confs in E.collect(results) for c, _, _ in confs]
    print(f"{args.variant} tau {args.tau:g} {args.core}: connectivity {np.mean(ok):.3f} over {len(ok)} edits, "
          f"{time.time() - t0:.0f} s", flush=True)
    return float(np.mean(ok))


if __name__ == "__main__":
    main()
