"""The held-out molecule benchmark against other references: GFN2-xTB (another energy surface), or a thorough MMFF94 search.

The test references of ``diffcore evaluate`` (and ``benchmarks/molecules_vs_etkdg.py``) are made
by the recipe the default sampling pool also runs: ETKDG v3 embeddings, MMFF94 minima, an
MMFF94 energy window, 0.5 Å pruning. ETKDG + MMFF94 is close to an oracle there, and a pool
ranked by MMFF94 energy may win partly by echoing how the references were made. Here the same
40 test ligands get references that no part of the pipeline computes: ``--embeddings`` ETKDG v3
embeddings (a seed of their own) each optimised with GFN2-xTB (tblite, ALPB water, L-BFGS to a
gradient of ``--gtol`` Eh/bohr, at most ``--max-iter`` iterations) from the raw embedding,
conformers whose bonds or specified stereo changed (or whose xTB calculation failed) dropped, those more than ``--window`` kcal/mol (xTB) above the lowest dropped,
then pruned at 0.5 Å heavy-atom RMSD in xTB energy order, at most ``data.conformers`` (5) kept.
The run is then scored on them as ``diffcore evaluate`` scores (K = ``eval_factor`` x the
references, delta, COV/AMR, the paired start row, ETKDG v3 and ETKDG v3 + MMFF94 with the same
K), without touching ``RUN/metrics.json``; then the same rows over the ionised molecules
(:func:`ionised`) and over the others.

    pip install tblite                                   # GFN2-xTB; not a diffcore dependency
    OMP_NUM_THREADS=1 python benchmarks/molecules_xtb.py build --run RUN --processes 2
    OMP_NUM_THREADS=1 python benchmarks/molecules_xtb.py score --run RUN --seeds 0 1 2 [--set data.sampling_pool=1]

``build`` caches the references in ``RUN/cache/xtb-test-references-*.sdf`` (with the
defaults: 15 embeddings per molecule, 600 xTB optimisations); ``score`` reads them. With
``--molecules tune`` (both steps), the same for the first ``--count`` tuning molecules of 17 or
more heavy atoms (never trained on): choose a setting there, report it on the test ligands.

``--level mmff`` (both steps) makes the references with MMFF94 instead, by a *thorough* search:
``--embeddings`` ETKDG v3 embeddings (a seed of their own; 300 unless given), each minimised
with MMFF94 (vacuum), the window and the pruning as above, at most ``--keep`` kept (default
``data.conformers``), where ``diffcore evaluate``'s references come from 3 x 5 embeddings. With
``--embeddings 300 --keep 20`` a flexible test ligand keeps up to 20 distinct minima within
the window, where ``evaluate``'s references hold 1 to 5 (the table in docs/domains/molecules.md)::

    OMP_NUM_THREADS=1 python benchmarks/molecules_xtb.py build --level mmff --embeddings 300 --keep 20 --run RUN
    OMP_NUM_THREADS=1 python benchmarks/molecules_xtb.py score --level mmff --embeddings 300 --keep 20 --run RUN --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import statistics
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

HARTREE_KCAL = 627.509474
BOHR = 0.529177210903  # Angstrom
SEED = 7_000_000  # the embeddings' seeds: SEED + molecule index (none of the pipeline's or the references')
ROWS = (("model", ""), ("its starts (paired)", "start_"), ("ETKDG v3, same K", "etkdg_"), ("ETKDG v3 + MMFF94, same K", "etkdg_mmff_"))
KEYS = ("cov_r", "amr_r", "cov_p", "amr_p")
LEVELS = {"xtb": "GFN2-xTB", "mmff": "thorough MMFF94"}


def optimise(z: np.ndarray, pos: np.ndarray, charge: int, gtol: float, max_iter: int) -> tuple[np.ndarray, float, bool]:
    """``pos`` (Angstrom) at a GFN2-xTB minimum in ALPB water, its energy (kcal/mol), and
    whether L-BFGS converged within ``max_iter`` iterations."""
    from scipy.optimize import minimize
    from tblite.interface import Calculator

    calc = Calculator("GFN2-xTB", z, pos / BOHR, charge=float(charge))
    calc.set("verbosity", 0)
    calc.add("alpb-solvation", "water")

    def f(x):
        calc.update(x.reshape(-1, 3))
        res = calc.singlepoint()
        return res.get("energy"), res.get("gradient").ravel()

    out = minimize(f, (pos / BOHR).ravel(), jac=True, method="L-BFGS-B", options={"maxiter": max_iter, "gtol": gtol})
    return out.x.reshape(-1, 3) * BOHR, float(out.fun) * HARTREE_KCAL, bool(out.success)


def mmff_references(name: str, mol, index: int, a) -> tuple[np.ndarray, np.ndarray, dict] | None:
    """One molecule's thorough MMFF94 reference ensemble (``--level mmff``, module doc): the
    search of ``diffcore evaluate``'s references (:func:`diffcore_molecule.druglike.search`) with
    ``--embeddings`` embeddings, at most ``--keep`` kept; ``None`` when ETKDG cannot embed it."""
    from diffcore_molecule import druglike as G

    start = time.perf_counter()
    found = G.search(mol, a["embeddings"], SEED + index, oversample=1, energy_window=a["window"], prune_rms=a["prune"],
                     threads=1, what=name)
    if found is None:
        return None
    coords, energies = found  # every distinct minimum within the window that kept its stereo, lowest first
    keep = a["conformers"]
    info = {"embedded": a["embeddings"], "distinct_in_window": len(energies), "seconds": time.perf_counter() - start}
    return coords[:keep] - coords[:keep].mean(axis=1, keepdims=True), energies[:keep], info


def references(job) -> tuple[str, bytes, np.ndarray, np.ndarray, dict] | None:
    """One molecule's reference ensemble (module doc: xTB, or with ``--level mmff`` a thorough
    MMFF94 search); ``None`` when none survives."""
    from rdkit import Chem

    from diffcore_molecule import druglike as G
    from diffcore_molecule import metrics as M

    name, binary, index, a = job
    mol = Chem.Mol(binary)
    if a["level"] == "mmff":
        got = mmff_references(name, mol, index, a)
        return None if got is None else (name, binary, *got)
    m = Chem.Mol(mol)
    m.RemoveAllConformers()
    want = G._stereo(m)
    start = time.perf_counter()
    ids = G.embed_conformers(m, a["embeddings"], SEED + index, what=name)
    z = np.array([atom.GetAtomicNum() for atom in m.GetAtoms()])
    charge = Chem.GetFormalCharge(m)
    energies, dropped, failed, unconverged = {}, 0, 0, 0
    for cid in ids:
        try:
            pos, energy, converged = optimise(z, m.GetConformer(cid).GetPositions(), charge, a["gtol"], a["max_iter"])
        except Exception as e:  # noqa: BLE001 -- tblite raises on an SCF that does not converge; that conformer only
            print(f"{name}: conformer {cid}: xTB failed ({e}); left out", file=sys.stderr, flush=True)
            failed += 1
            continue
        unconverged += not converged  # kept: at the iteration limit, close to its minimum
        conf = m.GetConformer(cid)
        for i, p in enumerate(pos):
            conf.SetAtomPosition(i, p.tolist())
        if G.keeps_stereo(m, cid, want) and M.connectivity_ok(mol, pos):
            energies[cid] = energy
        else:
            dropped += 1
    if not energies:
        return None
    order = sorted(energies, key=energies.get)
    order = [c for c in order if energies[c] <= energies[order[0]] + a["window"]]
    kept = G.diverse(m, order, a["conformers"], a["prune"])
    coords = np.stack([m.GetConformer(c).GetPositions() for c in kept])
    coords -= coords.mean(axis=1, keepdims=True)
    info = {"embedded": len(ids), "dropped": dropped, "failed": failed, "unconverged": unconverged, "in_window": len(order),
            "seconds": time.perf_counter() - start}
    return name, binary, coords, np.array([energies[c] for c in kept]), info


def cache_path(run: Path, a, domain=None) -> Path:
    """Where ``build`` caches, and ``score`` reads, the references of these settings; with the
    run's ``domain``, ``a["conformers"]`` is set first (``--keep``, else its data.conformers)."""
    if domain is not None:
        a["conformers"] = a.get("keep") or domain.options.conformers
    names = ("embeddings", "gtol", "max_iter", "window", "prune", "conformers") if a["level"] == "xtb" else \
        ("embeddings", "window", "prune", "conformers")
    key = json.dumps({k: a[k] for k in names}, sort_keys=True)
    stem = "test" if a["molecules"] == "test" else f"{a['molecules']}{a['count']}"
    return run / "cache" / f"{a['level']}-{stem}-references-{hashlib.sha256(key.encode()).hexdigest()[:12]}.sdf"


