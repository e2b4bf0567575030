"""Molecules in, graph features and reference conformers out.

A molecule enters as a SMILES string, a line of a SMILES file or an SDF record, and leaves as
a :class:`MolGraph`: the rdkit molecule (explicit hydrogens when the domain models them),
its atom features ``[N, F]``, its pair features ``[N, N, E]`` and its reference conformers
``[K, N, 3]`` in Angstrom, centred. References come from a classical conformer search
(:func:`diffcore_molecule.druglike.search`): ETKDG v3 embeddings (Riniker & Landrum 2015,
Wang et al. 2020), oversampled, optimised with MMFF94, kept within an energy window and
pruned by heavy-atom RMSD; a data set is built once and cached as an SDF file in the
domain's workdir.

Molecules: H, C, N, O, F, P, S, Cl, Br, I; formal charges and specified stereo are kept; a
salt or mixture keeps its largest fragment (with a warning); radicals are refused. The
embedded default is the drug-like training set of :mod:`diffcore_molecule.druglike` (files
that ship inside rdkit, so nothing is ever downloaded); :func:`build_test` gives its held-out
test set of real ligands with references.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rdkit import Chem, RDConfig, RDLogger, rdBase

from diffcore import UserError

from . import druglike as G
from .progress import reported

log = logging.getLogger("diffcore.molecule")

DEFAULT_ELEMENTS = G.ELEMENTS  # H, C, N, O, F, P, S, Cl, Br, I
DEFAULT_SMILES_FILE = Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"  # one of the default set's files
CACHE_FORMAT = 3  # bump when the cached file's meaning changes

_HYBRID = (Chem.HybridizationType.SP, Chem.HybridizationType.SP2, Chem.HybridizationType.SP3)
_CHARGES = (-1, 0, 1)
_BOND_TYPES = (Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE, Chem.BondType.AROMATIC)
MAX_HOPS = 3  # graph distances 1..3 get their own channel (bond, angle, torsion), farther pairs share one


def atom_feature_dim(num_elements: int) -> int:
    """element one-hot + hybridisation (sp, sp2, sp3, other) + charge (-1, 0, +1) + degree
    (0..4+) + attached hydrogens (0..3+) + aromatic + in ring."""
    return num_elements + 4 + 3 + 5 + 4 + 2


#: bond type (4) + graph distance 1, 2, 3, >3 (4) + same ring + conjugated bond
PAIR_FEATURE_DIM = 4 + (MAX_HOPS + 1) + 2


def atom_features(mol: Chem.Mol, elements: tuple[str, ...]) -> torch.Tensor:
    """``[N, atom_feature_dim]`` float features of the atoms of ``mol``."""
    feats = torch.zeros(mol.GetNumAtoms(), atom_feature_dim(len(elements)))
    index = {e: i for i, e in enumerate(elements)}
    ne = len(elements)
    for a in mol.GetAtoms():
        i = a.GetIdx()
        feats[i, index[a.GetSymbol()]] = 1
        hyb = a.GetHybridization()
        feats[i, ne + (_HYBRID.index(hyb) if hyb in _HYBRID else 3)] = 1
        feats[i, ne + 4 + _CHARGES.index(max(-1, min(1, a.GetFormalCharge())))] = 1
        feats[i, ne + 7 + min(a.GetDegree(), 4)] = 1
        feats[i, ne + 12 + min(a.GetTotalNumHs(), 3)] = 1
        feats[i, ne + 16] = float(a.GetIsAromatic())
        feats[i, ne + 17] = float(a.IsInRing())
    return feats


def pair_features(mol: Chem.Mol) -> torch.Tensor:
    """``[N, N, PAIR_FEATURE_DIM]`` features of every atom pair: the bond type if bonded, the
    graph distance in hops (the extended graph of GeoDiff: bonds, angles, torsions), whether
    both atoms share a ring, and conjugation. The diagonal is zero."""
    n = mol.GetNumAtoms()
    feats = torch.zeros(n, n, PAIR_FEATURE_DIM)
    for b in mol.GetBonds():
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        bt = b.GetBondType()
        k = _BOND_TYPES.index(bt) if bt in _BOND_TYPES else 0
        feats[i, j, k] = feats[j, i, k] = 1
        feats[i, j, -1] = feats[j, i, -1] = float(b.GetIsConjugated())
    hops = torch.as_tensor(Chem.GetDistanceMatrix(mol), dtype=torch.float32)
    hops = hops.clamp(max=MAX_HOPS + 1).long()  # unconnected pairs (1e8) -> the "far" channel
    off = ~torch.eye(n, dtype=torch.bool)
    onehot = torch.nn.functional.one_hot(hops.clamp(min=1) - 1, MAX_HOPS + 1).float()
    feats[..., 4 : 4 + MAX_HOPS + 1] = onehot * off[..., None]
    ring = mol.GetRingInfo()
    for r in ring.AtomRings():
        idx = torch.tensor(r)
        feats[idx[:, None], idx[None, :], 4 + MAX_HOPS + 1] = 1
    feats[..., 4 + MAX_HOPS + 1] *= off
    return feats


@dataclass
class MolGraph:
    """One molecule: its rdkit ``mol`` (the atoms the model sees, in order), features, and
    reference conformers in Angstrom (``coords [K, N, 3]``, centred; ``None`` when the
    molecule only asks to be sampled), with their force-field energies in kcal/mol
    (``energies [K]``, lowest first; ``None`` when unknown, e.g. given in an SDF file)."""

    name: str
    smiles: str
    mol: Chem.Mol
    atoms: torch.Tensor
    pairs: torch.Tensor
    coords: torch.Tensor | None = None
    energies: torch.Tensor | None = None

    @property
    def num_atoms(self) -> int:
        return self.mol.GetNumAtoms()


@dataclass(frozen=True)
class Rules:
    """What a molecule must satisfy to be modelled."""

    elements: tuple[str, ...] = DEFAULT_ELEMENTS
    max_atoms: int = 24
    hydrogens: bool = True


class MoleculeError(UserError):
    """A molecule that cannot be modelled (invalid, unsupported element, too large...)."""


def _quiet():
    """Silence rdkit's own stderr chatter: we report problems ourselves, naming the input."""
    RDLogger.DisableLog("rdApp.*")


