"""The ``molecule`` domain: 3D conformers of a given molecule, conditioned on its graph.

Layout of a batch (``N`` = the largest molecule of the batch; smaller ones are padded):

``x``     ``[B, N, 3]`` coordinates, centred on the atoms' mean and divided by
          ``coord_scale`` (Angstrom per data unit, in :meth:`state_dict`) so they are O(1);
``mask``  ``[B, N, 1]``, 1 for a real atom, 0 for padding;
``cond``  ``{"atoms": [B, N, F], "pairs": [B, N, N, E], "atom_mask": [B, N]}``, the graph
          (:mod:`diffcore_molecule.data` defines the features).

Noise lives in the zero-centre-of-mass subspace of the real atoms (Hoogeboom et al. 2022,
sec. 3.2): a standard normal projected by subtracting its mean over the real atoms, zero at
padding. The EGNN's output lives in the same subspace, so every sampler's iterate stays
there: the generated coordinates are centred and translation plays no part in the model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field, field_validator, model_validator
from torch.utils.data import Dataset

from diffcore import Batch, Domain, Options, UserError

from . import data as D
from .edit import MoleculeEditOptions

log = logging.getLogger("diffcore.molecule")



class MoleculeOptions(Options):
    """The ``data:`` section of the molecule-coords recipe."""

    smiles: Path | None = Field(None, description="A file of your own molecules: one SMILES per line, optionally followed by a name. Default: the drug-like molecules that ship with rdkit.")
    sdf: Path | None = Field(None, description="An SDF file of your own molecules; 3D records are used as reference conformers (records of one molecule are its ensemble).")
    max_atoms: int = Field(200, ge=2, le=500, description="Largest molecule, in atoms (hydrogens included when data.hydrogens is true), for training and sampling.")
    max_heavy: int | None = Field(35, ge=2, le=200, description="Default training set only: its largest molecule in heavy atoms (null: data.max_atoms).")
    min_heavy: int = Field(6, ge=1, le=200, description="Default training set only: its smallest molecule in heavy atoms.")
    hydrogens: bool = Field(True, description="Model explicit hydrogens (true) or heavy atoms only (false).")
    elements: list[str] = Field(list(D.DEFAULT_ELEMENTS), min_length=1, description="Elements the model knows; molecules with others are skipped (files) or refused (sampling).")
    conformers: int = Field(5, ge=1, le=100, description="Reference conformers per molecule, at most (ETKDG v3 x oversample, MMFF94, energy window, RMSD pruning), built once and cached.")
    mmff: bool = Field(True, description="MMFF94-optimise the reference conformers.")
    oversample: int = Field(3, ge=1, le=20, description="ETKDG embeddings per wanted reference before minimisation and pruning.")
    energy_window: float | None = Field(10.0, gt=0, description="Keep references within this many kcal/mol of the lowest (null: all).")
    prune_rms: float | None = Field(0.5, ge=0, description="Drop a reference within this heavy-atom RMSD (Angstrom) of a lower-energy one (null: keep all).")
    max_molecules: int | None = Field(1000, ge=2, description="Use at most this many training molecules (null: all that qualify; the default set has about 15,000).")
    test_set: bool = Field(True, description="Default data only: hold out rdkit's 40 drug-like test ligands (never trained on) for sampling and evaluate; the val_fraction split is then the tuning set. false: hold out the split.")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="Fraction of molecules held out for sampling and evaluation (split by molecule).")
    seed: int = Field(0, description="Seed of the reference conformers and of the held-out split.")
    coord_scale: float | None = Field(None, gt=0, description="Angstrom per data unit; null: the RMS of the centred training coordinates.")
    eval_factor: int = Field(2, ge=1, description="evaluate generates eval_factor x (number of references) conformers per molecule, as torsional diffusion.")
    delta: float = Field(0.75, gt=0, description="RMSD threshold (Angstrom) of the COV-R / COV-P coverage metrics (0.75: torsional diffusion's on GEOM-Drugs).")

    @field_validator("elements")
    @classmethod
    def _known_elements(cls, v: list[str]) -> list[str]:
        from rdkit import Chem

        table = Chem.GetPeriodicTable()
        bad = []
        for e in v:
            try:
                if table.GetAtomicNumber(e) <= 0:
                    bad.append(e)
            except RuntimeError:
                bad.append(e)
        if bad:
            raise ValueError(f"unknown element symbol(s) {', '.join(map(repr, bad))} (use symbols like H, C, N, O, F, S, Cl)")
        if len(set(v)) != len(v):
            raise ValueError("elements must not repeat")
        return v

    @model_validator(mode="after")
    def _one_source(self):
        if self.smiles is not None and self.sdf is not None:
            raise ValueError("give data.smiles or data.sdf, not both")
        return self


class MoleculeSampleOptions(Options):
    """Extra options of ``diffcore sample`` for molecules."""

    smiles: list[str] = Field(default_factory=list, description="Molecules to generate conformers of: 'SMILES' or 'SMILES name', as a line of a SMILES file (one SDF file each, named after the name).")
    smiles_file: Path | None = Field(None, description="A file of molecules: one SMILES per line, optionally followed by a name.")
    held_out: int = Field(4, ge=1, description="With no SMILES given: how many held-out molecules to sample.")


class _Conformers(Dataset):
    """One item per (molecule, reference conformer)."""

    def __init__(self, graphs: list[D.MolGraph], scale: float):
        self.graphs, self.scale = graphs, scale
        self.index = [(g, k) for g in range(len(graphs)) for k in range(len(graphs[g].coords))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> Batch:
        g, k = self.index[i]
        mg = self.graphs[g]
        return {"x": mg.coords[k] / self.scale, "cond": {"atoms": mg.atoms, "pairs": mg.pairs}}


def pad_graphs(items: list[dict], n: int | None = None) -> Batch:
    """Pad per-molecule tensors (``x`` optional, ``cond.atoms``, ``cond.pairs``) to ``n``
    atoms (default: the largest) and add the masks."""
    sizes = [it["cond"]["atoms"].shape[0] for it in items]
    n = n or max(sizes)
    b, f = len(items), items[0]["cond"]["atoms"].shape[1]
    e = items[0]["cond"]["pairs"].shape[2]
    atoms, pairs, mask = torch.zeros(b, n, f), torch.zeros(b, n, n, e), torch.zeros(b, n)
    x = torch.zeros(b, n, 3) if "x" in items[0] else None
    for i, (it, k) in enumerate(zip(items, sizes)):
        atoms[i, :k] = it["cond"]["atoms"]
        pairs[i, :k, :k] = it["cond"]["pairs"]
        mask[i, :k] = 1
        if x is not None:
            x[i, :k] = it["x"]
    out: Batch = {"cond": {"atoms": atoms, "pairs": pairs, "atom_mask": mask}, "mask": mask[..., None]}
    if x is not None:
        out["x"] = x
    return out


def zero_com_noise(like: torch.Tensor, mask: torch.Tensor | None, generator: torch.Generator | None = None) -> torch.Tensor:
    """N(0, I) projected onto the zero-centre-of-mass subspace of the real atoms
    (Hoogeboom et al. 2022, sec. 3.2): eps - mean_real(eps), zero at padding. Each real
    coordinate then has variance 1 - 1/n, and ||eps||^2 ~ chi^2 with 3 (n - 1) degrees of
    freedom: the standard normal of the (3n - 3)-dimensional subspace."""
    eps = torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    if mask is None:
        return eps - eps.mean(dim=-2, keepdim=True)
    m = mask.to(device=like.device, dtype=like.dtype).expand_as(like)
    eps = eps * m
    count = m.sum(dim=-2, keepdim=True).clamp(min=1.0)
    return (eps - eps.sum(dim=-2, keepdim=True) / count) * m


def _warn_open_stereo(name: str, mol) -> None:
    """One warning when the input leaves stereo open: each conformer then gets whatever ETKDG draws."""
    atoms, bonds = D.unspecified_stereo(mol)
    parts = [f"{n} {word}{'s' if n > 1 else ''}" for n, word in ((atoms, "stereocentre"), (bonds, "double bond")) if n]
    if parts:
        kinds = "; ".join(k for n, k in ((atoms, "R in some, S in others"), (bonds, "E in some, Z in others")) if n)
        how = " and ".join(k for n, k in ((atoms, "@/@@"), (bonds, "/ and \\")) if n)
        log.warning("%s: %s unspecified: each conformer gets whichever ETKDG draws (%s); specify %s in the SMILES (%s) "
                    "to fix it", name, " and ".join(parts), kinds, "them" if atoms + bonds > 1 else "it", how)


class MoleculeDomain(Domain):
    """Molecules as padded 3D coordinates conditioned on their graph (see the module doc)."""

    name = "molecule"
    Options = MoleculeOptions
    SampleOptions = MoleculeSampleOptions
    EditOptions = MoleculeEditOptions

    def __init__(self, options: BaseModel | None = None, *, workdir: Path | None = None):
        super().__init__(options, workdir=workdir)
        o = self.options
        self.rules = D.Rules(tuple(o.elements), o.max_atoms, o.hydrogens)
        self.graphs: list[D.MolGraph] | None = None
        self.train_idx: list[int] = []
        self.val_idx: list[int] = []  # held out: sampled and evaluated
        self.tune_idx: list[int] = []  # the split's held-out part when the test set is held out: for choosing defaults
        self.scale: float | None = o.coord_scale
        self.held_out_smiles: list[tuple[str, str]] = []

    # ------------------------------------------------------------------ data
    @property
    def atom_dim(self) -> int:
        return D.atom_feature_dim(len(self.rules.elements))

    @property
    def pair_dim(self) -> int:
        return D.PAIR_FEATURE_DIM

    def setup(self) -> None:
        if self.graphs is not None:
            return
        o = self.options
        source = D.Source(smiles=o.smiles, sdf=o.sdf)
        self.graphs = D.build(source, self.rules, conformers=o.conformers, seed=o.seed, mmff=o.mmff,
                              max_molecules=o.max_molecules, workdir=self.workdir, max_heavy=o.max_heavy,
                              min_heavy=o.min_heavy, **self._search())
        self.train_idx, self.val_idx = D.split(len(self.graphs), o.val_fraction, o.seed)
        self.tune_idx = []
        if self._uses_test_set():  # held out: the test ligands; the split: for tuning
            test = self._test_graphs()
            self.tune_idx = self.val_idx
            self.val_idx = list(range(len(self.graphs), len(self.graphs) + len(test)))
            self.graphs = self.graphs + test
        if self.scale is None:
            coords = torch.cat([self.graphs[i].coords.reshape(-1, 3) for i in self.train_idx])
            self.scale = round(float(coords.pow(2).mean().sqrt()), 4)
        self.held_out_smiles = [(self.graphs[i].name, self.graphs[i].smiles) for i in self.val_idx]
        log.info("%d molecules (%d training, %d held out), coord_scale %.3f A", len(self.graphs),
                 len(self.train_idx), len(self.val_idx), self.scale)

    def _search(self) -> dict[str, Any]:
        o = self.options
        return {"oversample": o.oversample, "energy_window": o.energy_window, "prune_rms": o.prune_rms}

    def _uses_test_set(self) -> bool:
        o = self.options
        return o.test_set and o.smiles is None and o.sdf is None

    def _test_graphs(self) -> list[D.MolGraph]:
        o = self.options
        return D.build_test(self.rules, o.conformers, o.seed, self.workdir, mmff=o.mmff, **self._search())

    def _graphs(self, idx: list[int]) -> list[D.MolGraph]:
        self.setup()
        return [self.graphs[i] for i in idx]

    def held_out_graphs(self) -> list[D.MolGraph]:
        """The held-out molecules with their references: the fixed test ligands when
        ``data.test_set`` applies (built alone: evaluating a trained run needs no training
        references), else the split's held-out part."""
        if self.graphs is None and self._uses_test_set():
            return self._test_graphs()
        self.setup()  # before reading val_idx
        return self._graphs(self.val_idx)

    def train_dataset(self) -> Dataset:
        self.setup()
        return _Conformers(self._graphs(self.train_idx), self.scale)

    def val_dataset(self) -> Dataset | None:
        self.setup()
        return _Conformers(self._graphs(self.val_idx), self.scale) if self.val_idx else None

    def collate(self, items: list[Batch]) -> Batch:
        return pad_graphs(items)

    def state_dict(self) -> dict[str, Any]:
        return {"coord_scale": self.scale, "held_out": [list(p) for p in self.held_out_smiles]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("coord_scale") is not None:
            self.scale = float(state["coord_scale"])
        self.held_out_smiles = [tuple(p) for p in state.get("held_out", [])]

    def _scale(self) -> float:
        if self.scale is None:
            self.setup()
        return self.scale

    # ------------------------------------------------------------------ noise
    def noise(self, like: torch.Tensor, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor:
        return zero_com_noise(like, batch.get("mask"), generator)

    # --------------------------------------------------------------- sampling
    def requested(self, options: BaseModel | None) -> list[D.MolGraph]:
        """The molecules a ``diffcore sample`` call asks for (SMILES, a file, or held-out)."""
        o = options if options is not None else MoleculeSampleOptions()
        if isinstance(o, dict):
            o = MoleculeSampleOptions.model_validate(o)
        mols: list[tuple[str, Any]] = []
        for k, s in enumerate(o.smiles):  # "SMILES [name]", as a line of a SMILES file
            parts = s.split(None, 1)
            name = parts[1].strip() if len(parts) > 1 else f"smiles-{k + 1}"
            mols.append((name, D.from_smiles(parts[0] if parts else s, self.rules, f"--smiles {s!r}")))
        if o.smiles_file is not None:
            mols += D.read_smiles_file(o.smiles_file, self.rules)
        for name, mol in mols:  # the user's own molecules: what they can specify
            _warn_open_stereo(name, mol)
        if not mols:
            if not self.held_out_smiles:
                self.setup()
            if not self.held_out_smiles:
                raise UserError("no molecule to sample: pass --smiles SMILES or --smiles-file FILE")
            for name, smi in self.held_out_smiles[: o.held_out]:
                mols.append((name, D.from_smiles(smi, self.rules, f"held-out molecule {name} ({smi})")))
        data = self.options  # the data section (o above: the sampling options)
        most = data.max_heavy if data.smiles is None and data.sdf is None else None  # it filters only the default training set
        for name, mol in mols:
            heavy = mol.GetNumHeavyAtoms()
            if most is not None and heavy > most:
                log.warning("%s: %d heavy atoms, more than the training molecules' %d (data.max_heavy): its conformers "
                            "are an extrapolation; check them (e.g. clashes in diffcore evaluate) or train with a larger "
                            "data.max_heavy", name, heavy, most)
        return [D.to_graph(name, mol, self.rules) for name, mol in mols]

    def graph_batches(self, graphs: list[D.MolGraph], num: int | Sequence[int], batch_size: int) -> Iterable[Batch]:
        """``num`` copies of each molecule (or ``num[i]`` of ``graphs[i]``), in batches of at
        most ``batch_size`` examples; a batch may hold several molecules, padded. Besides
        ``shape``, ``mask`` and ``cond``, a batch carries ``mol`` (each example's index in
        ``graphs``), ``conformer`` (its number), ``molecules`` (``graphs``) and
        ``coord_scale``, which the writer and the metrics read."""
        counts = [num] * len(graphs) if isinstance(num, int) else list(num)
        jobs = [(g, k) for g in range(len(graphs)) for k in range(counts[g])]
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start : start + batch_size]
            items = [{"cond": {"atoms": graphs[g].atoms, "pairs": graphs[g].pairs}} for g, _ in chunk]
            batch = pad_graphs(items)
            batch["shape"] = tuple(batch["mask"].shape[:2]) + (3,)
            batch["mol"] = [g for g, _ in chunk]
            batch["conformer"] = [k for _, k in chunk]
            batch["molecules"] = graphs
            batch["coord_scale"] = self._scale()
            yield batch

    def sample_batches(self, num: int, batch_size: int, classes: Sequence[int] | None = None,
                       options: BaseModel | None = None) -> Iterable[Batch]:
        """``num`` conformers of each requested molecule (``--smiles``, ``--smiles-file``, or
        the first ``held_out`` held-out molecules)."""
        graphs = self.requested(options)
        self._scale()
        return self.graph_batches(graphs, num, batch_size)

    def write_samples(self, results: list[tuple[torch.Tensor, Batch]], out_dir: Path,
                      options: BaseModel | None = None) -> list[Path]:
        """One SDF file per molecule (its conformers); the molecules travel in the batches, so
        ``options`` (``--smiles``...) are not needed again here."""
        from .writer import write_sdf_files

        return write_sdf_files(results, Path(out_dir))

    # ---------------------------------------------------------------- editing
    def edit_batches(self, inputs: Sequence[str], num: int, batch_size: int, classes: Sequence[int] | None = None,
                     options: BaseModel | None = None) -> Iterable[Batch]:
        """``num`` conformers of each input (SDF/MOL file with 3D coordinates, or SMILES) whose
        ``--fix-atoms`` / ``--core`` atoms keep the input's coordinates (:mod:`diffcore_molecule.edit`)."""
        from .edit import edit_batches

        return edit_batches(self, inputs, num, batch_size, options)

    def write_edits(self, results: list[tuple[torch.Tensor, Batch]], out_dir: Path) -> list[Path]:
        """Per input: its edited conformers aligned onto the input's fixed atoms (SDF), the input
        conformer (SDF) and a before/after picture (PNG)."""
        from .edit import write_edits

        return write_edits(results, Path(out_dir))

    # ---------------------------------------------------------------- metrics
    def evaluate(self, sample_fn: Callable[[Batch], torch.Tensor], num: int, out_dir: Path,
                 batch_size: int = 128) -> dict[str, float]:
        """Generate about ``num`` conformers in all (``batch_size`` at a time): ``eval_factor``
        x (number of references) for each of the first held-out molecules (at least one
        molecule), and score them and rdkit's ETKDG against the references (see
        :mod:`diffcore_molecule.metrics`)."""
        from .metrics import evaluate_model

        graphs = self.held_out_graphs()
        if not graphs:
            raise UserError("no held-out molecules to evaluate on (data.val_fraction gives none)")
        chosen, total = [], 0
        for g in graphs:
            need = self.options.eval_factor * len(g.coords)
            if chosen and total + need > num:
                break
            chosen.append(g)
            total += need
        if len(chosen) < len(graphs):
            log.warning("evaluating %d of the %d held-out molecules (--num %d conformers; all of them need %d)", len(chosen),
                        len(graphs), num, sum(self.options.eval_factor * len(g.coords) for g in graphs))
        return evaluate_model(self, chosen, sample_fn, Path(out_dir), batch_size)
