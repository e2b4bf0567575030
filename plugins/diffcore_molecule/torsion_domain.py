"""The ``molecule-torsion`` domain: torsional diffusion (Jing et al. 2022) of a given molecule.

The data are the torsion angles of a molecule's rotatable bonds (:mod:`.torsions`), a point on
the torus [-pi, pi)^T: ``Domain.period`` = 2 pi, so the core trains on the wrapped-normal
target and wraps the samples (:mod:`diffcore.math.torus`). Everything else of a conformer,
its local structure, comes from a conformer ``pos0``:

* training: each reference conformer is an example; its torsions are x0 and it is its own
  local structure (the network rebuilds it from any torsions, so it learns their distribution
  given bond lengths, angles and ring puckers);
* sampling: each generated conformer starts from a fresh ETKDG v3 embedding of the molecule
  (rdkit; seeded from torch's generator, so ``--seed`` decides it), minimised with MMFF94
  unless ``sampling_local_structure`` is ``etkdg``, whose torsions the model replaces. Rigid
  turns about single bonds keep the embedding's stereocentres and double-bond configurations
  (ETKDG embeds the specified ones; a minimisation that changed one is undone), so the output
  has the input's chirality.

Layout (``T`` = most torsions in the batch, at least 1; ``N`` = most atoms):

``x``      ``[B, T]`` torsion angles (radians); ``mask`` ``[B, T]``, 1 for a real torsion;
``cond``   ``atoms [B, N, F]``, ``pairs [B, N, N, E]``, ``atom_mask [B, N]``, ``heavy [B, N]``
           (heavy atoms come first in every molecule), ``pos0 [B, N, 3]`` (Angstrom),
           ``quads [B, T, 4]``, ``sides [B, T, N]`` (the atoms each torsion turns), ``tmask``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from rdkit import Chem
from rdkit.Chem import AllChem

from pydantic import Field, model_validator

from diffcore import Batch, Domain

from . import data as D
from . import druglike as G
from .domain import MoleculeDomain, MoleculeOptions, pad_graphs
from .torsions import dihedrals, rotatable_torsions, set_torsions
from .writer import with_conformers

log = logging.getLogger("diffcore.molecule")


@dataclass
class Torsions:
    quads: torch.Tensor  # [T, 4]
    sides: torch.Tensor  # [T, N]
    heavy: torch.Tensor  # [N]


def heavy_first(mg: D.MolGraph) -> D.MolGraph:
    """``mg`` with its atoms renumbered heavy atoms first (rdkit's AddHs already orders them
    so; an SDF file may not): the network looks at the heavy atoms only, as a prefix."""
    z = [a.GetAtomicNum() for a in mg.mol.GetAtoms()]
    order = [i for i, a in enumerate(z) if a > 1] + [i for i, a in enumerate(z) if a == 1]
    if order == list(range(len(z))):
        return mg
    idx = torch.tensor(order)
    mol = Chem.RenumberAtoms(mg.mol, order)
    for key, value in mg.mol.GetPropsAsDict(includePrivate=False).items():  # RenumberAtoms drops them (e.g. the file line)
        mol.SetProp(key, str(value))
    coords = mg.coords[:, idx] if mg.coords is not None else None
    return D.MolGraph(mg.name, mg.smiles, mol, mg.atoms[idx], mg.pairs[idx][:, idx], coords, mg.energies)


def torsions_of(mg: D.MolGraph) -> Torsions:
    quads, sides = rotatable_torsions(mg.mol)
    heavy = torch.tensor([a.GetAtomicNum() > 1 for a in mg.mol.GetAtoms()], dtype=torch.float32)
    return Torsions(quads, sides, heavy)


class _Examples(torch.utils.data.Dataset):
    """One item per (molecule, reference conformer): x0 = its torsions; pos0 = an ETKDG local
    structure of the molecule (``local``, as at sampling: conformer matching) or the
    reference itself (``local`` None)."""

    def __init__(self, graphs: list[D.MolGraph], tors: list[Torsions], local: list[torch.Tensor | None] | None = None):
        self.graphs, self.tors, self.local = graphs, tors, local
        self.index = [(g, k) for g in range(len(graphs)) for k in range(len(graphs[g].coords))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> Batch:
        g, k = self.index[i]
        mg, tr = self.graphs[g], self.tors[g]
        ref = mg.coords[k]
        loc = self.local[g] if self.local is not None else None
        pos = loc[k % len(loc)] if loc is not None else ref
        return {"x": dihedrals(ref, tr.quads), "cond": _cond(mg, tr, pos)}


def _cond(mg: D.MolGraph, tr: Torsions, pos: torch.Tensor) -> dict:
    return {"atoms": mg.atoms, "pairs": mg.pairs, "pos0": pos.float(), "quads": tr.quads, "sides": tr.sides, "heavy": tr.heavy}


def _sampling_cond(mg: D.MolGraph, tr: Torsions, pos: torch.Tensor, r0: torch.Tensor) -> dict:
    return dict(_cond(mg, tr, pos), clash_r0=r0)


def collate_torsions(items: list[Batch]) -> Batch:
    """Pad atoms (:func:`pad_graphs`) and torsions (to the most in the batch, at least 1)."""
    out = pad_graphs([{"cond": it["cond"]} for it in items])
    n = out["cond"]["atoms"].shape[1]
    t = max(1, max(it["cond"]["quads"].shape[0] for it in items))
    b = len(items)
    quads, sides = torch.zeros(b, t, 4, dtype=torch.long), torch.zeros(b, t, n, dtype=torch.bool)
    tmask, pos0, heavy = torch.zeros(b, t), torch.zeros(b, n, 3), torch.zeros(b, n)
    x = torch.zeros(b, t) if "x" in items[0] else None
    for i, it in enumerate(items):
        c = it["cond"]
        k, m = c["quads"].shape[0], c["atoms"].shape[0]
        quads[i, :k], sides[i, :k, :m], tmask[i, :k] = c["quads"], c["sides"], 1
        pos0[i, :m], heavy[i, :m] = c["pos0"], c["heavy"]
        if x is not None:
            x[i, :k] = it["x"]
    out["cond"].update(pos0=pos0, quads=quads, sides=sides, tmask=tmask, heavy=heavy)
    if "clash_r0" in items[0]["cond"]:  # sampling batches: for relax()
        r0 = torch.zeros(b, n, n)
        for i, it in enumerate(items):
            m = it["cond"]["atoms"].shape[0]
            r0[i, :m, :m] = it["cond"]["clash_r0"]
        out["cond"]["clash_r0"] = r0
    out["mask"] = tmask
    if x is not None:
        out["x"] = x
    return out


def clash_radii(mol: Chem.Mol) -> torch.Tensor:
    """``[N, N]`` distances below which two atoms overlap: 0.8 x the sum of their van der Waals
    radii for atoms 3 or more bonds apart (1.6 A for a hydrogen on N or O facing N, O, S or a
    halogen: a hydrogen bond), 0 for closer pairs, whose distance the local structure fixes."""
    table = Chem.GetPeriodicTable()
    r = torch.tensor([table.GetRvdw(a.GetAtomicNum()) for a in mol.GetAtoms()], dtype=torch.float32)
    hops = torch.as_tensor(Chem.GetDistanceMatrix(mol), dtype=torch.float32)
    r0 = 0.8 * (r[:, None] + r[None, :]) * (hops >= 3)
    polar_h = torch.tensor([a.GetAtomicNum() == 1 and any(n.GetAtomicNum() in (7, 8) for n in a.GetNeighbors()) for a in mol.GetAtoms()])
    acceptor = torch.tensor([a.GetAtomicNum() in (7, 8, 16, 9, 17, 35, 53) for a in mol.GetAtoms()])
    hb = (polar_h[:, None] & acceptor[None, :]) | (acceptor[:, None] & polar_h[None, :])
    return torch.where(hb & (hops >= 3), torch.full_like(r0, 1.6), r0)


def relax(x: torch.Tensor, cond: dict, steps: int, lr: float = 0.05, max_turn: float = 0.2) -> torch.Tensor:
    """Torsions ``x [B, T]`` moved by ``steps`` gradient steps down the steric overlap
    sum relu(r0_ij - d_ij)^2 (A^2) of the conformers they make (``cond["clash_r0"]``), each turn
    at most ``max_turn`` radians per step: a step is proportional to the overlap, so a conformer
    without overlap does not move. Bond lengths, angles and chirality stay the local structure's."""
    if steps <= 0 or x.shape[1] == 0:
        return x
    theta = x.detach().clone().double()
    pos0, r0 = cond["pos0"].double(), cond["clash_r0"].double()
    with torch.enable_grad():
        for _ in range(steps):
            theta.requires_grad_(True)
            pos = set_torsions(pos0, cond["quads"], cond["sides"], theta, cond["tmask"])
            d = (pos[:, :, None] - pos[:, None]).pow(2).sum(-1).add(1e-12).sqrt()
            (grad,) = torch.autograd.grad(torch.relu(r0 - d).pow(2).sum(), theta)
            theta = (theta - (lr * grad).clamp(-max_turn, max_turn)).detach()
    return theta.to(x.dtype) * cond["tmask"].to(x.dtype)


