"""Molecules in, graph features and reference conformers out.

A molecule enters as a SMILES string, a line of a SMILES file or an SDF record, and leaves as
a :class:`MolGraph`: the rdkit molecule (explicit hydrogens when the domain models them),
its atom features ``[N, F]``, its pair features ``[N, N, E]`` and its reference conformers
``[K, N, 3]`` in Angstrom, centred. References are rdkit's ETKDG v3 embeddings (Riniker &
Landrum 2015, Wang et al. 2020) optimised with MMFF94, as in the GEOM-free setups of
GeoDiff and torsional diffusion; a data set is built once and cached as an SDF file in the
domain's workdir.

The embedded default: the small molecules (only H, C, N, O, F; one fragment; at most
``max_atoms`` atoms) of the NCI SMILES set that ships in rdkit's own data folder
(``RDConfig.RDDataDir/NCI/first_5K.smi``), so nothing is ever downloaded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rdkit import Chem, RDConfig, RDLogger, rdBase
from rdkit.Chem import AllChem

from diffcore import UserError

from .progress import reported

log = logging.getLogger("diffcore.molecule")

DEFAULT_ELEMENTS = ("H", "C", "N", "O", "F")
DEFAULT_SMILES_FILE = Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
CACHE_FORMAT = 2  # bump when the cached file's meaning changes

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
    molecule only asks to be sampled)."""

    name: str
    smiles: str
    mol: Chem.Mol
    atoms: torch.Tensor
    pairs: torch.Tensor
    coords: torch.Tensor | None = None

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
    """Apply ``rules`` to a sanitised molecule; returns it with hydrogens as configured."""
    if mol.GetNumAtoms() == 0:
        raise MoleculeError(f"{what}: the molecule has no atoms")
    frags = len(Chem.GetMolFrags(mol))
    if frags > 1:
        raise MoleculeError(f"{what}: {frags} disconnected fragments; give one molecule (no '.' salts or mixtures)")
    bad = sorted({a.GetSymbol() for a in mol.GetAtoms()} - set(rules.elements))
    if bad:
        raise MoleculeError(
            f"{what}: unsupported element(s) {', '.join(bad)}; this model knows {', '.join(rules.elements)} "
            "(set data.elements to train a model on others)"
        )
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


def _canonical(mol: Chem.Mol) -> str:
    return Chem.MolToSmiles(Chem.RemoveHs(mol))