#: a basic aliphatic amine (not an amide, aniline, sulfonamide, enamine, amidine, nitrile or N-heteroatom)
AMINE = "[NX3;H0,H1,H2;+0;!$(N[a]);!$(N[!#6;!#1]);!$(NC=[!#6]);!$(NC=C);!$(NC#*)]"
ACID = "[CX3](=O)[OX2H1]"  #: a carboxylic acid


def charged(domain, count: int) -> list:
    """``charged``: the first ``count`` molecules of the training source (17 to data.max_heavy
    heavy atoms, in its order) that the run never saw (neither trained nor tuned on), carry no
    formal charge there, and have a basic aliphatic amine or a carboxylic acid, ionised as at
    pH 7 (the first such amine protonated, the first acid deprotonated), as ZINC and ChEMBL give
    the ionic test ligands: a tuning set of ions, which the tuning split hardly has."""
    from rdkit import Chem

    from diffcore_molecule import data as D
    from diffcore_molecule import druglike as G
    from diffcore_molecule.torsion_domain import heavy_first

    domain.setup()
    seen = {g.smiles for g in domain.graphs}
    amine, acid = Chem.MolFromSmarts(AMINE), Chem.MolFromSmarts(ACID)
    out = []
    for name, mol in G.training_molecules(domain.options.max_heavy, 17):
        if len(out) == count:
            break
        m = Chem.RWMol(Chem.RemoveHs(mol))
        hits = [(h[0], +1) for h in m.GetSubstructMatches(amine)][:1] + [(h[2], -1) for h in m.GetSubstructMatches(acid)][:1]
        if not hits or any(at.GetFormalCharge() for at in m.GetAtoms()) or D._canonical(mol) in seen:
            continue
        for idx, q in hits:
            atom = m.GetAtomWithIdx(idx)
            atom.SetFormalCharge(q)
            atom.SetNumExplicitHs(0)
            atom.SetNoImplicit(False)
        try:
            out.append(heavy_first(D.to_graph(name, D.from_smiles(Chem.MolToSmiles(m), domain.rules, name), domain.rules)))
        except D.MoleculeError:  # e.g. more atoms than data.max_atoms once charged: left out
            continue
    return out