def local_structures(mol: Chem.Mol, num: int, seed: int, what: str = "molecule") -> np.ndarray | None:
    """``[num, N, 3]`` ETKDG v3 embeddings of ``mol`` (no force field;
    :func:`diffcore_molecule.druglike.embed_conformers`: retried from random coordinates, at most
    a minute); ``None`` if rdkit cannot embed it."""
    m = Chem.Mol(mol)
    m.RemoveAllConformers()
    ids = G.embed_conformers(m, num, int(seed), threads=1, what=what)
    if not ids:
        return None
    pos = np.stack([m.GetConformer(i).GetPositions() for i in ids])
    return pos[np.arange(num) % len(ids)]  # too few: reuse (rare)


def minimised(mol: Chem.Mol, pos: np.ndarray, energies: bool = False, dielectric: tuple[str, float] = G.VACUUM):
    """The conformers ``pos [K, N, 3]`` of ``mol`` minimised as the training references are
    (MMFF94, else UFF, to convergence; unchanged if neither force field applies; MMFF94's
    ``dielectric``: (model, epsilon), :func:`diffcore_molecule.druglike.minimise`). A conformer
    whose specified stereo the minimisation changed is kept as it was (the references drop
    such conformers; none was seen on the 40 test ligands). With ``energies``: also ``[K]``
    their energies (kcal/mol; +inf for one kept as it was; ``None`` without a force field)."""
    m = with_conformers(mol, pos)
    found = G.minimise(m, threads=1, dielectric=dielectric)
    out = np.stack([c.GetPositions() for c in m.GetConformers()])
    energy = np.array(found, dtype=np.float64) if found is not None else None
    want = G._stereo(m)
    for k, c in enumerate(m.GetConformers()):
        if not G.keeps_stereo(m, c.GetId(), want):
            out[k] = pos[k]
            if energy is not None:
                energy[k] = np.inf
    return (out, energy) if energies else out


