"""Drug-like molecules that ship inside rdkit (nothing is downloaded), and their reference
ensembles from a thorough classical conformer search.

**Test set** (:func:`test_molecules`): real ligands from the medicinal-chemistry examples of
rdkit's ``Contrib`` folder: CDK2 ligands (``Fastcluster/cdk2.smi``), the ChEMBL actives of
``fraggle/data/ChEMBL_11265_actives.smi``, the sulfonamides of
``FreeWilson/data/CHEMBL2321810.smi`` and the c-Met ligands of
``FreeWilson/data/cmet_ligands.sdf``; 17-35 heavy atoms, largest fragment, hydrogens added.
These four files (and ``Fastcluster/testdata/cdk2.sdf``, the same CDK2 ligands) never feed
the training set.

**Training set** (:func:`training_molecules`): rdkit's NCI set (``Data/NCI/first_5K.smi``), the
WEHI screening compounds of ``Data/Pains/test_data/wehi_mols.csv``, the ZINC molecules of
``Contrib/SA_Score/data/zim.100.txt`` and the EGFR ligands of ``Contrib/PBF/testData/egfr.sdf``,
minus every test molecule (isomeric and non-isomeric canonical SMILES).

**Reference ensembles** (:func:`search`): ETKDG v3 with ``oversample`` x K embeddings, MMFF94
optimisation to convergence (UFF where MMFF94 has no parameters), conformers whose specified
stereo changed dropped, an energy window above the lowest, near-duplicates pruned by
symmetry-aware heavy-atom RMSD, at most K lowest-energy survivors.
"""

from __future__ import annotations

import base64
import csv
import functools
import hashlib
import logging
import os
import time
from pathlib import Path

import numpy as np
from rdkit import Chem, RDConfig
from rdkit.Chem import AllChem, rdMolAlign
from rdkit.Chem.rdMolDescriptors import CalcNumRotatableBonds

log = logging.getLogger("diffcore.molecule")

ELEMENTS = ("H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I")
_DATA, _CONTRIB = Path(RDConfig.RDDataDir), Path(RDConfig.RDContribDir)
# (label, path, reader): a reader yields (name, SMILES or Chem.Mol) in file order
TEST_FILES = (
    ("cdk2", _CONTRIB / "Fastcluster" / "cdk2.smi", "smi-name-first"),
    ("chembl11265", _CONTRIB / "fraggle" / "data" / "ChEMBL_11265_actives.smi", "smi"),
    ("chembl2321810", _CONTRIB / "FreeWilson" / "data" / "CHEMBL2321810.smi", "smi"),
    ("cmet", _CONTRIB / "FreeWilson" / "data" / "cmet_ligands.sdf", "sdf"),
)
TRAINING_FILES = (
    ("NCI", _DATA / "NCI" / "first_5K.smi", "smi"),
    ("WEHI", _DATA / "Pains" / "test_data" / "wehi_mols.csv", "csv"),
    ("ZINC", _CONTRIB / "SA_Score" / "data" / "zim.100.txt", "smi-header"),
    ("EGFR", _CONTRIB / "PBF" / "testData" / "egfr.sdf", "sdf"),
)
TEST_HEAVY = (17, 35)
TEST_PER_FILE = 10
VERSION = 1  # bump when the selection rules below change (part of the cache keys)

TEST_SOURCE = ("rdkit's drug-like test set: 10 ligands each of Contrib's Fastcluster/cdk2.smi, "
               "fraggle/data/ChEMBL_11265_actives.smi, FreeWilson/data/CHEMBL2321810.smi and "
               "FreeWilson/data/cmet_ligands.sdf (17-35 heavy atoms)")
TRAINING_SOURCE = ("rdkit's drug-like training set (NCI first_5K.smi, Pains/test_data/wehi_mols.csv, "
                   "SA_Score/data/zim.100.txt, PBF/testData/egfr.sdf; test molecules excluded)")


def fingerprint(files=TRAINING_FILES + TEST_FILES) -> str:
    """A digest of the shipped files and of the selection rules, for cache keys."""
    h = hashlib.sha256(f"druglike-{VERSION}".encode())
    for _, path, _ in files:
        try:
            h.update(path.read_bytes())
        except OSError:
            h.update(b"missing")
    return h.hexdigest()


