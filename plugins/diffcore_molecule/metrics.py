"""Quality of generated conformers against a molecule's reference ensemble.

For each held-out molecule with K reference conformers, ``eval_factor * K`` conformers are
generated (torsional diffusion, Jing et al. 2022, sec. 5.1, generates 2K) and scored:

``connectivity``
    fraction of generated conformers whose bonds, perceived from the coordinates alone
    (rdkit's ``rdDetermineBonds.DetermineConnectivity``, connect-the-dots on covalent radii),
    are exactly the input graph's bonds.
``chirality``
    fraction of generated conformers that keep the input's stereochemistry: every specified
    tetrahedral centre has the input's CIP label once perceived from the coordinates
    (``Chem.AssignStereochemistryFrom3D`` on a copy), and every specified double bond its
    E/Z (cis/trans) arrangement: the dihedral of the bond's stereo atoms is above 90 degrees
    for E / trans, below for Z / cis. A molecule without specified stereo keeps it always.
``clashes``
    fraction of generated conformers with a steric clash: two atoms three or more bonds apart
    closer than 0.75 x the sum of their van der Waals radii (rdkit's, Bondi's; the clash
    criterion of PoseBusters, Buttenschoen et al. 2024), except a hydrogen on N or O facing N,
    O, S or a halogen (a hydrogen bond: N-H...O 1.8 A, N-H...Cl 2.2 A in rdkit's own MMFF94
    conformers), which clashes below 1.5 A. ETKDG + MMFF94 conformers of drugs have none.
``bond_mae`` (Angstrom), ``angle_mae`` (degrees)
    mean absolute error of every bond length (bond angle) of the graph against its mean over
    the reference conformers.
``cov_r``, ``amr_r`` (recall), ``cov_p``, ``amr_p`` (precision)
    with RMSD_ij the heavy-atom RMSD after optimal alignment over symmetry-equivalent atom
    orderings (rdkit's ``GetBestRMS``, the whole matrix at once with
    ``GetAllConformerBestRMSToRef``) between reference i and generated j:
    COV-R = mean_i [min_j RMSD_ij < delta], AMR-R = mean_i min_j RMSD_ij, and COV-P / AMR-P
    the same over generated conformers (Jing et al. 2022, eq. 11-12). Averaged over
    molecules (``*_median``: the median over molecules).
``seconds_per_molecule``
    wall time to produce a molecule's conformers: the model's batches (sampling and
    decoding) are shared among their molecules by their number of conformers.

Baseline rows, with the same number of conformers per molecule: rdkit's ETKDG v3 without
MMFF (``etkdg_*``) and ETKDG v3 + MMFF94 (``etkdg_mmff_*``); their seed follows the
sampling seed (``torch.initial_seed()``, which ``diffcore evaluate --seed`` sets), so that
several seeds give them a spread too. ``etkdg_num_molecules``: the molecules rdkit could
embed (the baselines' means are over those).
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from rdkit import Chem
from rdkit.Chem import rdDetermineBonds, rdMolAlign

from . import data as D
from .writer import decode, with_conformers

log = logging.getLogger("diffcore.molecule")

MAX_MATCHES = 10_000  #: symmetry-equivalent atom orderings tried per RMSD matrix (GetBestRMS's maxMatches)
CLASH_FACTOR = 0.75  #: a clash: closer than this x the sum of the van der Waals radii
HBOND_CLASH = 1.5  #: ... or, for a polar hydrogen and N, O, S or a halogen, closer than this (Angstrom)
ACCEPTORS = (7, 8, 9, 16, 17, 35, 53)  #: N, O, F, S, Cl, Br, I
BASELINES = (("etkdg_", False), ("etkdg_mmff_", True))  #: (key prefix, MMFF94 after ETKDG v3)


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


def dihedrals(coords: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """``[..., num_quads]`` dihedral angles (degrees, -180..180) a-b-c-d."""
    p = [coords[..., quads[:, k], :] for k in range(4)]
    b0, b1, b2 = p[0] - p[1], p[2] - p[1], p[3] - p[2]
    b1 = b1 / (np.linalg.norm(b1, axis=-1, keepdims=True) + 1e-12)
    v = b0 - (b0 * b1).sum(-1, keepdims=True) * b1
    w = b2 - (b2 * b1).sum(-1, keepdims=True) * b1
    return np.degrees(np.arctan2((np.cross(b1, v) * w).sum(-1), (v * w).sum(-1)))


def rmsd_matrix(mol: Chem.Mol, refs: np.ndarray, gens: np.ndarray, max_matches: int = MAX_MATCHES) -> np.ndarray:
    """``[K_ref, K_gen]`` heavy-atom RMSD (Angstrom) after the best alignment over
    symmetry-equivalent orderings: ``GetBestRMS(gen_j, ref_i)`` for every pair, the orderings
    enumerated once per molecule (``GetAllConformerBestRMSToRef``). A molecule with more than
    ``max_matches`` orderings falls back to ``GetBestRMS`` per pair, capped at that many."""
    ref = Chem.RemoveHs(with_conformers(mol, refs), sanitize=False)
    gen = Chem.RemoveHs(with_conformers(mol, gens), sanitize=False)
    # (rdkit 2026.09 refuses its own BestAlignmentParams in GetAllConformerBestRMSToRef: no cap there)
    if len(ref.GetSubstructMatches(ref, uniquify=False, maxMatches=max_matches + 1, useChirality=False)) <= max_matches:
        out = rdMolAlign.GetAllConformerBestRMSToRef(gen, ref)
        return np.asarray(out, dtype=np.float64).reshape(len(refs), len(gens))
    return np.array([[rdMolAlign.GetBestRMS(gen, ref, prbId=j, refId=i, maxMatches=max_matches) for j in range(len(gens))]
                     for i in range(len(refs))])


# ------------------------------------------------------------------ stereo, clashes
_TRANS = (Chem.BondStereo.STEREOE, Chem.BondStereo.STEREOTRANS)
_CIS = (Chem.BondStereo.STEREOZ, Chem.BondStereo.STEREOCIS)


def specified_stereo(mol: Chem.Mol) -> tuple[dict[int, str], np.ndarray, np.ndarray]:
    """The stereo ``mol`` specifies: its tetrahedral centres ``{atom: CIP label}``, and its
    stereo double bonds as ``[B, 4]`` stereo atom, begin, end, stereo atom with ``[B]``
    whether they are trans. (On a copy: rdkit's new stereo perception, which
    ``FindMolChiralCenters`` runs, turns E/Z into cis/trans about explicit stereo atoms in place.)"""
    mol = Chem.Mol(mol)
    centres = dict(Chem.FindMolChiralCenters(mol, includeUnassigned=False, useLegacyImplementation=False))
    quads, trans = [], []
    for b in mol.GetBonds():
        s, atoms = b.GetStereo(), list(b.GetStereoAtoms())
        if (s in _TRANS or s in _CIS) and len(atoms) == 2:
            quads.append((atoms[0], b.GetBeginAtomIdx(), b.GetEndAtomIdx(), atoms[1]))
            trans.append(s in _TRANS)
    return centres, np.array(quads, dtype=np.int64).reshape(-1, 4), np.array(trans, dtype=bool)


def stereo_kept(mol: Chem.Mol, gens: np.ndarray) -> np.ndarray:
    """``[M]``: does each conformer ``gens [M, n, 3]`` keep every tetrahedral centre and stereo
    double bond that ``mol`` specifies (see the module doc)? True when it specifies none."""
    gens = np.asarray(gens, dtype=np.float64)
    centres, quads, trans = specified_stereo(mol)
    ok = np.ones(len(gens), dtype=bool)
    if len(quads):
        ok &= ((np.abs(dihedrals(gens, quads)) > 90.0) == trans).all(-1)
    for j in range(len(gens) if centres else 0):
        m = with_conformers(mol, [gens[j]])
        try:
            Chem.AssignStereochemistryFrom3D(m)
            got = dict(Chem.FindMolChiralCenters(m, includeUnassigned=True, useLegacyImplementation=False))
        except (RuntimeError, ValueError):
            got = {}
        ok[j] &= all(got.get(i) == label for i, label in centres.items())
    return ok


def clash_pairs(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Atom pairs ``i, j`` three or more bonds apart and the distance below which they clash."""
    n = mol.GetNumAtoms()
    hops = Chem.GetDistanceMatrix(mol)
    i, j = np.triu_indices(n, 1)
    keep = hops[i, j] >= 3
    i, j = i[keep], j[keep]
    table = Chem.GetPeriodicTable()
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    r = np.array([table.GetRvdw(int(e)) for e in z])
    polar_h = np.array([a.GetAtomicNum() == 1 and any(nb.GetAtomicNum() in (7, 8) for nb in a.GetNeighbors()) for a in mol.GetAtoms()], dtype=bool)
    acceptor = np.isin(z, ACCEPTORS)
    hbond = (polar_h[i] & acceptor[j]) | (polar_h[j] & acceptor[i])
    return i, j, np.where(hbond, HBOND_CLASH, CLASH_FACTOR * (r[i] + r[j]))