def _check(mol: Chem.Mol, rules: Rules, what: str) -> Chem.Mol:
    """Apply ``rules`` to a sanitised molecule; returns it with hydrogens as configured (added
    with coordinates when it has a conformer). A salt or mixture keeps its largest fragment
    (by heavy atoms), with a warning naming ``what``."""
    if mol.GetNumAtoms() == 0:
        raise MoleculeError(f"{what}: the molecule has no atoms")
    frags = len(Chem.GetMolFrags(mol))
    if frags > 1:
        mol = G.largest_fragment(mol)
        log.warning("%s: %d fragments (a salt or mixture): kept the largest, %s", what, frags, _canonical(mol))
    bad = sorted({a.GetSymbol() for a in mol.GetAtoms()} - set(rules.elements))
    if bad:
        raise MoleculeError(
            f"{what}: unsupported element(s) {', '.join(bad)}; this model knows {', '.join(rules.elements)} "
            "(set data.elements to train a model on others)"
        )
    radicals = sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms())
    if radicals:
        raise MoleculeError(f"{what}: a radical ({radicals} unpaired electron(s)); give the closed-shell molecule "
                            "(check charges and hydrogens, e.g. [CH3] -> C)")
    mol = Chem.AddHs(mol, addCoords=mol.GetNumConformers() > 0) if rules.hydrogens else Chem.RemoveHs(mol)
    if mol.GetNumAtoms() > rules.max_atoms:
        hs = "including hydrogens" if rules.hydrogens else "heavy atoms"
        raise MoleculeError(
            f"{what}: {mol.GetNumAtoms()} atoms ({hs}) is more than the configured maximum of {rules.max_atoms} "
            "(data.max_atoms)"
        )
    return mol


def from_smiles(smiles: str, rules: Rules, what: str | None = None) -> Chem.Mol:
    """Parse and check one SMILES; raises :class:`MoleculeError` naming ``what``."""
    _quiet()
    what = what or f"SMILES {smiles!r}"
    smiles = smiles.strip()
    if not smiles:
        raise MoleculeError(f"{what}: empty SMILES")
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise MoleculeError(f"{what}: invalid SMILES {smiles!r} (rdkit cannot parse or sanitise it)")
    return _check(mol, rules, what)


def unspecified_stereo(mol: Chem.Mol) -> tuple[int, int]:
    """How many stereocentres and stereo double bonds ``mol`` leaves unspecified (``(0, 0)``:
    all specified). A protonated amine's N is not counted: its proton exchanges, so it has no
    fixed configuration."""
    m = Chem.Mol(mol)
    found = [si for si in Chem.FindPotentialStereo(m) if si.specified == Chem.StereoSpecified.Unspecified]
    atoms = sum(si.type == Chem.StereoType.Atom_Tetrahedral and not _exchanging(m.GetAtomWithIdx(si.centeredOn)) for si in found)
    return atoms, sum(si.type == Chem.StereoType.Bond_Double for si in found)