def read_smiles_file(path: Path, rules: Rules) -> list[tuple[str, Chem.Mol]]:
    """``(name, mol)`` for each good line of a SMILES file: one SMILES per line, optionally
    followed by whitespace and a name; blank lines and ``#`` comments are ignored. A bad line
    is reported (file and line number) and skipped; a file with no good line is an error."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"SMILES file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read SMILES file {path}: {e}") from None
    out, skipped = [], 0
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        name = parts[1].strip() if len(parts) > 1 else f"{path.stem}-{lineno}"
        try:
            out.append((name, from_smiles(parts[0], rules, f"{path}:{lineno}")))
        except MoleculeError as e:
            skipped += 1
            log.warning("skipped %s", e)
    if skipped:
        log.warning("%s: skipped %d bad line(s), kept %d molecule(s)", path, skipped, len(out))
    if not out:
        raise UserError(f"SMILES file {path} has no usable molecule (one SMILES per line, optionally followed by a name)")
    return out


def _is_3d(mol: Chem.Mol) -> bool:
    if mol.GetNumConformers() == 0:
        return False
    pos = mol.GetConformer().GetPositions()
    return bool(np.abs(pos[:, 2]).max() > 1e-4)


def read_sdf(path: Path, rules: Rules) -> list[tuple[str, Chem.Mol]]:
    """``(name, mol)`` per molecule of an SDF file. Records of the same molecule (same
    canonical SMILES) become conformers of one molecule; 3D records are used as its reference
    conformers, 2D ones only for the graph. An unreadable record is reported (record number
    and line) and skipped."""
    _quiet()
    path = Path(path)
    if not path.is_file():
        raise UserError(f"SDF file {path} does not exist")
    try:
        block = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read SDF file {path}: {e}") from None
    records, lines, start = [], [], 1
    for lineno, line in enumerate(block.splitlines(), 1):
        if line.startswith("$$$$"):
            records.append((start, "\n".join(lines)))
            lines, start = [], lineno + 1
        else:
            lines.append(line)
    if any(line.strip() for line in lines):  # a last record without its '$$$$'
        records.append((start, "\n".join(lines)))
    groups: dict[str, tuple[str, Chem.Mol]] = {}
    skipped = 0
    for k, (start, text) in enumerate(records, 1):
        what = f"{path}: record {k} (line {start})"
        mol = Chem.MolFromMolBlock(text, removeHs=False, sanitize=True)
        if mol is None:
            skipped += 1
            log.warning("skipped %s: unreadable or chemically invalid record", what)
            continue
        try:
            has3d = _is_3d(mol)
            if not has3d:
                mol.RemoveAllConformers()
            mol = _check(mol, rules, what)
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
    if skipped:
        log.warning("%s: skipped %d bad record(s), kept %d molecule(s)", path, skipped, len(groups))
    if not groups:
        raise UserError(f"SDF file {path} has no usable molecule")
    return list(groups.values())


def embed(mol: Chem.Mol, num: int, seed: int, mmff: bool = True) -> np.ndarray | None:
    """``[num, N, 3]`` conformers of ``mol`` (ETKDG v3, then MMFF94 if ``mmff``), or ``None``
    if rdkit cannot embed it."""
    _quiet()
    m = Chem.Mol(mol)
    m.RemoveAllConformers()
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    ids = list(AllChem.EmbedMultipleConfs(m, num, params))
    if not ids:
        return None
    if mmff and AllChem.MMFFHasAllMoleculeParams(m):
        AllChem.MMFFOptimizeMoleculeConfs(m, maxIters=1000)
    return np.stack([m.GetConformer(i).GetPositions() for i in ids])


def to_graph(name: str, mol: Chem.Mol, rules: Rules, coords: np.ndarray | None = None) -> MolGraph:
    """Features of ``mol`` (and its reference conformers, centred, if given)."""
    c = None
    if coords is not None:
        c = torch.as_tensor(np.asarray(coords), dtype=torch.float32)
        c = c - c.mean(dim=1, keepdim=True)
    return MolGraph(name, _canonical(mol), mol, atom_features(mol, rules.elements), pair_features(mol), c)


# ------------------------------------------------------------------------- data set building
@dataclass(frozen=True)
class Source:
    """Where molecules come from: the default NCI set, a SMILES file or an SDF file."""

    smiles: Path | None = None
    sdf: Path | None = None

    def describe(self) -> str:
        return str(self.sdf or self.smiles or f"rdkit's NCI set ({DEFAULT_SMILES_FILE.name})")

    def fingerprint(self) -> str:
        path = self.sdf or self.smiles or DEFAULT_SMILES_FILE
        try:
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:
            digest = "missing"
        return f"{'sdf' if self.sdf else 'smiles'}:{digest}"


def _read_default(rules: Rules) -> list[tuple[str, Chem.Mol]]:
    """The NCI molecules that fit ``rules`` (bad or unsuitable lines are skipped silently:
    this is a filter, not a user's file)."""
    _quiet()
    out, seen = [], set()
    for line in DEFAULT_SMILES_FILE.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        try:
            mol = from_smiles(parts[0], rules)
        except MoleculeError:
            continue
        heavy = sum(a.GetAtomicNum() > 1 for a in mol.GetAtoms())
        key = _canonical(mol)
        if heavy < 3 or key in seen:
            continue
        seen.add(key)
        out.append((f"NCI-{parts[1]}" if len(parts) > 1 else f"NCI-{len(out)}", mol))
    return out


def build(source: Source, rules: Rules, *, conformers: int, seed: int, mmff: bool,
          max_molecules: int | None, workdir: Path | None) -> list[MolGraph]:
    """The molecules of ``source`` with ``conformers`` references each, from the cache in
    ``workdir`` when it was built before with the same settings."""
    key = json.dumps(
        {"format": CACHE_FORMAT, "source": source.fingerprint(), "elements": rules.elements,
         "max_atoms": rules.max_atoms, "hydrogens": rules.hydrogens, "conformers": conformers, "seed": seed,
         "mmff": mmff, "max_molecules": max_molecules, "rdkit": rdBase.rdkitVersion},
        sort_keys=True,
    )
    cache = None
    if workdir is not None:
        cache = Path(workdir) / f"molecules-{hashlib.sha256(key.encode()).hexdigest()[:16]}.sdf"
        if cache.is_file():
            graphs = _load_cache(cache, rules)
            if graphs:
                return graphs
            log.warning("ignoring unreadable molecule cache %s; rebuilding it", cache)

    if source.sdf is not None:
        mols = read_sdf(source.sdf, rules)
    elif source.smiles is not None:
        mols = read_smiles_file(source.smiles, rules)
    else:
        mols = _read_default(rules)
    if max_molecules is not None:
        mols = mols[:max_molecules]
    graphs = []  # minutes for the default set: progress on stderr (none when the cache serves)
    for i, (name, mol) in enumerate(reported(mols, f"building reference conformers of {source.describe()}", "molecules")):
        if mol.GetNumConformers() > 0:  # 3D structures given in an SDF file: they are the references
            coords = np.stack([c.GetPositions() for c in mol.GetConformers()])
        else:
            coords = embed(mol, conformers, seed + i, mmff)
        if coords is None:
            log.warning("skipped %s (%s): rdkit could not embed a 3D conformer", name, _canonical(mol))
            continue
        m = Chem.Mol(mol)
        m.RemoveAllConformers()
        graphs.append(to_graph(name, m, rules, coords))
    if not graphs:
        raise UserError(f"no molecule of {source.describe()} could be used")
    if cache is not None:
        _write_cache(cache, graphs)
    return graphs


def _write_cache(path: Path, graphs: list[MolGraph]) -> None:
    """One SDF record per reference conformer. The graph itself travels in the first record
    of each molecule as rdkit's binary molecule format (base64; not a Python pickle): read
    back from 3D coordinates alone, rdkit would assign stereo the input left unspecified."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with Chem.SDWriter(str(tmp)) as w:
        for i, g in enumerate(graphs):
            for k in range(len(g.coords)):
                m = Chem.Mol(g.mol)
                conf = Chem.Conformer(g.num_atoms)
                for a, p in enumerate(g.coords[k].double().tolist()):
                    conf.SetAtomPosition(a, p)
                conf.Set3D(True)
                m.AddConformer(conf, assignId=True)
                m.SetProp("_Name", g.name)
                m.SetIntProp("diffcore_mol", i)
                if k == 0:
                    m.SetProp("diffcore_graph", base64.b64encode(g.mol.ToBinary()).decode())
                w.write(m)
    os.replace(tmp, path)


def _load_cache(path: Path, rules: Rules) -> list[MolGraph]:
    _quiet()
    graphs: list[MolGraph] = []
    current, coords = None, []

    def flush():
        if current is not None:
            graph = Chem.Mol(base64.b64decode(current.GetProp("diffcore_graph")))
            graphs.append(to_graph(current.GetProp("_Name"), graph, rules, np.stack(coords)))

    try:
        for m in Chem.SDMolSupplier(str(path), removeHs=False, sanitize=False):
            if m is None:
                return []
            if current is None or m.GetIntProp("diffcore_mol") != current.GetIntProp("diffcore_mol"):
                flush()
                current, coords = m, []
            coords.append(m.GetConformer().GetPositions())
        flush()
    except (KeyError, RuntimeError, ValueError):  # a damaged or foreign file: rebuild
        return []
    return graphs


def split(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Training and held-out molecule indices: a seeded permutation, split by molecule."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = 0 if n < 2 else min(n - 1, max(1, round(val_fraction * n)))
    return sorted(perm[n_val:]), sorted(perm[:n_val])