def _records(path: Path, kind: str):
    """``(name, SMILES or Chem.Mol or None)`` per record of a shipped file, in file order."""
    if not path.is_file():
        log.warning("rdkit data file %s is missing: its molecules are left out", path)
        return
    if kind == "sdf":
        for k, m in enumerate(Chem.SDMolSupplier(str(path), removeHs=False)):
            name = m.GetProp("_Name").strip() if m is not None and m.HasProp("_Name") else ""
            yield "_".join(name.split()) or f"{path.stem}-{k + 1}", m
        return
    lines = path.read_text().splitlines()
    if kind == "csv":
        for row in csv.reader(lines):
            if len(row) >= 2:
                yield row[1], row[0]
        return
    for k, line in enumerate(lines[1:] if kind == "smi-header" else lines):
        parts = line.split()
        if len(parts) < 2 or line.startswith("#"):
            continue
        smi, name = (parts[1], parts[0]) if kind == "smi-name-first" else (parts[0], parts[1])
        yield name, smi


def sdf_records(text: str) -> list[tuple[int, str]]:
    """``(first line number, mol block)`` per record of an SDF text (a last record may lack
    its ``$$$$``)."""
    records, lines, start = [], [], 1
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith("$$$$"):
            records.append((start, "\n".join(lines)))
            lines, start = [], lineno + 1
        else:
            lines.append(line)
    if any(line.strip() for line in lines):
        records.append((start, "\n".join(lines)))
    return records


def largest_fragment(mol: Chem.Mol) -> Chem.Mol:
    """The fragment with the most heavy atoms (then the most atoms; the first of equals)."""
    frags = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
    if len(frags) == 1:
        return mol
    best = max(range(len(frags)), key=lambda i: (frags[i].GetNumHeavyAtoms(), frags[i].GetNumAtoms(), -i))
    return frags[best]


def keys(mol: Chem.Mol) -> tuple[str, str]:
    """Isomeric and non-isomeric canonical SMILES, hydrogens removed."""
    m = Chem.RemoveHs(mol)
    return Chem.MolToSmiles(m), Chem.MolToSmiles(m, isomericSmiles=False)


def _standard(rec) -> Chem.Mol | None:
    """Largest fragment, sanitised, only ELEMENTS, no radicals; ``None`` if unsuitable."""
    mol = Chem.MolFromSmiles(rec) if isinstance(rec, str) else rec
    if mol is None:
        return None
    try:
        mol = Chem.RemoveHs(largest_fragment(mol))
        Chem.SanitizeMol(mol)
    except Exception:  # noqa: BLE001 -- rdkit raises several kinds; a filter drops them all
        return None
    if any(a.GetSymbol() not in ELEMENTS or a.GetNumRadicalElectrons() for a in mol.GetAtoms()):
        return None
    mol.RemoveAllConformers()  # the references are generated; files' poses are not used
    return mol


@functools.lru_cache(maxsize=2)
def _read(files: tuple) -> tuple:
    """``(label-name, mol without H, (iso, flat) keys)`` per usable record, first of duplicates."""
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    out, seen = [], set()
    for label, path, kind in files:
        for name, rec in _records(path, kind):
            mol = _standard(rec)
            if mol is None:
                continue
            k = keys(mol)
            if k[0] in seen:
                continue
            seen.add(k[0])
            out.append((f"{label}-{name}", mol, k))
    return tuple(out)


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def _features(mol: Chem.Mol) -> set[str]:
    syms = {a.GetSymbol() for a in mol.GetAtoms()}
    feats = {s for s in ("S", "Cl", "F", "Br") if s in syms}
    if any(a.GetFormalCharge() for a in mol.GetAtoms()):
        feats.add("charged")
    return feats


@functools.lru_cache(maxsize=1)
def _test_selection() -> tuple:
    """``TEST_PER_FILE`` molecules of each test file, 17-35 heavy atoms: first one per wanted
    feature (S, Cl, F, Br, a charged group) not yet covered, then the rest in the order of
    the SHA-1 of their canonical SMILES (a fixed pseudo-random choice)."""
    lo, hi = TEST_HEAVY
    chosen = []
    for file in TEST_FILES:
        pool = [r for r in _read((file,)) if lo <= r[1].GetNumHeavyAtoms() <= hi]
        pool.sort(key=lambda r: _digest(r[2][0]))
        covered = set().union(*(_features(r[1]) for r in chosen)) if chosen else set()
        picks = []
        for want in ("S", "Cl", "charged", "F", "Br"):
            if want not in covered:
                hit = next((r for r in pool if want in _features(r[1]) and r not in picks), None)
                if hit is not None:
                    picks.append(hit)
                    covered |= _features(hit[1])
        picks += [r for r in pool if r not in picks][: TEST_PER_FILE - len(picks)]
        chosen += picks
    return tuple(sorted(chosen, key=lambda r: r[0]))