def has_clash(mol: Chem.Mol, gens: np.ndarray) -> np.ndarray:
    """``[M]``: does each conformer ``gens [M, n, 3]`` have a steric clash (module doc)?"""
    gens = np.asarray(gens, dtype=np.float64)
    i, j, limit = clash_pairs(mol)
    if not len(i):
        return np.zeros(len(gens), dtype=bool)
    return (np.linalg.norm(gens[:, i] - gens[:, j], axis=-1) < limit).any(-1)


# --------------------------------------------------------------------------- scoring
def score(mol: Chem.Mol, refs: np.ndarray, gens: np.ndarray, delta: float) -> dict[str, float]:
    """All metrics of one molecule: ``refs [K, n, 3]`` and ``gens [M, n, 3]`` in Angstrom."""
    gens = np.asarray(gens, dtype=np.float64)
    bonds, angles = _bonds(mol), _angles(mol)
    out = {"connectivity": float(np.mean([connectivity_ok(mol, g) for g in gens]))}
    out["chirality"] = float(stereo_kept(mol, gens).mean())
    out["clashes"] = float(has_clash(mol, gens).mean())
    out["bond_mae"] = float(np.abs(bond_lengths(gens, bonds) - bond_lengths(refs, bonds).mean(0)).mean()) if len(bonds) else 0.0
    out["angle_mae"] = float(np.abs(bond_angles(gens, angles) - bond_angles(refs, angles).mean(0)).mean()) if len(angles) else 0.0
    r = rmsd_matrix(mol, refs, gens)
    out["cov_r"] = float((r.min(1) < delta).mean())
    out["amr_r"] = float(r.min(1).mean())
    out["cov_p"] = float((r.min(0) < delta).mean())
    out["amr_p"] = float(r.min(0).mean())
    return out