def pool_choice(mol: Chem.Mol, pos: np.ndarray, energy: np.ndarray | None, num: int, prune: float) -> np.ndarray:
    """Indices of ``num`` of the minimised pool ``pos [P, N, 3]``: lowest energy first, one within
    ``prune`` A heavy-atom RMSD of one already chosen skipped, then topped up in energy order
    (the recipe of the reference ensembles, :func:`diffcore_molecule.druglike.search`, without
    its energy window). A conformer kept unminimised because minimising changed its stereo
    (energy +inf) comes only after every minimised one, duplicates included. Without energies
    (no force field) the pool's order stands."""
    order = list(np.argsort(energy, kind="stable")) if energy is not None else list(range(len(pos)))
    last = [k for k in order if energy is not None and not np.isfinite(energy[k])]
    m = with_conformers(mol, pos)
    ids = [c.GetId() for c in m.GetConformers()]
    kept = G.diverse(m, [ids[k] for k in order if k not in last], num, prune, fill=True)
    return np.array(kept + [ids[k] for k in last][: num - len(kept)])


# options added after runs were saved: (what such a run sampled with, said, the current default to set)
_BEFORE = {
    "sampling_local_structure": ("etkdg", "sampling with 'etkdg'", "sampling_local_structure: mmff-conformer and init_strength: 0.2"),
    "sampling_minimise": (False, "samples are not minimised", "sampling_minimise: true"),
    "sampling_pool": (1, "no pool of start conformers", "sampling_pool: 3"),
}