def test_molecules() -> list[tuple[str, Chem.Mol]]:
    """The held-out test set (:data:`TEST_SOURCE`): ``(name, mol)`` with hydrogens added (no
    conformer), sorted by name (``cdk2-ZINC03814457``, ``cmet-CHEMBL3402753_200``...)."""
    return [(name, Chem.AddHs(mol)) for name, mol, _ in _test_selection()]


def test_keys() -> set[str]:
    """Isomeric and non-isomeric canonical SMILES of every test molecule."""
    return {k for _, _, ks in _test_selection() for k in ks}


def training_molecules(max_heavy: int, min_heavy: int = 6) -> list[tuple[str, Chem.Mol]]:
    """The training set (:data:`TRAINING_SOURCE`): ``(name, mol)`` with hydrogens added (no
    conformer) for every shipped molecule with ``min_heavy``..``max_heavy`` heavy atoms, only
    :data:`ELEMENTS`, no radicals (largest fragment of salts), deduplicated, none of them a
    test molecule (by isomeric or non-isomeric canonical SMILES; a stereoisomer of a test
    molecule is left out too). Order: molecules with a rotatable bond first, then rigid ones,
    each in the order of the SHA-1 of their canonical SMILES, so any prefix (``max_molecules``)
    mixes the sources."""
    banned = test_keys()
    rows = [r for r in _read(TRAINING_FILES)
            if min_heavy <= r[1].GetNumHeavyAtoms() <= max_heavy and not (set(r[2]) & banned)]
    rows.sort(key=lambda r: (CalcNumRotatableBonds(r[1]) == 0, _digest(r[2][0])))
    return [(name, Chem.AddHs(mol)) for name, mol, _ in rows]


# ------------------------------------------------------------------ reference ensembles
def _stereo(mol: Chem.Mol, conf_id: int | None = None) -> dict:
    """CIP labels of the stereocentres and E/Z of the double bonds: as specified in the graph
    (``conf_id`` None) or as found in conformer ``conf_id``."""
    m = Chem.Mol(mol)
    if conf_id is None:
        Chem.AssignStereochemistry(m, cleanIt=True, force=True)
    else:
        Chem.AssignStereochemistryFrom3D(m, confId=conf_id)
    out = {("a", a.GetIdx()): a.GetProp("_CIPCode") for a in m.GetAtoms() if a.HasProp("_CIPCode")}
    for b in m.GetBonds():
        if b.GetStereo() in (Chem.BondStereo.STEREOE, Chem.BondStereo.STEREOZ):
            out[("b", b.GetIdx())] = str(b.GetStereo())
    return out


#: MMFF94's dielectric models, as rdkit numbers them (``MMFFMolProperties.SetMMFFDielectricModel``)
DIELECTRIC_MODELS = {"constant": 1, "distance": 2}
VACUUM = ("constant", 1.0)  #: rdkit's default electrostatics, (model, epsilon): those of the reference ensembles


def _optimise(m: Chem.Mol, threads: int, max_iters: int, what: str,
              dielectric: tuple[str, float] = VACUUM) -> list[float] | None:
    """Minimise every conformer of ``m`` in place (MMFF94, else UFF) until converged (at most
    ``max_iters`` x 5 steps); energies in kcal/mol, or ``None`` if neither force field applies.
    ``dielectric``: MMFF94's electrostatics, (model, epsilon): ``("constant", 1.0)`` is rdkit's
    default (vacuum), ``("distance", 4.0)`` the screened epsilon = 4r; UFF has none."""
    if AllChem.MMFFHasAllMoleculeParams(m):
        props = AllChem.MMFFGetMoleculeProperties(m)
        props.SetMMFFDielectricModel(DIELECTRIC_MODELS[dielectric[0]])
        props.SetMMFFDielectricConstant(float(dielectric[1]))
        field = AllChem.MMFFGetMoleculeForceField(m, props)  # a template: every conformer is optimised with it
        run = lambda: AllChem.OptimizeMoleculeConfs(m, field, numThreads=threads, maxIters=max_iters)  # noqa: E731
    elif AllChem.UFFHasAllMoleculeParams(m):
        log.debug("%s: MMFF94 has no parameters for this molecule; optimising with UFF", what)
        run = lambda: AllChem.UFFOptimizeMoleculeConfs(m, numThreads=threads, maxIters=max_iters)  # noqa: E731
    else:
        log.debug("%s: neither MMFF94 nor UFF has parameters; conformers left unoptimised", what)
        return None
    for _ in range(5):
        res = run()
        if all(not c for c, _ in res):
            break
    return [e for _, e in res]


