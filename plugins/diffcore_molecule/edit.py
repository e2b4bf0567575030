"""Editing conformers (``diffcore edit`` for molecules): some atoms keep the input's
coordinates, the model generates the others.

An input (``--input``) is an SDF/MOL file with 3D coordinates (each record one input) or a
SMILES; for a SMILES the input coordinates are rdkit's ETKDG v3 conformer optimised with
MMFF94 (as the training references), seed 0. The fixed atoms are ``--fix-atoms`` (0-based
indices in the order the domain gives the atoms: a file's atoms in file order, a SMILES's in
SMILES order, then the hydrogens rdkit adds, when the model has hydrogens and the input lacks
them) and every atom matched by ``--core SMARTS`` (all matches).

Centre of mass. Training data are centred over all atoms and the EGNN returns centred
positions: its x0_hat fixes the shape, not where it sits. ``known`` is the input centred over
all its atoms (as training data) and ``keep`` is 1 on the fixed atoms' rows; the replacement
method puts a noised copy of the fixed atoms into x_t at every step (the noise, zero-CoM over
all atoms, is the training noise's marginal there). A centred x0_hat places the molecule on
the input's centroid, so when the generated atoms' centroid moves (new side chains), its fixed
atoms sit off the kept ones by about (n_free / n) x that move and the bonds between kept and
generated atoms stretch. So an edit batch's ``cond`` carries ``fixed`` (the mask) and
``known``, and the EGNN moves its x0_hat rigidly onto the kept atoms (Kabsch), damped while
its own fixed atoms are far from the kept ones in shape, i.e. at high noise
(:func:`~diffcore_molecule.backbone.anchor`). The output is then aligned back onto the input's
fixed atoms (Kabsch; with no fixed atom, onto all atoms), so the fixed atoms keep their input
coordinates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import Field, field_validator
from rdkit import Chem

from diffcore import Batch, Options, UserError

from . import data as D
from .backbone import kabsch_rotation
from .writer import _slug, fix_chirality, with_conformers

FILE_SUFFIXES = (".sdf", ".sd", ".mol", ".mdl")
INPUT_SEED = 0  # seed of the ETKDG conformer that gives a SMILES input its coordinates


class MoleculeEditOptions(Options):
    """Extra options of ``diffcore edit`` for molecules: which atoms keep their coordinates."""

    fix_atoms: list[int] | None = Field(
        None,
        description="0-based indices of atoms that keep the input's coordinates, e.g. 0,1,2 or 0-5 (in the order the "
        "domain gives the atoms: an SDF's atoms in file order, a SMILES's in SMILES order, then any hydrogens rdkit "
        "adds at the end)",
    )
    core: str | None = Field(None, description="a SMARTS: every atom it matches (all matches) keeps the input's coordinates")

    @field_validator("fix_atoms", mode="before")
    @classmethod
    def _indices(cls, v):
        if v is None or isinstance(v, int):
            return None if v is None else [v]
        items = [v] if isinstance(v, str) else list(v)
        out: list[int] = []
        for item in items:
            if isinstance(item, int):
                out.append(item)
                continue
            for part in str(item).replace(" ", "").split(","):
                m = re.fullmatch(r"(\d+)-(\d+)", part)
                if m:
                    a, b = int(m.group(1)), int(m.group(2))
                    if b < a:
                        raise ValueError(f"range {part!r} runs backwards (write the smaller index first)")
                    out += list(range(a, b + 1))
                elif re.fullmatch(r"-?\d+", part):
                    out.append(int(part))
                elif part:
                    raise ValueError(f"{part!r} is not an atom index (give 0-based integers like 0,1,2 or a range 0-5)")
        bad = [i for i in out if i < 0]
        if bad:
            raise ValueError(f"atom indices are 0-based and not negative (got {bad[0]})")
        return out


@dataclass
class EditInput:
    """One input molecule: its graph, its coordinates (Angstrom, the input's own frame) and
    the indices of its fixed atoms."""

    graph: D.MolGraph
    coords: np.ndarray
    fixed: list[int]
    what: str


# ------------------------------------------------------------------------------- inputs
def _read_file(path: Path, rules: D.Rules, what: str) -> list[tuple[str, Chem.Mol, str]]:
    """``(name, mol with its 3D conformer, what)`` per record of an SDF/MOL file; any bad
    record is an error naming it (an edit input is never skipped)."""
    D._quiet()
    if not path.is_file():
        raise UserError(f"{what}: file does not exist")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{what}: cannot read it ({e})") from None
    blocks = [b for b in re.split(r"^\$\$\$\$[^\n]*\n?", text, flags=re.M) if b.strip()]
    if not blocks:
        raise UserError(f"{what}: no molecule in the file (give an SDF or MOL file with 3D coordinates)")
    out = []
    for k, block in enumerate(blocks, 1):
        rec = f"{what} (record {k})" if len(blocks) > 1 else what
        mol = Chem.MolFromMolBlock(block, removeHs=False, sanitize=True)
        if mol is None:
            raise UserError(f"{rec}: unreadable or chemically invalid record (rdkit cannot parse or sanitise it)")
        if not D._is_3d(mol):
            raise UserError(f"{rec}: the record has no 3D coordinates (all z = 0); give a 3D structure, or the "
                            "molecule's SMILES to start from an rdkit conformer")
        name = mol.GetProp("_Name").strip() if mol.HasProp("_Name") else ""
        name = name or (f"{path.stem}-{k}" if len(blocks) > 1 else path.stem)
        out.append((name, D._check(mol, rules, rec), rec))
    return out


def _from_smiles(smiles: str, rules: D.Rules, what: str) -> Chem.Mol:
    mol = D.from_smiles(smiles, rules, what)
    coords = D.embed(mol, 1, seed=INPUT_SEED, mmff=True)
    if coords is None:
        raise UserError(f"{what}: rdkit could not embed a 3D conformer of this molecule to take coordinates from; "
                        "give an SDF file with 3D coordinates instead")
    return with_conformers(mol, [coords[0]])


def read_inputs(inputs: Sequence[str], rules: D.Rules) -> list[tuple[str, Chem.Mol, str]]:
    """``(name, mol with one 3D conformer, what)`` for each molecule the ``--input`` values
    give: a path ending in .sdf/.sd/.mol/.mdl is a file, anything else a SMILES."""
    if not inputs:
        raise UserError("no input: pass --input FILE.sdf (3D coordinates) or --input SMILES")
    out = []
    for k, item in enumerate(inputs, 1):
        item = str(item)
        if item.lower().endswith(FILE_SUFFIXES):
            out += _read_file(Path(item), rules, f"--input {item}")
            continue
        what = f"--input {item!r}"
        if Path(item).is_file():
            raise UserError(f"{what}: a file, but not an SDF/MOL file (.sdf, .sd, .mol, .mdl); give one of those or a SMILES")
        out.append((f"input-{k}", _from_smiles(item, rules, what), what))
    return out


def fixed_atoms(mol: Chem.Mol, options: MoleculeEditOptions, what: str) -> list[int]:
    """The sorted indices of the fixed atoms of ``mol``: ``--fix-atoms`` and ``--core`` matches."""
    n = mol.GetNumAtoms()
    fixed = set()
    for i in options.fix_atoms or []:
        if i >= n:
            hs = ", hydrogens included" if any(a.GetAtomicNum() == 1 for a in mol.GetAtoms()) else ""
            raise UserError(f"--fix-atoms {i}: out of range for {what}, which has {n} atoms (indices 0..{n - 1}{hs})")
        fixed.add(i)
    if options.core is not None:
        patt = Chem.MolFromSmarts(options.core)
        if patt is None or patt.GetNumAtoms() == 0:
            raise UserError(f"--core {options.core!r}: invalid SMARTS (rdkit cannot parse it)")
        matches = mol.GetSubstructMatches(patt, uniquify=True, maxMatches=10_000)
        if not matches:
            raise UserError(f"--core {options.core!r}: matches no atom of {what} ({D._canonical(mol)})")
        fixed.update(i for m in matches for i in m)
    return sorted(fixed)


def prepare(inputs: Sequence[str], rules: D.Rules, options) -> list[EditInput]:
    """Every input read, checked against the run's ``rules`` and its fixed atoms chosen."""
    o = options if options is not None else MoleculeEditOptions()
    if isinstance(o, dict):
        o = MoleculeEditOptions.model_validate(o)
    out = []
    for name, mol, what in read_inputs(inputs, rules):
        coords = mol.GetConformer().GetPositions()
        bare = Chem.Mol(mol)
        bare.RemoveAllConformers()
        out.append(EditInput(D.to_graph(name, bare, rules), coords, fixed_atoms(mol, o, what), what))
    return out


def edit_batches(domain, inputs: Sequence[str], num: int, batch_size: int, options=None) -> Iterable[Batch]:
    """``num`` edits of each input, in batches of at most ``batch_size`` (:func:`batches_of`)."""
    return batches_of(domain, prepare(inputs, domain.rules, options), num, batch_size)


def batches_of(domain, edits: list[EditInput], num: int, batch_size: int) -> Iterable[Batch]:
    """``num`` edits of each of ``edits``: the domain's sampling batches plus ``known``, ``keep``
    (``[B, N, 3]``), ``edits`` (the :class:`EditInput` per molecule) and, in ``cond``,
    ``fixed`` ``[B, N]`` and ``known``, for the EGNN's :func:`~diffcore_molecule.backbone.anchor`."""
    scale = domain._scale()
    known_of = []
    for e in edits:
        c = torch.as_tensor(e.coords, dtype=torch.float64)
        known_of.append(((c - c.mean(0)) / scale).float())  # centred over all atoms, as training data
    for batch in domain.graph_batches([e.graph for e in edits], num, batch_size):
        b, n, _ = batch["shape"]
        known, keep = torch.zeros(b, n, 3), torch.zeros(b, n, 3)
        for i, g in enumerate(batch["mol"]):
            k = known_of[g]
            known[i, : len(k)] = k
            if edits[g].fixed:
                keep[i, torch.tensor(edits[g].fixed)] = 1.0
        batch["known"], batch["keep"], batch["edits"] = known, keep, edits
        batch["source_cond"] = dict(batch["cond"])  # inversion: the input has the same graph (without, no graph at all)
        batch["cond"]["fixed"], batch["cond"]["known"] = keep[..., 0].clone(), known
        yield batch


# ------------------------------------------------------------------------------- output
def kabsch(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation ``r`` (proper) and translation ``t`` minimising ||p @ r.T + t - q||."""
    pc, qc = p.mean(0), q.mean(0)
    r = kabsch_rotation(torch.from_numpy(p - pc)[None], torch.from_numpy(q - qc)[None])[0].numpy()
    return r, qc - pc @ r.T


def align(coords: np.ndarray, ref: np.ndarray, fixed: Sequence[int]) -> tuple[np.ndarray, float]:
    """``coords`` moved rigidly onto ``ref`` by the fixed atoms (all atoms if none are fixed):
    Kabsch, or a translation when the fixed atoms are fewer than 3 or on a line (their
    orientation then carries no rotation); and the RMSD (Angstrom) of those atoms after it."""
    idx = list(fixed) or list(range(len(coords)))
    p, q = coords[idx], ref[idx]
    if len(idx) >= 3 and np.linalg.matrix_rank(p - p.mean(0), tol=1e-3) >= 2:
        r, t = kabsch(p, q)
        out = coords @ r.T + t
    else:
        out = coords + (q.mean(0) - p.mean(0))
    return out, float(np.sqrt(((out[idx] - q) ** 2).sum(-1).mean()))


def decode_edit(coords: np.ndarray, e: EditInput) -> tuple[np.ndarray, float, bool]:
    """An edited conformer (Angstrom) aligned onto its input, its fixed-atom RMSD and whether
    the specified stereocentres match. Mirroring (which fixes the generated centres, see
    :mod:`~diffcore_molecule.writer`) is used only where it keeps the fixed atoms in place."""
    out, rmsd = align(coords, e.coords, e.fixed)
    mirrored, _ = fix_chirality(e.graph.mol, coords)
    if mirrored is not coords:
        m_out, m_rmsd = align(mirrored, e.coords, e.fixed)
        if m_rmsd < rmsd + 1e-3:
            out, rmsd = m_out, m_rmsd
    same, ok = fix_chirality(e.graph.mol, out)
    return out, rmsd, ok and same is out  # the centres as written, not their mirror image


def collect(results) -> list[tuple[EditInput, list[tuple[np.ndarray, float, bool]]]]:
    """Per input molecule of ``results``: its edited conformers, aligned (see :func:`decode_edit`)."""
    groups: dict[int, tuple[EditInput, list]] = {}
    for x, batch in results:
        scale = float(batch["coord_scale"])
        for i, g in enumerate(batch["mol"]):
            e = batch["edits"][g]
            c = x[i, : e.graph.num_atoms].detach().double().cpu().numpy() * scale
            groups.setdefault(id(e), (e, []))[1].append(decode_edit(c, e))
    return list(groups.values())


def write_edits(results, out_dir: Path) -> list[Path]:
    """Per input molecule: ``NAME.sdf`` (its edited conformers, in the input's frame, with the
    properties ``fixed_atoms``, ``fixed_rmsd`` (``rmsd_to_input``, over all atoms, when none is
    fixed) and ``stereo_ok``), ``NAME-input.sdf`` (the input
    conformer) and ``NAME.png`` (input and up to three edits, fixed atoms highlighted)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, used = [], set()
    for e, confs in collect(results):
        stem, k = _slug(e.graph.name), 2
        while stem in used or (out_dir / f"{stem}.sdf").exists():
            stem, k = f"{_slug(e.graph.name)}-{k}", k + 1
        used.add(stem)
        mg = e.graph
        fixed = ",".join(map(str, e.fixed))
        m = with_conformers(mg.mol, [c for c, _, _ in confs])
        with Chem.SDWriter(str(out_dir / f"{stem}.sdf")) as w:
            for cid, (_, rmsd, ok) in enumerate(confs):
                m.SetProp("_Name", mg.name)
                m.SetProp("smiles", mg.smiles)
                m.SetProp("input", e.what)
                m.SetIntProp("conformer", cid)
                m.SetProp("fixed_atoms", fixed)
                m.SetDoubleProp("fixed_rmsd" if e.fixed else "rmsd_to_input", rmsd)
                m.SetProp("stereo_ok", "yes" if ok else "no")
                w.write(m, confId=cid)
        src = with_conformers(mg.mol, [e.coords])
        src.SetProp("_Name", mg.name)
        src.SetProp("fixed_atoms", fixed)
        with Chem.SDWriter(str(out_dir / f"{stem}-input.sdf")) as w:
            w.write(src)
        picture(e, [(c, r) for c, r, _ in confs[:3]], out_dir / f"{stem}.png")
        paths += [out_dir / f"{stem}.sdf", out_dir / f"{stem}-input.sdf", out_dir / f"{stem}.png"]
    return paths


_COLOURS = {"H": "#d0d0d0", "C": "#404040", "N": "#3050f8", "O": "#ff0d0d", "F": "#40c040", "S": "#d0a000"}


def picture(e: EditInput, edits: list[tuple[np.ndarray, float]], path: Path) -> None:
    """Input and edited conformers side by side, projected on the input's two main axes (all
    in the input's frame after alignment); fixed atoms ringed in orange, bonds between fixed
    atoms drawn in orange."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    mol = e.graph.mol
    centre = e.coords.mean(0)
    _, _, vt = np.linalg.svd(e.coords - centre)
    axes2 = vt[:2].T
    panels = [("input", e.coords, None)] + [(f"edit {k + 1}", c, r) for k, (c, r) in enumerate(edits)]
    xys = [(c - centre) @ axes2 for _, c, _ in panels]
    lo, hi = np.min([xy.min(0) for xy in xys], 0) - 0.6, np.max([xy.max(0) for xy in xys], 0) + 0.6
    aspect = float(np.clip((hi[1] - lo[1]) / (hi[0] - lo[0]), 0.45, 1.2))
    fig = Figure(figsize=(2.4 * len(panels), 2.4 * aspect + 0.6), dpi=80)
    FigureCanvasAgg(fig)
    fixed = set(e.fixed)
    for k, ((title, c, rmsd), xy) in enumerate(zip(panels, xys)):
        ax = fig.add_subplot(1, len(panels), k + 1)
        for bond in mol.GetBonds():
            i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
            both = i in fixed and j in fixed
            ax.plot(xy[[i, j], 0], xy[[i, j], 1], color="#ff8c00" if both else "#909090", lw=3 if both else 1.5, zorder=1)
        for a in mol.GetAtoms():
            i, sym = a.GetIdx(), a.GetSymbol()
            size = 18 if sym == "H" else 45
            ax.scatter(*xy[i], s=size, color=_COLOURS.get(sym, "#a000a0"), zorder=3,
                       edgecolors="#ff8c00" if i in fixed else "none", linewidths=2.0)
        what = "fixed RMSD" if e.fixed else "RMSD to input"
        ax.set_title(title if rmsd is None else f"{title}: {what} {rmsd:.3f} Å", fontsize=8)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{e.graph.name}  {e.graph.smiles}  (orange: fixed atoms)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