def _exchanging(atom: Chem.Atom) -> bool:
    return atom.GetSymbol() == "N" and atom.GetFormalCharge() > 0 and atom.GetTotalNumHs(includeNeighbors=True) > 0


def _canonical(mol: Chem.Mol) -> str:
    return Chem.MolToSmiles(Chem.RemoveHs(mol))


def read_smiles_file(path: Path, rules: Rules) -> list[tuple[str, Chem.Mol]]:
    """``(name, mol)`` for each good line of a SMILES file: one SMILES per line, optionally
    followed by whitespace and a name; blank lines, ``#`` comments and a first line of column
    names (``SMILES Name``) are ignored. A bad line
    is reported (file and line number) and skipped; a file with no good line is an error."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"SMILES file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read SMILES file {path}: {e}") from None
    if "$$$$" in text or "V2000" in text or "V3000" in text:
        raise UserError(f"{path} looks like an SDF file, not SMILES (one per line); give its molecules as SMILES, "
                        "or train on it with --set data.sdf=FILE")
    out, skipped, first = [], 0, True
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if first and parts[0].lower() in ("smiles", "smi", "canonical_smiles"):  # a header ("SMILES Name"), as RDKit's files have
            first = False
            continue
        first = False
        name = parts[1].strip() if len(parts) > 1 else f"{path.stem}-{lineno}"
        try:
            mol = from_smiles(parts[0], rules, f"{path}:{lineno}")
            mol.SetProp("diffcore_where", f"{path}:{lineno}")  # for the build's messages
            out.append((name, mol))
        except MoleculeError as e:
            skipped += 1
            log.warning("skipped %s", e)
    if skipped:
        log.warning("%s: skipped %d bad line(s), kept %d molecule(s)", path, skipped, len(out))
    if not out:
        raise UserError(f"SMILES file {path} has no usable molecule (one SMILES per line, optionally followed by a name)")
    return out


def _is_3d(mol: Chem.Mol) -> bool:
    return mol.GetNumConformers() > 0 and bool(np.abs(mol.GetConformer().GetPositions()[:, 2]).max() > 1e-4)


def read_sdf(path: Path, rules: Rules) -> list[tuple[str, Chem.Mol]]:
    """``(name, mol)`` per molecule of an SDF file. Records of the same molecule (same
    canonical SMILES) become conformers of one molecule; 3D records are used as its reference
    conformers, 2D ones only for the graph (their references are generated). Records without
    hydrogens get them, with 3D coordinates (``Chem.AddHs(addCoords=True)``); both are said
    once per file. An unreadable record is reported (record number and line) and skipped."""
    _quiet()
    path = Path(path)
    if not path.is_file():
        raise UserError(f"SDF file {path} does not exist")
    try:
        block = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read SDF file {path}: {e}") from None
    records = G.sdf_records(block)
    groups: dict[str, tuple[str, Chem.Mol]] = {}
    skipped, flat, bare = 0, [], []
    for k, (start, text) in enumerate(records, 1):
        what = f"{path}: record {k} (line {start})"
        mol = Chem.MolFromMolBlock(text, removeHs=False, sanitize=True)
        if mol is None:
            skipped += 1
            log.warning("skipped %s: unreadable or chemically invalid record", what)
            continue
        try:
            if not _is_3d(mol):
                flat.append(k)
                mol.RemoveAllConformers()
            elif rules.hydrogens and any(a.GetTotalNumHs() for a in mol.GetAtoms()):
                bare.append(k)
            mol = _check(mol, rules, what)
            mol.SetProp("diffcore_where", what)
        except MoleculeError as e:
            skipped += 1
            log.warning("skipped %s", e)
            continue
        key = _canonical(mol)
        name = mol.GetProp("_Name").strip() if mol.HasProp("_Name") and mol.GetProp("_Name").strip() else f"{path.stem}-{k}"
        if key not in groups:
            groups[key] = (name, mol)
            continue
        first = groups[key][1]
        if mol.GetNumConformers() == 0:
            continue
        match = first.GetSubstructMatch(mol)
        if len(match) != mol.GetNumAtoms():
            skipped += 1
            log.warning("skipped %s: same molecule as an earlier record but its atoms cannot be matched", what)
            continue
        pos = mol.GetConformer().GetPositions()
        conf = Chem.Conformer(first.GetNumAtoms())
        for k_atom, target in enumerate(match):
            conf.SetAtomPosition(target, pos[k_atom].tolist())
        conf.Set3D(True)
        first.AddConformer(conf, assignId=True)
    if flat:
        log.warning("%s: %d record(s) without 3D coordinates (first: record %d) give only the graph; their "
                    "reference conformers are generated", path, len(flat), flat[0])
    if bare:
        log.warning("%s: %d 3D record(s) without hydrogens (first: record %d): hydrogens added with 3D "
                    "coordinates", path, len(bare), bare[0])
    if skipped:
        log.warning("%s: skipped %d bad record(s), kept %d molecule(s)", path, skipped, len(groups))
    if not groups:
        raise UserError(f"SDF file {path} has no usable molecule")
    return list(groups.values())


def embed(mol: Chem.Mol, num: int, seed: int, mmff: bool = True, *, oversample: int = 1,
          energy_window: float | None = None, prune_rms: float | None = None, threads: int = 1,
          what: str = "molecule") -> np.ndarray | None:
    """``[k, N, 3]`` conformers of ``mol`` (ETKDG v3, then MMFF94 if ``mmff``; UFF where MMFF94
    has no parameters), or ``None`` if rdkit cannot embed it. With the defaults k = ``num``
    (the embeddings in ETKDG's order: the plain baseline of the metrics and the input
    conformer of an edit); ``oversample``, ``energy_window`` (kcal/mol) and ``prune_rms``
    (Angstrom) make it the search of :func:`diffcore_molecule.druglike.search` (lowest energy
    first, 1 <= k <= ``num``)."""
    _quiet()
    found = G.search(mol, num, seed, oversample=oversample, energy_window=energy_window, prune_rms=prune_rms,
                     optimise=mmff, threads=threads, what=what)
    return None if found is None else found[0]


def to_graph(name: str, mol: Chem.Mol, rules: Rules, coords: np.ndarray | None = None,
             energies: np.ndarray | None = None) -> MolGraph:
    """Features of ``mol`` (and its reference conformers, centred, and their energies, if given)."""
    c = e = None
    if coords is not None:
        c = torch.as_tensor(np.asarray(coords), dtype=torch.float32)
        c = c - c.mean(dim=1, keepdim=True)
    if energies is not None:
        e = torch.as_tensor(np.asarray(energies), dtype=torch.float64)
    return MolGraph(name, _canonical(mol), mol, atom_features(mol, rules.elements), pair_features(mol), c, e)


# ------------------------------------------------------------------------- data set building
@dataclass(frozen=True)
class Source:
    """Where molecules come from: the default drug-like training set, a SMILES file or an SDF file."""

    smiles: Path | None = None
    sdf: Path | None = None

    def describe(self) -> str:
        return str(self.sdf or self.smiles or G.TRAINING_SOURCE)

    def fingerprint(self) -> str:
        if self.sdf is None and self.smiles is None:
            return f"druglike:{G.fingerprint()}"
        try:
            digest = hashlib.sha256(Path(self.sdf or self.smiles).read_bytes()).hexdigest()
        except OSError:
            digest = "missing"
        return f"{'sdf' if self.sdf else 'smiles'}:{digest}"


def _fitting(mols: list[tuple[str, Chem.Mol]], rules: Rules, warn: bool, limit: int | None = None) -> list[tuple[str, Chem.Mol]]:
    """The molecules that fit ``rules`` (the first ``limit`` of them); the others are left out
    (with a warning if ``warn``)."""
    _quiet()
    out = []
    for name, mol in mols:
        if limit is not None and len(out) >= limit:
            break
        try:
            out.append((name, _check(mol, rules, f"molecule {name}")))
        except MoleculeError as e:
            (log.warning if warn else log.debug)("left out %s", e)
    return out


def build(source: Source, rules: Rules, *, conformers: int, seed: int, mmff: bool,
          max_molecules: int | None, workdir: Path | None, oversample: int = 3, energy_window: float | None = 10.0,
          prune_rms: float | None = 0.5, max_heavy: int | None = None, min_heavy: int = 6,
          threads: int = 1) -> list[MolGraph]:
    """The molecules of ``source`` with at most ``conformers`` references each (fewer when the
    search finds fewer distinct ones within the window; at least one), from the cache in
    ``workdir`` when it was built before with the same settings.

    References: 3D records of an SDF file as given; otherwise the search of
    :func:`diffcore_molecule.druglike.search` (``oversample``, ``energy_window`` in kcal/mol,
    ``prune_rms`` in Angstrom, MMFF94 if ``mmff``), seeded by ``seed`` + the molecule's index.
    A molecule ETKDG cannot embed (e.g. impossible stereo) is skipped with a warning naming it
    (and its file line). The default source is :func:`diffcore_molecule.druglike.training_molecules`
    with ``min_heavy``..``max_heavy`` heavy atoms (None: ``rules.max_atoms``), then ``rules``;
    ``max_molecules`` keeps the first ones (of a file: in file order)."""
    default = source.sdf is None and source.smiles is None
    key = {"source": source.fingerprint(), "max_molecules": max_molecules,
           **({"max_heavy": max_heavy, "min_heavy": min_heavy} if default else {})}

    def read():
        if source.sdf is not None:
            mols = read_sdf(source.sdf, rules)
        else:
            mols = read_smiles_file(source.smiles, rules) if not default else _fitting(G.training_molecules(
                max_heavy if max_heavy is not None else rules.max_atoms, min_heavy), rules, warn=False, limit=max_molecules)
        return mols[:max_molecules] if max_molecules is not None else mols

    search = {"oversample": oversample, "energy_window": energy_window, "prune_rms": prune_rms, "optimise": mmff}
    return _build(read, source.describe(), "molecules", key, rules, conformers, seed, search, workdir, threads)


def build_test(rules: Rules, conformers: int, seed: int, workdir: Path | None, *, mmff: bool = True,
               oversample: int = 3, energy_window: float | None = 10.0, prune_rms: float | None = 0.5,
               threads: int = 1) -> list[MolGraph]:
    """The held-out drug-like test set (:func:`diffcore_molecule.druglike.test_molecules`: 40
    ligands of 17-35 heavy atoms, never in the default training set) with references found
    as in :func:`build`, cached in ``workdir`` (``test-molecules-*.sdf``). Molecules that do
    not fit ``rules`` (elements, ``max_atoms``) are left out with a warning naming them."""
    def read():
        return _fitting(G.test_molecules(), rules, warn=True)

    search = {"oversample": oversample, "energy_window": energy_window, "prune_rms": prune_rms, "optimise": mmff}
    key = {"source": f"druglike-test:{G.fingerprint()}"}
    return _build(read, G.TEST_SOURCE, "test-molecules", key, rules, conformers, seed, search, workdir, threads)


def _build(read, describe: str, stem: str, key: dict, rules: Rules, conformers: int, seed: int, search: dict,
           workdir: Path | None, threads: int) -> list[MolGraph]:
    text = json.dumps({"format": CACHE_FORMAT, **key, **search, "conformers": conformers, "seed": seed,
                       "elements": rules.elements, "max_atoms": rules.max_atoms, "hydrogens": rules.hydrogens,
                       "rdkit": rdBase.rdkitVersion}, sort_keys=True)
    cache = None
    if workdir is not None:
        cache = Path(workdir) / f"{stem}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.sdf"
        if cache.is_file():
            graphs = _load_cache(cache, rules)
            if graphs:
                return graphs
            log.warning("ignoring unreadable molecule cache %s; rebuilding it", cache)
    mols = read()
    graphs = []  # minutes for the default set: progress on stderr (none when the cache serves)
    for i, (name, mol) in enumerate(reported(mols, f"building reference conformers of {describe}", "molecules")):
        where = mol.GetProp("diffcore_where") if mol.HasProp("diffcore_where") else name
        found = None
        if mol.GetNumConformers() > 0:  # 3D structures given in an SDF file: they are the references
            found = np.stack([c.GetPositions() for c in mol.GetConformers()]), None
        else:
            found = G.search(mol, conformers, seed + i, threads=threads, what=where, **search)
        if found is None:
            log.warning("skipped %s (%s, %s): rdkit's ETKDG could not embed a 3D conformer keeping its stereo "
                        "(impossible stereo or a strained ring system?)", where, name, _canonical(mol))
            continue
        m = Chem.Mol(mol)
        m.RemoveAllConformers()
        graphs.append(to_graph(name, m, rules, *found))
    if len(graphs) < len(mols):
        log.warning("%s: %d molecule(s) could not be embedded and were skipped, %d kept", describe,
                    len(mols) - len(graphs), len(graphs))
    if not graphs:
        raise UserError(f"no molecule of {describe} could be used")
    if cache is not None:
        _write_cache(cache, graphs)
    return graphs


def _write_cache(path: Path, graphs: list[MolGraph]) -> None:
    G.write_ensembles(path, [(g.name, g.mol, g.coords.double().numpy(), None if g.energies is None else
                              g.energies.numpy()) for g in graphs])


def _load_cache(path: Path, rules: Rules) -> list[MolGraph]:
    _quiet()
    return [to_graph(name, mol, rules, coords, energies) for name, mol, coords, energies in G.read_ensembles(path)]


def split(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Training and held-out molecule indices: a seeded permutation, split by molecule."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = 0 if n < 2 else min(n - 1, max(1, round(val_fraction * n)))
    return sorted(perm[n_val:]), sorted(perm[:n_val])