def keeps_stereo(mol: Chem.Mol, conf_id: int, want: dict | None = None) -> bool:
    """Whether conformer ``conf_id`` has every stereocentre and double bond the graph specifies
    (``want``: the graph's, :func:`_stereo` of ``mol``, if already known)."""
    want = _stereo(mol) if want is None else want
    return not want or {key: v for key, v in _stereo(mol, conf_id).items() if key in want} == want


def minimise(m: Chem.Mol, threads: int = 1, max_iters: int = 2000,
             dielectric: tuple[str, float] = VACUUM) -> list[float] | None:
    """Every conformer of ``m`` minimised in place, as the reference ensembles are (MMFF94,
    else UFF, to convergence; MMFF94's ``dielectric`` as in :func:`_optimise`); their energies
    (kcal/mol), or ``None`` if no force field applies."""
    return _optimise(m, threads, max_iters, "molecule", dielectric)


def heavy_rmsd(probe: Chem.Mol, ref: Chem.Mol, prb_id: int = -1, ref_id: int = -1, symmetric: bool = True) -> float:
    """Heavy-atom RMSD (Angstrom) after the best rigid fit; ``symmetric`` also tries the
    molecule's symmetry-equivalent atom orders (``GetBestRMS``). Both molecules without H;
    the probe's conformer is moved onto the reference."""
    if symmetric:
        return rdMolAlign.GetBestRMS(probe, ref, prb_id, ref_id)
    return rdMolAlign.AlignMol(probe, ref, prb_id, ref_id, atomMap=[(i, i) for i in range(ref.GetNumAtoms())])


def rdkit_seed(seed: int) -> int:
    """ETKDG's ``randomSeed`` for our ``seed``: never 0, with which rdkit (2026.09) gives every
    conformer of one ``EmbedMultipleConfs`` call the same coordinates."""
    return seed % (2**31 - 2) + 1


EMBED_TIMEOUT = 60  #: seconds one ETKDG call may take (rdkit's timeout): a strained molecule can take hours


def embed_conformers(m: Chem.Mol, num: int, seed: int, threads: int = 1, what: str = "molecule") -> list[int]:
    """The ids of up to ``num`` ETKDG v3 embeddings added to ``m`` (seeded by ``seed``; retried
    once from random coordinates if none comes back). A call stops after
    :data:`EMBED_TIMEOUT` seconds: a molecule that slow (e.g. a strained ring, as in an azirine
    ester of PubChem) keeps the embeddings made by then, with a warning naming ``what`` (on a
    slower machine it may keep fewer); ``[]`` when none."""
    for random_coords in (False, True):
        params = AllChem.ETKDGv3()
        params.randomSeed, params.numThreads = rdkit_seed(seed), threads
        params.useRandomCoords = random_coords
        params.timeout = EMBED_TIMEOUT
        start = time.perf_counter()
        ids = [i for i in AllChem.EmbedMultipleConfs(m, num, params) if i >= 0]  # -1: stopped before the first
        if len(ids) < num and time.perf_counter() - start >= 0.99 * EMBED_TIMEOUT:
            log.warning("%s: rdkit's ETKDG stopped after %.0f s with %d of %d embeddings (a strained or unusual "
                        "molecule)%s", what, EMBED_TIMEOUT, len(ids), num,
                        "; kept those" if ids else ("; trying from random coordinates" if not random_coords else ""))
        if ids:
            return ids
    return []


def search(mol: Chem.Mol, num: int, seed: int, *, oversample: int = 3, energy_window: float | None = 10.0,
           prune_rms: float | None = 0.5, optimise: bool = True, threads: int = 0, max_iters: int = 2000,
           symmetric: bool = True, what: str = "molecule") -> tuple[np.ndarray, np.ndarray | None] | None:
    """A reference ensemble of ``mol`` (its atoms, in order): ``(coords [k, N, 3], energies [k])``
    with 1 <= k <= ``num``, lowest energy first, or ``None`` when ETKDG cannot embed it.

    ``oversample`` x ``num`` ETKDG v3 embeddings (:func:`embed_conformers`: ``seed``, retried
    once from random coordinates if none comes back, at most :data:`EMBED_TIMEOUT` s), each minimised (MMFF94, UFF where MMFF94 lacks parameters) if
    ``optimise``; a conformer whose specified stereocentres or double bonds no longer match
    the graph is dropped; those more than ``energy_window`` kcal/mol above the lowest are
    dropped; going up in energy, one within ``prune_rms`` A heavy-atom RMSD of a kept one is
    a duplicate. ``None`` for the window or the threshold turns that step off; energies are
    ``None`` without an optimisation. ``threads`` = 0 uses every core (the result does not
    depend on it)."""
    m = Chem.Mol(mol)
    m.RemoveAllConformers()
    want = _stereo(m)
    ids = embed_conformers(m, num * oversample, seed, threads, what)
    if not ids:
        return None
    energies = _optimise(m, threads, max_iters, what) if optimise else None
    order = sorted(range(len(ids)), key=lambda k: energies[k]) if energies else list(range(len(ids)))
    if want:
        order = [k for k in order if keeps_stereo(m, ids[k], want)]
        if not order:
            log.debug("%s: every conformer lost the specified stereo", what)
            return None
    if energies and energy_window is not None:
        order = [k for k in order if energies[k] <= energies[order[0]] + energy_window]
    kept = diverse(m, [ids[k] for k in order], num, prune_rms, symmetric)
    kept = [ids.index(c) for c in kept]
    coords = np.stack([m.GetConformer(ids[k]).GetPositions() for k in kept])
    return coords, (np.array([energies[k] for k in kept]) if energies else None)