def molecules(domain, a) -> list:
    """``test``: the 40 test ligands, heavy atoms first, as the run samples them; ``tune``: the
    first ``--count`` tuning molecules (the split of the training source, never trained on) with
    at least 17 heavy atoms, as ``benchmarks/molecule_pool.py`` takes them: for choosing;
    ``charged``: :func:`charged`, for choosing too."""
    if a["molecules"] == "test":
        return domain.held_out_graphs()
    if a["molecules"] == "charged":
        return charged(domain, a["count"])
    domain.setup()
    return [g for g in (domain.graphs[i] for i in (domain.tune_idx or domain.val_idx)) if g.mol.GetNumHeavyAtoms() >= 17][: a["count"]]


def build(args) -> None:
    from diffcore.platform import runs
    from diffcore_molecule import druglike as G

    a = vars(args)
    domain = runs.load_run(args.run).domain
    graphs = molecules(domain, a)
    if a["level"] == "xtb" and not domain.options.hydrogens:
        raise SystemExit(f"{args.run} was trained without hydrogens (data.hydrogens: false); xTB needs every atom")
    path = cache_path(args.run, a, domain)
    jobs = [(g.name, g.mol.ToBinary(), i, a) for i, g in enumerate(graphs)]
    start, rows, infos = time.perf_counter(), [], {}
    with Pool(args.processes) as pool:
        for k, got in enumerate(pool.imap(references, jobs)):
            if got is None:
                print(f"{jobs[k][0]}: no {LEVELS[a['level']]} reference kept", file=sys.stderr, flush=True)
                continue
            name, binary, coords, energies, info = got
            from rdkit import Chem

            rows.append((name, Chem.Mol(binary), coords, energies))
            infos[name] = info
            print(f"[{k + 1}/{len(jobs)}] {name}: {len(coords)} references ({info}) {time.perf_counter() - start:.0f} s",
                  file=sys.stderr, flush=True)
    G.write_ensembles(path, rows)
    path.with_suffix(".json").write_text(json.dumps(infos, indent=1))
    print(f"wrote {path}: {len(rows)} molecules, {sum(len(r[2]) for r in rows)} references, "
          f"{time.perf_counter() - start:.0f} s", file=sys.stderr)


def ionised(mol) -> bool:
    """Whether ``mol`` has an ionised group: a formally charged atom with no oppositely charged
    neighbour (an ammonium, a carboxylate, a zwitterion's groups; not a nitro group or N-oxide)."""
    return any(a.GetFormalCharge() and not any(n.GetFormalCharge() * a.GetFormalCharge() < 0 for n in a.GetNeighbors())
               for a in mol.GetAtoms())


def by_charge(table: Path, ions: set[str]) -> dict[str, float]:
    """The mean of each row's COV/AMR over the molecules ``ions`` names (``ionised_*``),
    and over the others (``neutral_*``), from ``evaluate``'s per-molecule table (``nan`` cells left out)."""
    import csv

    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    out = {}
    for group, members in (("ionised", [r for r in rows if r["name"] in ions]),
                           ("neutral", [r for r in rows if r["name"] not in ions])):
        for _, prefix in ROWS:
            for k in KEYS:
                v = [float(r[prefix + k]) for r in members if r.get(prefix + k) not in (None, "", "nan")]
                if v:
                    out[f"{group}_{prefix}{k}"] = statistics.mean(v)
    return out


