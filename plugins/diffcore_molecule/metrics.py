"""Quality of generated conformers against a molecule's reference ensemble.

For each held-out molecule with K reference conformers, ``eval_factor * K`` conformers are
generated (torsional diffusion, Jing et al. 2022, sec. 5.1, generates 2K) and scored:

``connectivity``
    fraction of generated conformers whose bonds, perceived from the coordinates alone
    (rdkit's ``rdDetermineBonds.DetermineConnectivity``, connect-the-dots on covalent radii),
    are exactly the input graph's bonds.
``bond_mae`` (Angstrom), ``angle_mae`` (degrees)
    mean absolute error of every bond length (bond angle) of the graph against its mean over
    the reference conformers.
``cov_r``, ``amr_r`` (recall), ``cov_p``, ``amr_p`` (precision)
    with RMSD_ij the heavy-atom RMSD after optimal alignment over symmetry-equivalent atom
    orderings (``rdMolAlign.GetBestRMS``) between reference i and generated j:
    COV-R = mean_i [min_j RMSD_ij < delta], AMR-R = mean_i min_j RMSD_ij, and COV-P / AMR-P
    the same over generated conformers (Jing et al. 2022, eq. 11-12; delta = 0.5 A there for
    drug-like molecules). Averaged over molecules (``*_median``: the median over molecules).

The same metrics for rdkit's ETKDG v3 (no MMFF) with the same number of conformers are the
baseline row (``etkdg_*``).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from rdkit import Chem
from rdkit.Chem import rdDetermineBonds, rdMolAlign

from . import data as D
from .writer import decode, with_conformers

log = logging.getLogger("diffcore.molecule")


def connectivity_ok(mol: Chem.Mol, coords: np.ndarray) -> bool:
    """Do the bonds perceived from ``coords`` equal the bonds of ``mol``?"""
    m = with_conformers(mol, [coords])
    try:
        rdDetermineBonds.DetermineConnectivity(m)
    except (RuntimeError, ValueError):
        return False
    return bool((Chem.GetAdjacencyMatrix(m) == Chem.GetAdjacencyMatrix(mol)).all())


def _bonds(mol: Chem.Mol) -> np.ndarray:
    return np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()], dtype=np.int64).reshape(-1, 2)


def _angles(mol: Chem.Mol) -> np.ndarray:
    out = []
    for a in mol.GetAtoms():
        nb = [n.GetIdx() for n in a.GetNeighbors()]
        out += [(nb[p], a.GetIdx(), nb[q]) for p in range(len(nb)) for q in range(p + 1, len(nb))]
    return np.array(out, dtype=np.int64).reshape(-1, 3)


def bond_lengths(coords: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    """``[..., num_bonds]`` lengths of ``bonds`` in conformers ``[..., n, 3]``."""
    return np.linalg.norm(coords[..., bonds[:, 0], :] - coords[..., bonds[:, 1], :], axis=-1)


def bond_angles(coords: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """``[..., num_angles]`` angles (degrees) i-j-k."""
    u = coords[..., angles[:, 0], :] - coords[..., angles[:, 1], :]
    v = coords[..., angles[:, 2], :] - coords[..., angles[:, 1], :]
    cos = (u * v).sum(-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1) + 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def rmsd_matrix(mol: Chem.Mol, refs: np.ndarray, gens: np.ndarray) -> np.ndarray:
    """``[K_ref, K_gen]`` heavy-atom RMSD (Angstrom) after the best alignment over
    symmetry-equivalent orderings (``GetBestRMS``)."""
    ref = Chem.RemoveHs(with_conformers(mol, refs), sanitize=False)
    gen = Chem.RemoveHs(with_conformers(mol, gens), sanitize=False)
    out = np.zeros((len(refs), len(gens)))
    for i in range(len(refs)):
        for j in range(len(gens)):
            out[i, j] = rdMolAlign.GetBestRMS(gen, ref, prbId=j, refId=i)
    return out


def score(mol: Chem.Mol, refs: np.ndarray, gens: np.ndarray, delta: float) -> dict[str, float]:
    """All metrics of one molecule: ``refs [K, n, 3]`` and ``gens [M, n, 3]`` in Angstrom."""
    bonds, angles = _bonds(mol), _angles(mol)
    out = {"connectivity": float(np.mean([connectivity_ok(mol, g) for g in gens]))}
    out["bond_mae"] = float(np.abs(bond_lengths(gens, bonds) - bond_lengths(refs, bonds).mean(0)).mean()) if len(bonds) else 0.0
    out["angle_mae"] = float(np.abs(bond_angles(gens, angles) - bond_angles(refs, angles).mean(0)).mean()) if len(angles) else 0.0
    r = rmsd_matrix(mol, refs, gens)
    out["cov_r"] = float((r.min(1) < delta).mean())
    out["amr_r"] = float(r.min(1).mean())
    out["cov_p"] = float((r.min(0) < delta).mean())
    out["amr_p"] = float(r.min(0).mean())
    return out


METRICS = ("connectivity", "bond_mae", "angle_mae", "cov_r", "amr_r", "cov_p", "amr_p")


def summarise(rows: list[dict[str, float]], prefix: str = "") -> dict[str, float]:
    out = {}
    for k in METRICS:
        v = np.array([r[k] for r in rows])
        out[prefix + k] = float(v.mean())
        if k in ("cov_r", "amr_r"):
            out[prefix + k + "_median"] = float(np.median(v))
    return out


def generate(domain, graphs: list[D.MolGraph], counts: list[int], sample_fn: Callable, batch_size: int = 128) -> list[list[np.ndarray]]:
    """``counts[i]`` generated conformers (Angstrom) of ``graphs[i]`` through ``sample_fn``."""
    gens: list[list[np.ndarray]] = [[] for _ in graphs]
    for batch in domain.graph_batches(graphs, counts, batch_size):
        with torch.no_grad():
            x = sample_fn(batch)
        for (mg, coords, _), g in zip(decode(x, batch), batch["mol"]):
            gens[g].append(coords)
    return gens


def evaluate_model(domain, graphs: list[D.MolGraph], sample_fn: Callable, out_dir: Path,
                   batch_size: int = 128) -> dict[str, float]:
    """The module's metrics for the model behind ``sample_fn`` (in batches of ``batch_size``)
    and for ETKDG on ``graphs``; per-molecule rows go to ``out_dir/molecule_metrics.csv``."""
    o = domain.options
    counts = [o.eval_factor * len(g.coords) for g in graphs]
    gens = generate(domain, graphs, counts, sample_fn, batch_size)
    rows, base_rows, table = [], [], []
    for k, (mg, gen) in enumerate(zip(graphs, gens)):
        refs = mg.coords.double().numpy()
        row = score(mg.mol, refs, np.stack(gen), o.delta)
        etkdg = D.embed(mg.mol, counts[k], seed=10_000 + o.seed + k, mmff=False)
        base = score(mg.mol, refs, etkdg, o.delta) if etkdg is not None else None
        rows.append(row)
        if base is not None:
            base_rows.append(base)
        table.append({"name": mg.name, "smiles": mg.smiles, "atoms": mg.num_atoms, "references": len(refs),
                      "generated": len(gen), **row, **{f"etkdg_{m}": (base or {}).get(m, float("nan")) for m in METRICS}})
    metrics = {"num_molecules": float(len(graphs)), "num_conformers": float(sum(counts)), "delta": float(o.delta)}
    metrics.update(summarise(rows))
    if base_rows:
        metrics.update(summarise(base_rows, "etkdg_"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "molecule_metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)
    return metrics
