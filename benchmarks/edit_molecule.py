"""Editing conformers with a trained molecule-cartesian run (editing moves coordinates): the figures of
docs/domains/molecules.md, "Editing".

    OMP_NUM_THREADS=1 python benchmarks/edit_molecule.py --run RUN [--num 3] [--resample 1,3]
        [--cores ring,half] [--out DIR] [--picture PNG]

Every held-out molecule of the run's data (the domain's val split) is edited from its first
reference conformer (ETKDG v3 + MMFF94), with two kinds of fixed core, the core's hydrogens
included:

- ``ring``: the largest ring system (rings sharing atoms), on the held-out molecules that
  have a ring;
- ``half``: half the heavy atoms (rounded up), a connected half: breadth-first from the first
  heavy atom in SMILES order, on every held-out molecule.

``--num`` edits per molecule go through the domain's edit batches and the platform's editing
(what ``diffcore edit`` runs) with the run's sampling plan (DDPM, 200 steps; ``--resample``
for RePaint). The baseline is rdkit's ETKDG v3 with a coordinate constraint on the fixed atoms
(``EmbedMolecule`` with ``coordMap``; no MMFF, as the baseline of ``diffcore evaluate``), the
same number per molecule, with its default start (``etkdg_coordmap``) and with
``useRandomCoords`` (``etkdg_coordmap_random``, rdkit's advice with coordMap). A third row, the
model's own conformers of the same molecules sampled without editing (``model_unedited``),
says how good the model is unconstrained. All are aligned onto the input's fixed atoms
(Kabsch) and scored:

``fixed_rmsd``
    RMSD (Angstrom) of the fixed atoms from their input coordinates after the alignment;
``connectivity``
    fraction of conformers whose bonds, perceived from the coordinates (connect-the-dots on
    covalent radii, the domain's criterion), are exactly the molecule's; ``molecules_ok``:
    fraction of molecules whose conformers all pass;
``bond_mae_free``, ``bond_mae_boundary``
    mean absolute error (Angstrom) of the lengths of the bonds with a generated atom (of the
    bonds between a fixed and a generated atom) against their mean over the references;
``angle_mae_free``
    the same for bond angles with a generated atom (degrees);
``free_rmsd``
    RMSD (Angstrom) of the generated heavy atoms from their input coordinates: how far the
    edit moved them (0 would be a copy of the input).

Writes ``edit_molecule.json`` into ``--out`` (default RUN/edit_benchmark).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch
from rdkit import Chem
from rdkit.Chem import AllChem
from rdkit.Geometry import Point3D

from diffcore.platform import config as cfgmod
from diffcore.platform import editing, runs
from diffcore_molecule import edit as E
from diffcore_molecule.metrics import _angles, _bonds, bond_angles, bond_lengths, connectivity_ok
from diffcore_molecule.writer import decode


def with_hydrogens(mol: Chem.Mol, atoms: set[int]) -> list[int]:
    out = set(atoms)
    for i in atoms:
        out.update(n.GetIdx() for n in mol.GetAtomWithIdx(i).GetNeighbors() if n.GetAtomicNum() == 1)
    return sorted(out)


def ring_core(mol: Chem.Mol) -> list[int] | None:
    """The largest ring system (rings joined when they share an atom) and its hydrogens."""
    systems: list[set[int]] = []
    for ring in mol.GetRingInfo().AtomRings():
        r = set(ring)
        for s in [s for s in systems if s & r]:
            r |= s
            systems.remove(s)
        systems.append(r)
    return with_hydrogens(mol, max(systems, key=len)) if systems else None


def half_core(mol: Chem.Mol) -> list[int]:
    """A connected half of the heavy atoms (breadth-first from the first heavy atom) and their
    hydrogens."""
    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    want, seen, queue = math.ceil(len(heavy) / 2), [], deque([heavy[0]])
    while queue and len(seen) < want:
        i = queue.popleft()
        if i in seen:
            continue
        seen.append(i)
        queue.extend(n.GetIdx() for n in mol.GetAtomWithIdx(i).GetNeighbors() if n.GetAtomicNum() > 1)
    return with_hydrogens(mol, set(seen))


def etkdg_constrained(mol: Chem.Mol, coords: np.ndarray, fixed: list[int], num: int, seed: int,
                      random_coords: bool = False) -> list[np.ndarray]:
    """``num`` ETKDG v3 conformers with the fixed atoms' coordinates as a constraint (coordMap),
    one seed each; failed embeddings are left out. ``random_coords``: start from random
    coordinates instead of the distance-geometry eigenvectors (rdkit's advice with coordMap;
    the constraint then holds exactly, but more embeddings fail)."""
    out = []
    for k in range(num):
        m = Chem.Mol(mol)
        m.RemoveAllConformers()
        params = AllChem.ETKDGv3()
        params.randomSeed = seed + k
        params.useRandomCoords = random_coords
        params.SetCoordMap({i: Point3D(*map(float, coords[i])) for i in fixed})
        try:
            ok = AllChem.EmbedMolecule(m, params) == 0
        except RuntimeError:  # rdkit's optimiser can fail an invariant with coordMap: a failed embedding
            ok = False
        if ok:
            out.append(m.GetConformer().GetPositions())
    return out


def score(e: E.EditInput, refs: np.ndarray, confs: list[np.ndarray]) -> dict:
    """The figures of one molecule's edits (already aligned onto the input's fixed atoms)."""
    mol, fixed = e.graph.mol, set(e.fixed)
    bonds, angles = _bonds(mol), _angles(mol)
    free_b = np.array([i not in fixed or j not in fixed for i, j in bonds], bool)
    edge_b = np.array([(i in fixed) != (j in fixed) for i, j in bonds], bool)
    free_a = np.array([any(k not in fixed for k in a) for a in angles], bool)
    free_heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1 and a.GetIdx() not in fixed]
    ref_len, ref_ang = bond_lengths(refs, bonds).mean(0), bond_angles(refs, angles).mean(0)
    rows = []
    for c in confs:
        dl = np.abs(bond_lengths(c, bonds) - ref_len)
        da = np.abs(bond_angles(c, angles) - ref_ang)
        rows.append({
            "fixed_rmsd": float(np.sqrt(((c[e.fixed] - e.coords[e.fixed]) ** 2).sum(-1).mean())),
            "connectivity": float(connectivity_ok(mol, c)),
            "bond_mae_free": float(dl[free_b].mean()) if free_b.any() else math.nan,
            "bond_mae_boundary": float(dl[edge_b].mean()) if edge_b.any() else math.nan,
            "angle_mae_free": float(da[free_a].mean()) if free_a.any() else math.nan,
            "free_rmsd": float(np.sqrt(((c[free_heavy] - e.coords[free_heavy]) ** 2).sum(-1).mean())) if free_heavy else math.nan,
        })
    mean = lambda v: float(np.mean([x for x in v if not math.isnan(x)])) if any(not math.isnan(x) for x in v) else math.nan  # noqa: E731
    return {k: mean([r[k] for r in rows]) for k in rows[0]} | {"all_ok": float(all(r["connectivity"] for r in rows))}


def summarise(per_mol: list[dict], wanted: int) -> dict:
    """Means over molecules (of their means over conformers); ``molecules_ok``: the fraction of
    molecules whose ``--num`` conformers all exist and all keep their bonds."""
    keys = ["fixed_rmsd", "connectivity", "bond_mae_free", "bond_mae_boundary", "angle_mae_free", "free_rmsd"]
    done = [r for r in per_mol if r["n"]]
    out: dict = {"molecules": len(per_mol), "conformers": int(sum(r["n"] for r in done))}
    out["failed"] = int(wanted - out["conformers"])
    if done:
        out |= {k: float(np.nanmean([r[k] for r in done])) for k in keys}
        out["fixed_rmsd_max"] = float(max(r["fixed_rmsd_max"] for r in done))
    out["molecules_ok"] = float(np.mean([r["n"] == r["wanted"] and r.get("all_ok", 0.0) == 1.0 for r in per_mol]))
    return out


def scored(e: E.EditInput, refs: np.ndarray, confs: list[tuple[np.ndarray, float]], wanted: int) -> dict:
    if not confs:
        return {"n": 0, "wanted": wanted}
    return score(e, refs, [c for c, _ in confs]) | {"n": len(confs), "wanted": wanted,
                                                   "fixed_rmsd_max": max(r for _, r in confs)}


def run_edits(run, plan, batches, seed: int, resample: int):
    """The platform's editing, what ``diffcore edit`` runs."""
    return editing.edit_run(run, plan, batches, mode="inpaint", strength=1.0, resample=resample, seed=seed)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--checkpoint", default=None, help="weights to use instead of RUN/ema.safetensors (e.g. a Lightning checkpoint)")
    ap.add_argument("--num", type=int, default=3, help="edits per molecule (and ETKDG conformers)")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps [default: the run's]")
    ap.add_argument("--sampler", default=None, help="sampler [default: the run's]")
    ap.add_argument("--resample", default="1,3", help="RePaint counts to measure, comma-separated (1: plain replacement)")
    ap.add_argument("--cores", default="ring,half", help="which cores: ring, half (comma-separated)")
    ap.add_argument("--max-molecules", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="folder of the JSON report [default: RUN/edit_benchmark]")
    ap.add_argument("--picture", default=None, help="write one before/after picture (PNG) here: the first held-out "
                    "molecule with a ring core and at least 4 generated heavy atoms, edited with the largest --resample")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    run = runs.load_run(args.run, args.checkpoint)
    dom = run.domain
    dom.setup()  # the held-out molecules and their references, from the run's cache
    plan = cfgmod.sampling_plan(run.config, key="cli", sampler=args.sampler, steps=args.steps)
    graphs = [dom.graphs[i] for i in dom.val_idx][: args.max_molecules]
    cores, counts = args.cores.split(","), [int(r) for r in args.resample.split(",")]
    out_dir = Path(args.out or Path(args.run) / "edit_benchmark")
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"run": str(args.run), "weights": str(run.weights), "num": args.num, "sampler": plan.sampler,
              "steps": plan.steps, "held_out": len(graphs), "cores": {}}
    for core_name in cores:
        pick = {"ring": ring_core, "half": half_core}[core_name]
        edits, refs = [], {}
        for g in graphs:
            fixed = pick(g.mol)
            if fixed:
                edits.append(E.EditInput(g, g.coords[0].double().numpy(), fixed, g.name))
                refs[id(edits[-1])] = g.coords.double().numpy()
        if not edits:
            print(f"{core_name}: no held-out molecule has such a core; skipped")
            continue
        entry = report["cores"][core_name] = {
            "molecules": len(edits), "fixed_atoms_mean": float(np.mean([len(e.fixed) for e in edits])),
            "atoms_mean": float(np.mean([e.graph.num_atoms for e in edits])),
        }
        for r in counts:
            t0 = time.time()
            batches = list(E.batches_of(dom, edits, args.num, run.config.sampling.batch_size))
            results = run_edits(run, plan, batches, args.seed, r)
            seconds = time.time() - t0
            rows = [scored(e, refs[id(e)], [(c, rm) for c, rm, _ in confs], args.num) for e, confs in E.collect(results)]
            entry[f"model_resample{r}"] = summarise(rows, args.num * len(edits)) | {"seconds": round(seconds, 1)}
            print(core_name, f"resample {r}", json.dumps(entry[f"model_resample{r}"]), flush=True)
            if args.picture and core_name == "ring" and r == max(counts):
                for e, confs in E.collect(results):
                    if sum(a.GetAtomicNum() > 1 and a.GetIdx() not in e.fixed for a in e.graph.mol.GetAtoms()) >= 4:
                        E.picture(e, [(c, rm) for c, rm, _ in confs[:3]], Path(args.picture))
                        entry["picture"] = e.graph.name
                        break
        # the model's unedited conformers of the same molecules, aligned the same way: a reference
        t0 = time.time()
        make = runs.sample_fn(run, plan, torch.Generator().manual_seed(args.seed))
        gens: dict[int, list] = {}
        for batch in dom.graph_batches([e.graph for e in edits], args.num, run.config.sampling.batch_size):
            for (_, c, _), g in zip(decode(make(batch), batch), batch["mol"]):
                gens.setdefault(g, []).append(c)
        rows = [scored(e, refs[id(e)], [E.align(c, e.coords, e.fixed) for c in gens[k]], args.num) for k, e in enumerate(edits)]
        entry["model_unedited"] = summarise(rows, args.num * len(edits)) | {"seconds": round(time.time() - t0, 1)}
        print(core_name, "unedited", json.dumps(entry["model_unedited"]), flush=True)
        for name, random_coords in (("etkdg_coordmap", False), ("etkdg_coordmap_random", True)):
            t0 = time.time()
            rows = []
            for k, e in enumerate(edits):
                confs = etkdg_constrained(e.graph.mol, e.coords, e.fixed, args.num, 1000 * k, random_coords)
                rows.append(scored(e, refs[id(e)], [E.align(c, e.coords, e.fixed) for c in confs], args.num))
            entry[name] = summarise(rows, args.num * len(edits)) | {"seconds": round(time.time() - t0, 1)}
            print(core_name, name, json.dumps(entry[name]), flush=True)
    name = f"edit_molecule_{'_'.join(cores)}_r{'_'.join(map(str, counts))}.json"
    (out_dir / name).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