METRICS = ("connectivity", "chirality", "clashes", "bond_mae", "angle_mae", "cov_r", "amr_r", "cov_p", "amr_p",
           "seconds_per_molecule")


def summarise(rows: list[dict[str, float]], prefix: str = "") -> dict[str, float]:
    """Means over molecules of the :data:`METRICS` in ``rows`` (and medians of COV-R, AMR-R)."""
    out = {}
    for k in METRICS:
        if not rows or k not in rows[0]:
            continue
        v = np.array([r[k] for r in rows], dtype=np.float64)
        out[prefix + k] = float(v.mean())
        if k in ("cov_r", "amr_r"):
            out[prefix + k + "_median"] = float(np.median(v))
    return out


def generate(domain, graphs: list[D.MolGraph], counts: list[int], sample_fn: Callable, batch_size: int = 128,
             seconds: list[float] | None = None, starts: list[list[np.ndarray]] | None = None) -> list[list[np.ndarray]]:
    """``counts[i]`` generated conformers (Angstrom) of ``graphs[i]`` through ``sample_fn``.
    ``seconds``, if given (one number per molecule), is increased by each molecule's share of
    the wall time of the batches (making, sampling and decoding them), by its number of conformers.
    ``starts``, if given (one list per molecule), receives the conformers the batches started
    from where the domain gives a first guess (``init``, e.g. molecule-torsion's): the paired
    "before the model" ensemble."""
    gens: list[list[np.ndarray]] = [[] for _ in graphs]
    batches = iter(domain.graph_batches(graphs, counts, batch_size))
    while True:
        start = time.perf_counter()  # making the batch counts too (molecule-torsion embeds its local structures there)
        batch = next(batches, None)
        if batch is None:
            break
        with torch.no_grad():
            x = sample_fn(batch)
        decoded = decode(x, batch)
        share = (time.perf_counter() - start) / max(1, len(batch["mol"]))
        if starts is not None and batch.get("init") is not None:
            for (_, coords, _), g in zip(decode(batch["init"], {**batch, "relax_steps": 0, "minimise": False}), batch["mol"]):
                starts[g].append(coords)
        for (mg, coords, _), g in zip(decoded, batch["mol"]):
            gens[g].append(coords)
            if seconds is not None:
                seconds[g] += share
    return gens