def diverse(mol: Chem.Mol, conf_ids: list[int], num: int, prune_rms: float | None, symmetric: bool = True,
            fill: bool = False) -> list[int]:
    """Up to ``num`` of the conformers ``conf_ids`` of ``mol``, taken in that order, skipping one
    within ``prune_rms`` A heavy-atom RMSD (symmetry-aware unless ``symmetric`` is False) of one
    already kept (``None``: no pruning); with ``fill``, topped up to ``num`` with the skipped
    ones, in order. The greedy pruning of :func:`search` and of a sampling pool."""
    if prune_rms is None:
        return list(conf_ids[:num])
    heavy = Chem.RemoveHs(mol)
    kept: list[int] = []
    for c in conf_ids:
        if len(kept) == num:
            break
        if all(heavy_rmsd(heavy, heavy, c, j, symmetric) >= prune_rms for j in kept):
            kept.append(c)
    if fill:
        kept += [c for c in conf_ids if c not in kept][: num - len(kept)]
    return kept


# ------------------------------------------------------------------------------ the cache
def write_ensembles(path: Path, rows: list[tuple[str, Chem.Mol, np.ndarray, np.ndarray | None]]) -> None:
    """``(name, mol, coords [K, N, 3], energies [K] or None)`` per molecule to an SDF file, one
    record per conformer (written to a temporary file, then renamed). The graph itself travels
    in the first record of each molecule as rdkit's binary molecule format (base64; not a
    Python pickle): read back from 3D coordinates alone, rdkit would assign stereo the input
    left unspecified."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with Chem.SDWriter(str(tmp)) as w:
        for i, (name, mol, coords, energies) in enumerate(rows):
            for k in range(len(coords)):
                m = Chem.Mol(mol)
                conf = Chem.Conformer(m.GetNumAtoms())
                for a, p in enumerate(np.asarray(coords[k], dtype=float).tolist()):
                    conf.SetAtomPosition(a, p)
                conf.Set3D(True)
                m.AddConformer(conf, assignId=True)
                m.SetProp("_Name", name)
                m.SetIntProp("diffcore_mol", i)
                if energies is not None:
                    m.SetDoubleProp("diffcore_energy", float(energies[k]))
                if k == 0:
                    m.SetProp("diffcore_graph", base64.b64encode(mol.ToBinary()).decode())
                w.write(m)
    os.replace(tmp, path)


def read_ensembles(path: Path) -> list[tuple[str, Chem.Mol, np.ndarray, np.ndarray | None]]:
    """What :func:`write_ensembles` wrote; ``[]`` for a damaged or foreign file (rebuild it)."""
    rows: list = []
    current, coords, energies = None, [], []

    def flush():
        if current is not None:
            graph = Chem.Mol(base64.b64decode(current.GetProp("diffcore_graph")))
            e = np.array(energies) if all(x is not None for x in energies) else None
            rows.append((current.GetProp("_Name"), graph, np.stack(coords), e))

    try:
        for m in Chem.SDMolSupplier(str(path), removeHs=False, sanitize=False):
            if m is None:
                return []
            if current is None or m.GetIntProp("diffcore_mol") != current.GetIntProp("diffcore_mol"):
                flush()
                current, coords, energies = m, [], []
            coords.append(m.GetConformer().GetPositions())
            energies.append(m.GetDoubleProp("diffcore_energy") if m.HasProp("diffcore_energy") else None)
        flush()
    except (KeyError, RuntimeError, ValueError):
        return []
    return rows