class TorsionOptions(MoleculeOptions):
    """The ``data:`` section of the molecule-coords recipe (torsional diffusion)."""

    init_strength: float = Field(0.2, gt=0, le=1, description="Sampling starts from the start conformer's torsions (see sampling_local_structure) noised to this fraction of the steps (SDEdit; 0.2: chosen on the tuning molecules); 1: from uniform noise, as torsional diffusion.")
    local_structure: Literal["etkdg", "reference"] = Field("reference", description="Training: the conformer whose torsions the network sets, the reference itself, or an ETKDG embedding of the molecule (as at sampling; conformer matching, Jing et al. 2022: no gain measured on the tuning molecules).")
    sampling_local_structure: Literal["etkdg", "mmff", "mmff-conformer"] = Field("mmff-conformer", description="Sampling: each conformer's local structure (bond lengths, angles, rings) is an ETKDG v3 embedding as is ('etkdg'), or that embedding minimised with MMFF94 as the training references are ('mmff': the start's torsions stay ETKDG's; 'mmff-conformer', chosen on the tuning molecules: the start is the minimised conformer, torsions too, so the model refines an ETKDG + MMFF94 ensemble).")
    relax_steps: int = Field(100, ge=0, le=1000, description="After sampling, this many gradient steps on the torsions against steric overlap (0: none; 100: chosen on the tuning molecules).")
    sampling_pool: int = Field(3, ge=1, le=20, description="Sampling: embed and minimise this many times the conformers asked for, and start from the lowest-energy ones that differ by at least sampling_prune (the recipe of the reference ensembles; 1: no pool, each conformer starts from its own embedding; 3: chosen on the tuning molecules). Needs a minimised start: with sampling_local_structure: etkdg the pool is 1, and asking for more is an error.")
    sampling_prune: float = Field(0.5, gt=0, le=5, description="With sampling_pool > 1: two start conformers closer than this heavy-atom RMSD (Angstrom, symmetry-aware) count as one (0.5: the references' threshold).")
    sampling_minimise: bool = Field(True, description="After sampling (and relax_steps), minimise each conformer with MMFF94 to convergence, as the references and the ETKDG + MMFF94 baseline are (a conformer whose stereo that changed is kept as sampled; on: chosen on the tuning molecules, docs/domains/molecules.md).")
    sampling_dielectric_model: Literal["constant", "distance"] = Field("constant", description="MMFF94's electrostatics wherever sampling minimises (the pool and sampling_minimise; UFF, the fallback, has none): a constant dielectric, as the references are made, or a distance-dependent one, epsilon x r, a crude, common stand-in for a solvent's screening of charges (distance with sampling_dielectric 4: the screened recipe, measured in docs/domains/molecules.md).")
    sampling_dielectric: float = Field(1.0, ge=1, le=100, description="MMFF94's dielectric constant epsilon wherever sampling minimises (1: vacuum, rdkit's default and the references'; 4 with sampling_dielectric_model: distance gives epsilon = 4r).")

    @model_validator(mode="before")
    @classmethod
    def _saved_before_local_structure_existed(cls, data):
        """A run saved before ``sampling_local_structure`` existed sampled raw ETKDG embeddings,
        and one saved before ``sampling_minimise`` did not minimise its samples (its config.yaml
        lists every other option, ``init_strength`` among them): keep that."""
        if not (isinstance(data, dict) and "init_strength" in data):
            return data
        for key, (then, said, now) in _BEFORE.items():
            if key not in data:
                log.warning(f"data.{key} is not set (a run saved before it existed): {said}, as that run did; for the "
                            f"current default set {now} in the data: section of the run's config.yaml")
                data = {**data, key: then}
        return data

    @model_validator(mode="after")
    def _pool_needs_energies(self):
        """A pool is chosen by MMFF94 energy, which ``etkdg`` does not compute: asked for with it,
        an error; not asked for, the pool is 1 (so a saved config says what the run does)."""
        if self.sampling_pool > 1 and self.sampling_local_structure == "etkdg":
            if "sampling_pool" in self.model_fields_set:
                raise ValueError("data.sampling_pool > 1 chooses start conformers by their MMFF94 energy, which "
                                 "sampling_local_structure: etkdg does not compute; set sampling_local_structure to "
                                 "mmff-conformer (or mmff), or sampling_pool: 1")
            self.sampling_pool = 1
        screened = (self.sampling_dielectric_model, self.sampling_dielectric) != G.VACUUM
        if screened and self.sampling_local_structure == "etkdg" and not self.sampling_minimise:
            raise ValueError("data.sampling_dielectric_model / sampling_dielectric set the force field of sampling's "
                             "minimisations, and with sampling_local_structure: etkdg and sampling_minimise: false there "
                             "are none; set sampling_minimise: true (or another sampling_local_structure), or leave them out")
        return self


