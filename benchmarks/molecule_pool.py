"""Does a trained molecule-coords model know which conformers are likely? Selection from a pool.

For each molecule (K = ``eval_factor`` x its references), a pool of ``--over`` x K ETKDG v3 +
MMFF94 conformers is made (seeded), and K of them are chosen four ways, beside a row of K
conformers of their own; each is scored
against the references as ``diffcore evaluate`` scores (COV-R / AMR-R / COV-P / AMR-P at the
run's delta):

``etkdg+mmff``            K conformers of their own (as the ETKDG + MMFF94 row of ``diffcore evaluate``,
                          another seed; a conformer whose stereo MMFF94 changed is dropped);
``pool: diverse``         the pool in a random order, a conformer kept unless within ``--prune``
                          Å heavy-atom RMSD of one kept (then filled up to K in the same order);
``pool: energy, diverse`` the same in order of MMFF94 energy: the recipe of the references
                          themselves (druglike.search) with another seed, close to an oracle;
``pool: model``           in order of the model's denoising bound (below), without pruning;
``pool: model, diverse``  the same, pruned.

The model's bound for a conformer x0 with torsions theta (its own local structure):
mean over a fixed stratified grid of ``--times`` diffusion times and ``--draws`` noise draws
(the same for every conformer of a molecule) of sum_torsions (eps_hat(theta + sigma eps, t) -
E[eps | theta + sigma eps mod 2 pi])^2: for the VE schedule with t uniform this is, up to
constants that are the same for every conformer of a molecule, the negative evidence lower
bound of the score-matching objective (for the geometric VE schedule, sigma(t) = sigma_min
(sigma_max / sigma_min)^t, whose g^2 / sigma^2 is constant in t: the recipe's) (Song et al. 2021, "Maximum likelihood training of
score-based diffusion models"): lower = more likely under the model. If the model has learned
which torsion basins the references occupy, ``pool: model, diverse`` beats ``pool: diverse``.

    OMP_NUM_THREADS=1 python benchmarks/molecule_pool.py --run RUN --molecules test --seeds 0 1 2
    OMP_NUM_THREADS=1 python benchmarks/molecule_pool.py --run RUN --molecules tune --seeds 0 1 2

``test``: the 40 held-out test ligands (also for a run trained on ``data.smiles``); ``tune``: its tuning molecules (the split of the training
source, never trained on) with at least 17 heavy atoms.

``ind_rmsd``, ``ind_1A`` (test molecules only): 13 of the test ligands have a 3D structure in the
file they come from that no ETKDG or MMFF94 made (Fastcluster/testdata/cdk2.sdf: OPLS_2005
minimised models; FreeWilson/data/cmet_ligands.sdf: the series' modelled, partly redocked,
poses), with the same stereo as the test molecule: the smallest heavy-atom RMSD (symmetry-aware)
of the K conformers to it, and the fraction of those molecules where it is below 1 Å. A
reference from another process: the references' own recipe has no head start there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from diffcore.math import torus  # noqa: E402
from diffcore.platform import runs  # noqa: E402
from diffcore_molecule import druglike as G  # noqa: E402
from diffcore_molecule import metrics as M  # noqa: E402
from diffcore_molecule.torsion_domain import _sampling_cond, clash_radii, collate_torsions, heavy_first, torsions_of  # noqa: E402
from diffcore_molecule.torsions import dihedrals  # noqa: E402
from diffcore_molecule.writer import with_conformers  # noqa: E402

ROWS = ("etkdg+mmff", "pool: diverse", "pool: energy, diverse", "pool: model", "pool: model, diverse")
KEYS = ("cov_r", "amr_r", "cov_p", "amr_p")
INDEPENDENT = (("Contrib/Fastcluster/testdata/cdk2.sdf", "cdk2-"), ("Contrib/FreeWilson/data/cmet_ligands.sdf", "cmet-"))


def independent_structures(graphs) -> dict:
    """Test molecule name -> its 3D structure from the file it comes from (module doc), where that
    structure has the test molecule's isomeric SMILES."""
    import os

    import rdkit
    from rdkit import Chem

    found = {}
    for path, prefix in INDEPENDENT:
        for m in Chem.SDMolSupplier(os.path.join(os.path.dirname(rdkit.__file__), path), removeHs=False):
            if m is not None and m.GetConformer().Is3D():
                found[prefix + m.GetProp("_Name")] = m
    out = {}
    for mg in graphs:
        m = found.get(mg.name)
        if m is not None and Chem.MolToSmiles(Chem.RemoveHs(m)) == Chem.MolToSmiles(Chem.RemoveHs(mg.mol)):
            out[mg.name] = Chem.RemoveHs(m)
    return out


def independent_rmsd(mg, ref, gens: np.ndarray) -> float:
    """Smallest heavy-atom RMSD (symmetry-aware best fit) of conformers ``gens`` of ``mg`` to ``ref``."""
    from rdkit import Chem

    probe = Chem.RemoveHs(with_conformers(mg.mol, gens), sanitize=False)
    return min(G.heavy_rmsd(probe, ref, prb_id=c.GetId()) for c in probe.GetConformers())