def score(args) -> None:
    import torch

    from diffcore.platform import config as cfgmod
    from diffcore.platform import generation, runs
    from diffcore_molecule import data as D
    from diffcore_molecule import druglike as G
    from diffcore_molecule.metrics import evaluate_model

    torch.set_num_threads(args.threads)
    a = vars(args)
    run = runs.load_run(args.run, sets=args.set)
    path = cache_path(args.run, a, run.domain)
    found = {name: (coords, energies, D._canonical(mol)) for name, mol, coords, energies in G.read_ensembles(path)} \
        if path.is_file() else {}
    if not found:
        raise SystemExit(f"no {LEVELS[a['level']]} references at {path}: run `build` first with the same settings")
    graphs = []
    for g in molecules(run.domain, a):
        if g.name in found:
            coords, energies, smiles = found[g.name]
            if smiles != g.smiles:  # the selection changed since `build`: these references are another molecule's
                raise SystemExit(f"{path}: {g.name} is {smiles} there, {g.smiles} now; run `build` again")
            graphs.append(dataclasses.replace(g, coords=torch.as_tensor(coords, dtype=torch.float32),
                                              energies=torch.as_tensor(energies, dtype=torch.float32)))
    plan = cfgmod.sampling_plan(run.config, key="cli")
    ions = {g.name for g in graphs if ionised(g.mol)}  # not `charged`: that is the tuning set's selection
    per_seed = []
    for seed in args.seeds:
        torch.manual_seed(seed)  # as diffcore evaluate --seed
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            fn = generation._evaluation_fn(run, plan, seed, generation.World())
            metrics = evaluate_model(run.domain, graphs, fn, Path(out), run.config.sampling.batch_size)
            metrics.update(by_charge(Path(out) / "molecule_metrics.csv", ions))
        per_seed.append(metrics)
        print(f"seed {seed}: {len(graphs)} molecules, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    refs = sum(len(g.coords) for g in graphs)
    settings = ", ".join(args.set) or "the run's sampling settings"
    print(f"| {LEVELS[a['level']]} references: {len(graphs)} {args.molecules} molecules, {refs} references; {settings}; seeds "
          f"{' '.join(map(str, args.seeds))} | " + " | ".join(KEYS) + " |")
    print("|---|" + "---:|" * len(KEYS))
    rows = list(ROWS)
    for group, size in (("ionised", len(ions)), ("neutral", len(graphs) - len(ions))):
        rows += [(f"{label}: the {size} {group} molecules", f"{group}_{prefix}") for label, prefix in ROWS if prefix != "start_" and size]
    for label, prefix in rows:
        cells = []
        for k in KEYS:
            v = [m[prefix + k] for m in per_seed if prefix + k in m]
            cells.append("" if not v else f"{statistics.mean(v):.3f} ± {statistics.stdev(v):.3f}" if len(v) > 1 else f"{v[0]:.3f}")
        print(f"| {label} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(per_seed, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=("build", "score"))
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--molecules", choices=("test", "tune", "charged"), default="test", help="the test ligands (to report), or tuning molecules (to choose): the tuning split, or charged molecules the run never saw")
    p.add_argument("--count", type=int, default=30, help="--molecules tune or charged: this many")
    p.add_argument("--level", choices=("xtb", "mmff"), default="xtb", help="the references' energy surface: GFN2-xTB in water, or a thorough MMFF94 search")
    p.add_argument("--embeddings", type=positive, help="ETKDG v3 embeddings per molecule, each optimised (default: 15 with xTB, 300 with mmff)")
    p.add_argument("--keep", type=positive, help="at most this many references per molecule, either level (default: the run's data.conformers)")
    p.add_argument("--gtol", type=float, default=5e-4, help="xTB only: L-BFGS gradient tolerance, Eh/bohr")
    p.add_argument("--max-iter", type=int, default=1000, help="xTB only: L-BFGS iterations at most")
    p.add_argument("--window", type=float, default=10.0, help="energy window, kcal/mol")
    p.add_argument("--prune", type=float, default=0.5, help="heavy-atom RMSD pruning, Angstrom")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--set", action="append", default=[], help="score: a sampling setting, data.KEY=VALUE (repeatable)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, help="score: write each seed's metrics here")
    args = p.parse_args()
    if args.embeddings is None:
        args.embeddings = 15 if args.level == "xtb" else 300
    (build if args.step == "build" else score)(args)


def positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


if __name__ == "__main__":
    main()