class TorsionDomain(MoleculeDomain):
    """Torsion angles on the torus, local structure from rdkit (see the module doc)."""

    name = "molecule-torsion"
    Options = TorsionOptions
    period = 2 * math.pi
    EditOptions = None
    #: the data options that change how conformers are sampled (:meth:`sampling_settings`)
    SAMPLING_SETTINGS = ("init_strength", "sampling_local_structure", "relax_steps", "sampling_minimise", "sampling_pool",
                         "sampling_prune", "sampling_dielectric_model", "sampling_dielectric")

    def __init__(self, options=None, *, workdir=None):
        super().__init__(options, workdir=workdir)
        self._tors: list[Torsions] = []
        self._local: list[torch.Tensor | None] | None = None

    def setup(self) -> None:
        if self.graphs is not None:
            return
        super().setup()
        self.graphs = [heavy_first(g) for g in self.graphs]
        self._tors = [torsions_of(g) for g in self.graphs]

    def _training_local_structures(self) -> list[torch.Tensor | None]:
        """Per training molecule, as many ETKDG embeddings as it has references (seeded by
        data.seed), cached in the workdir beside the references; None where rdkit fails (the
        reference itself is used)."""
        import hashlib

        from .progress import reported

        o = self.options
        text = "|".join(f"{self.graphs[i].smiles}:{len(self.graphs[i].coords)}:{self.graphs[i].num_atoms}" for i in self.train_idx)
        key = hashlib.sha256(f"{text}|{o.seed}|{o.hydrogens}|{D.CACHE_FORMAT}|v1".encode()).hexdigest()[:16]
        path = self.workdir / f"local-structures-{key}.pt" if self.workdir is not None else None
        if path is not None and path.is_file():
            try:  # tensors only (weights_only): a damaged file is rebuilt
                saved = torch.load(path, weights_only=True)
                return [saved.get(str(i)) for i in range(len(self.graphs))]
            except Exception as e:  # noqa: BLE001 - any unreadable cache
                log.warning("%s is unreadable (%s); embedding again", path, e)
        out: list[torch.Tensor | None] = [None] * len(self.graphs)
        for i in reported(self.train_idx, "embedding ETKDG local structures of the training molecules", "molecules"):
            pos = local_structures(self.graphs[i].mol, len(self.graphs[i].coords), 7919 * o.seed + i + 1)
            out[i] = torch.as_tensor(pos, dtype=torch.float32) if pos is not None else None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({str(i): t for i, t in enumerate(out) if t is not None}, path)
        return out

    def _graphs(self, idx: list[int]) -> list[D.MolGraph]:
        self.setup()
        return [self.graphs[i] for i in idx]

    def held_out_graphs(self) -> list[D.MolGraph]:
        if self.graphs is None and self._uses_test_set():
            return [heavy_first(g) for g in self._test_graphs()]
        return super().held_out_graphs()  # after setup: heavy-first already

    def train_dataset(self):
        self.setup()
        if self.options.local_structure == "etkdg" and self._local is None:  # here, not in setup: sampling needs none
            self._local = self._training_local_structures()
        local = [self._local[i] for i in self.train_idx] if self._local is not None else None
        return _Examples(self._graphs(self.train_idx), [self._tors[i] for i in self.train_idx], local)

    def val_dataset(self):
        self.setup()
        return _Examples(self._graphs(self.val_idx), [self._tors[i] for i in self.val_idx]) if self.val_idx else None

    def collate(self, items: list[Batch]) -> Batch:
        return collate_torsions(items)

    def sampling_settings(self) -> dict:
        """The data options that change how conformers are sampled (recorded with an evaluation)."""
        return {k: getattr(self.options, k) for k in self.SAMPLING_SETTINGS}

    def noise(self, like: torch.Tensor, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor:
        return Domain.noise(self, like, batch, generator)  # i.i.d. per torsion, zero at padding

    def requested(self, options) -> list[D.MolGraph]:
        return [heavy_first(g) for g in super().requested(options)]

    def graph_batches(self, graphs: list[D.MolGraph], num: int | Sequence[int], batch_size: int) -> Iterable[Batch]:
        """``num`` conformers of each molecule (or ``num[i]`` of ``graphs[i]``), each from its
        own ETKDG local structure, in batches of at most ``batch_size``. A molecule rdkit
        cannot embed is reported and left out."""
        counts = [num] * len(graphs) if isinstance(num, int) else list(num)
        base = int(torch.randint(0, 2**31 - 1, (1,)))  # torch's seed (diffcore --seed) decides the embeddings
        tors = [torsions_of(g) for g in graphs]  # graphs are heavy-first (setup, requested)
        radii = [clash_radii(g.mol) for g in graphs]
        jobs, local, first = [], {}, {}
        mode = self.options.sampling_local_structure
        dielectric = (self.options.sampling_dielectric_model, self.options.sampling_dielectric)
        for g, mg in enumerate(graphs):
            if counts[g] <= 0:
                continue
            pool = self.options.sampling_pool  # 1 with etkdg (TorsionOptions): no energies to choose by
            raw = local_structures(mg.mol, pool * counts[g], base + g, what=mg.name)
            if raw is None:
                where = mg.mol.GetProp("diffcore_where") if mg.mol.HasProp("diffcore_where") else mg.name
                log.warning("skipped %s (%s): rdkit cannot embed this molecule (impossible stereo or geometry); no conformers",
                            where, mg.smiles)
                continue
            pos, energy = (raw, None) if mode == "etkdg" else minimised(mg.mol, raw, energies=True, dielectric=dielectric)
            if pool > 1:
                pick = pool_choice(mg.mol, pos, energy, counts[g], self.options.sampling_prune)
                raw, pos = raw[pick], pos[pick]
            local[g] = torch.as_tensor(pos, dtype=torch.float32)
            first[g] = torch.as_tensor(pos if mode == "mmff-conformer" else raw, dtype=torch.float32)  # the start's torsions
            jobs += [(g, k) for k in range(counts[g])]
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start : start + batch_size]
            batch = collate_torsions([{"cond": _sampling_cond(graphs[g], tors[g], local[g][k], radii[g])} for g, k in chunk])
            batch["relax_steps"] = self.options.relax_steps
            batch["minimise"] = self.options.sampling_minimise
            batch["dielectric"] = dielectric
            batch["shape"] = tuple(batch["mask"].shape)
            if self.options.init_strength < 1.0:  # start from the start conformer's torsions (SDEdit)
                c = batch["cond"]
                starts = torch.zeros_like(c["pos0"])
                for row, (g, k) in enumerate(chunk):
                    starts[row, : first[g].shape[1]] = first[g][k]
                batch["init"] = dihedrals(starts, c["quads"]) * c["tmask"]
                batch["strength"] = self.options.init_strength
            batch["mol"] = [g for g, _ in chunk]
            batch["conformer"] = [k for _, k in chunk]
            batch["molecules"] = graphs
            batch["coord_scale"] = 1.0
            yield batch