def model_bound(run, mg, pool: np.ndarray, times: int, draws: int, seed: int = 1234) -> np.ndarray:
    """``[len(pool)]`` the model's denoising bound of each conformer (module doc; lower = likelier)."""
    tr = torsions_of(mg)
    n, t_count = len(pool), tr.quads.shape[0]
    if t_count == 0:
        return np.zeros(n)
    batch = collate_torsions([{"cond": _sampling_cond(mg, tr, torch.as_tensor(x, dtype=torch.float32), clash_radii(mg.mol))}
                              for x in pool])
    cond, mask = batch["cond"], batch["mask"]
    theta = dihedrals(cond["pos0"], cond["quads"]) * cond["tmask"]
    eps_all = torch.randn(times, draws, t_count, generator=torch.Generator().manual_seed(seed))
    schedule, total = run.schedule(), torch.zeros(n, dtype=torch.float64)
    with torch.no_grad():
        for i in range(times):
            t = (i + 0.5) / times
            sigma = schedule.sigma(torch.tensor(t))
            for k in range(draws):
                eps = eps_all[i, k][None].expand(n, -1)
                pred = run.net(theta + sigma * eps, torch.full((n,), t), cond)
                total += ((pred - torus.wrapped_eps(eps, sigma)) ** 2 * mask).sum(1).double()
    return (total / (times * draws)).numpy()


def one_molecule(run, mg, k: int, seed: int, a, ind=None) -> dict[str, dict[str, float]] | None:
    mol, refs, delta = mg.mol, mg.coords.double().numpy(), run.domain.options.delta
    base = G.search(mol, k, seed, oversample=1, energy_window=None, prune_rms=None)
    found = G.search(mol, a.over * k, seed + 500_000, oversample=1, energy_window=None, prune_rms=None)
    if base is None or found is None:
        return None
    pool, energy = found  # lowest energy first
    bound = model_bound(run, mg, pool, a.times, a.draws)
    pool_mol = with_conformers(mol, pool)  # conformer ids 0..len(pool)-1

    def diverse(order) -> list[int]:  # the greedy pruning the sampling pool uses, topped up in order
        return G.diverse(pool_mol, [int(j) for j in order], k, a.prune, fill=True)

    rng = np.random.default_rng(seed)
    picks = {"pool: diverse": diverse(rng.permutation(len(pool))),
             "pool: energy, diverse": diverse(range(len(pool))),
             "pool: model": list(np.argsort(bound, kind="stable")[:k]),
             "pool: model, diverse": diverse(np.argsort(bound, kind="stable"))}
    out = {"etkdg+mmff": M.score(mol, refs, base[0], delta)}
    out.update({name: M.score(mol, refs, pool[idx], delta) for name, idx in picks.items()})
    if ind is not None:
        out["etkdg+mmff"]["ind_rmsd"] = independent_rmsd(mg, ind, base[0])
        for name, idx in picks.items():
            out[name]["ind_rmsd"] = independent_rmsd(mg, ind, pool[idx])
    ok = energy is not None and len(pool) > 2 and np.ptp(bound) > 0
    out["_corr_energy_bound"] = {"r": float(np.corrcoef(energy, bound)[0, 1]) if ok else float("nan")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--molecules", choices=("test", "tune"), default="test")
    ap.add_argument("--count", type=int, default=40, help="at most this many molecules")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--over", type=int, default=3, help="pool size: this many times K")
    ap.add_argument("--prune", type=float, default=0.5, help="diversity threshold, heavy-atom RMSD in Angstrom (the references': 0.5)")
    ap.add_argument("--times", type=int, default=12)
    ap.add_argument("--draws", type=int, default=4)
    ap.add_argument("--json", type=Path, help="write every molecule's scores here")
    a = ap.parse_args()
    torch.set_num_threads(1)
    run = runs.load_run(a.run)
    run.net.eval()
    dom = run.domain
    if a.molecules == "test":  # the 40 test ligands, also for a run trained on a SMILES file of its own
        graphs = dom.held_out_graphs() if dom._uses_test_set() else [heavy_first(g) for g in dom._test_graphs()]
    else:
        dom.setup()
        graphs = [g for g in (dom.graphs[i] for i in (dom.tune_idx or dom.val_idx)) if g.mol.GetNumHeavyAtoms() >= 17]
    graphs = graphs[: a.count]
    ind = independent_structures(graphs) if a.molecules == "test" else {}
    keys = KEYS + (("ind_rmsd", "ind_1A") if ind else ())
    per_seed: dict[str, list[dict]] = {r: [] for r in ROWS}
    dump = {}
    for seed in a.seeds:
        start, rows = time.perf_counter(), []
        for i, mg in enumerate(graphs):
            got = one_molecule(run, mg, dom.options.eval_factor * len(mg.coords), 100_000 * seed + 7_919 * i + 11, a,
                               ind.get(mg.name))
            if got is not None:
                rows.append(got)
                dump[f"{seed}:{mg.name}"] = got
        for r in ROWS:
            per_seed[r].append({k: float(np.mean([row[r][k] for row in rows])) for k in KEYS})
            if ind:
                v = [row[r]["ind_rmsd"] for row in rows if "ind_rmsd" in row[r]]
                per_seed[r][-1].update(ind_rmsd=float(np.mean(v)), ind_1A=float(np.mean(np.array(v) < 1.0)))
        corr = [row["_corr_energy_bound"]["r"] for row in rows]
        print(f"seed {seed}: {len(rows)} molecules, {time.perf_counter() - start:.0f} s; median corr(energy, model bound) "
              f"{np.nanmedian(corr):.2f}", file=sys.stderr, flush=True)
    print(f"| {a.molecules} molecules ({len(graphs)}; {len(ind)} with an independent structure), pool {a.over} x K | "
          + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for r in ROWS:
        cells = []
        for k in keys:
            v = [s[k] for s in per_seed[r]]
            cells.append(f"{statistics.mean(v):.3f} ± {statistics.stdev(v):.3f}" if len(v) > 1 else f"{v[0]:.3f}")
        print(f"| {r} | " + " | ".join(cells) + " |")
    if a.json:
        a.json.write_text(json.dumps(dump, indent=1))


if __name__ == "__main__":
    main()