def baseline_seed(data_seed: int) -> int:
    """The seed of the baselines' first molecule (the k-th adds k): from the data seed and the
    sampling seed (``torch.initial_seed()``)."""
    return (10_000 + data_seed + 7_919 * (torch.initial_seed() % 100_003)) % (2**31 - 1_000_000)


def score_baseline(mol: Chem.Mol, refs: np.ndarray, num: int, seed: int, mmff: bool, delta: float) -> dict[str, float] | None:
    """The metrics of ``num`` ETKDG v3 conformers (then MMFF94 if ``mmff``) of ``mol``, with
    ``seconds_per_molecule`` (the embedding's) and ``generated``; ``None`` if rdkit cannot
    embed it."""
    start = time.perf_counter()
    confs = D.embed(mol, num, seed=seed, mmff=mmff)
    took = time.perf_counter() - start
    if confs is None or len(confs) == 0:
        return None
    row = score(mol, refs, np.asarray(confs), delta)
    row["seconds_per_molecule"] = took
    row["generated"] = float(len(confs))
    return row


def evaluate_baselines(graphs: Sequence[D.MolGraph], counts: Sequence[int], delta: float,
                       seed: int) -> tuple[dict[str, float], list[dict]]:
    """Every baseline of :data:`BASELINES` on ``graphs`` (``counts[k]`` conformers of the k-th,
    seed ``seed + k``): the summary (``etkdg_*``, ``etkdg_mmff_*``, ``etkdg_num_molecules``)
    and one flat dict per molecule (its ``PREFIX_metric`` columns)."""
    rows: dict[str, list] = {p: [] for p, _ in BASELINES}
    table = []
    for k, mg in enumerate(graphs):
        refs = mg.coords.double().numpy()
        entry: dict = {}
        for prefix, mmff in BASELINES:
            row = score_baseline(mg.mol, refs, counts[k], seed + k, mmff, delta)
            if row is not None:
                rows[prefix].append(row)
            entry.update({prefix + m: (row or {}).get(m, float("nan")) for m in (*METRICS, "generated")})
        table.append(entry)
    summary: dict[str, float] = {"etkdg_num_molecules": float(len(rows[BASELINES[0][0]]))}
    for prefix, _ in BASELINES:
        summary.update(summarise(rows[prefix], prefix))
    return summary, table


def write_table(table: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row in table for k in row)))  # every row's columns
        w.writeheader()
        w.writerows(table)


def evaluate_model(domain, graphs: list[D.MolGraph], sample_fn: Callable, out_dir: Path,
                   batch_size: int = 128) -> dict[str, float]:
    """The module's metrics for the model behind ``sample_fn`` (in batches of ``batch_size``)
    and for the ETKDG baselines on ``graphs``; per-molecule rows go to
    ``out_dir/molecule_metrics.csv``."""
    o = domain.options
    counts = [o.eval_factor * len(g.coords) for g in graphs]
    seconds = [0.0] * len(graphs)
    starts: list[list[np.ndarray]] = [[] for _ in graphs]
    gens = generate(domain, graphs, counts, sample_fn, batch_size, seconds=seconds, starts=starts)
    rows, start_rows, table = [], [], []
    for k, (mg, gen) in enumerate(zip(graphs, gens)):
        if not gen:  # rdkit could not embed its local structures (reported by the domain)
            continue
        refs = mg.coords.double().numpy()
        row = score(mg.mol, refs, np.stack(gen), o.delta)
        row["seconds_per_molecule"] = seconds[k]
        rows.append(row)
        entry = {"name": mg.name, "smiles": mg.smiles, "atoms": mg.num_atoms, "references": len(mg.coords),
                 "generated": len(gen), **row}
        if starts[k]:  # the same conformers before the model: a paired comparison
            start_row = score(mg.mol, refs, np.stack(starts[k]), o.delta)
            start_rows.append(start_row)
            entry.update({"start_" + m: v for m, v in start_row.items()})
        table.append(entry)
    base, base_table = evaluate_baselines(graphs, counts, o.delta, baseline_seed(o.seed))
    metrics = {"num_molecules": float(len(graphs)), "num_conformers": float(sum(counts)), "delta": float(o.delta)}
    metrics.update(summarise(rows))
    if start_rows and len(start_rows) == len(rows):
        metrics.update(summarise(start_rows, "start_"))
    metrics.update(base)
    for entry, extra in zip(table, base_table):
        entry.update(extra)
    write_table(table, Path(out_dir) / "molecule_metrics.csv")
    return metrics
