"""Generated coordinates -> rdkit conformers -> SDF files (one file per molecule).

The model is E(3)-equivariant, reflections included, so it cannot tell a molecule from its
mirror image. When the input specifies tetrahedral stereocentres (``C[C@H](N)O``), a
generated conformer whose centres come out with the wrong handedness for most of them is
reflected (x -> -x), which fixes every centre at once; the SDF record says whether all
specified centres match (``stereo_ok``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from rdkit import Chem

from .data import MolGraph


def _specified_centres(mol: Chem.Mol) -> dict[int, str]:
    return dict(Chem.FindMolChiralCenters(Chem.Mol(mol), includeUnassigned=False, useLegacyImplementation=False))  # it relabels its input


def _centres_from_3d(mol: Chem.Mol, coords: np.ndarray) -> dict[int, str]:
    m = with_conformers(mol, [coords])
    Chem.AssignStereochemistryFrom3D(m)
    return dict(Chem.FindMolChiralCenters(m, includeUnassigned=True, useLegacyImplementation=False))


def fix_chirality(mol: Chem.Mol, coords: np.ndarray) -> tuple[np.ndarray, bool]:
    """``coords`` or their mirror image, whichever matches more of the stereocentres that
    ``mol`` specifies; and whether all of them then match."""
    want = _specified_centres(mol)
    if not want:
        return coords, True
    score = lambda c: sum(_centres_from_3d(mol, c).get(i) == lab for i, lab in want.items())  # noqa: E731
    s = score(coords)
    if s < len(want):
        mirrored = coords * np.array([-1.0, 1.0, 1.0])
        sm = score(mirrored)
        if sm > s:
            coords, s = mirrored, sm
    return coords, s == len(want)


def with_conformers(mol: Chem.Mol, coords_list) -> Chem.Mol:
    """A copy of ``mol`` with one 3D conformer per ``[n, 3]`` array (Angstrom)."""
    m = Chem.Mol(mol)
    m.RemoveAllConformers()
    for coords in coords_list:
        c = np.asarray(coords, dtype=np.float64)
        conf = Chem.Conformer(m.GetNumAtoms())
        for i in range(m.GetNumAtoms()):
            conf.SetAtomPosition(i, c[i].tolist())
        conf.Set3D(True)
        m.AddConformer(conf, assignId=True)
    return m


def decode(x: torch.Tensor, batch: dict) -> list[tuple[MolGraph, np.ndarray, bool]]:
    """Per example of a generated batch: its molecule, its coordinates in Angstrom (mirrored
    if that fixes the stereocentres) and whether the stereocentres match. ``x`` is coordinates
    (``molecule``) or torsion angles set on the batch's local structures (``molecule-torsion``)."""
    out = []
    scale = float(batch["coord_scale"])
    graphs = batch["molecules"]
    cond = batch.get("cond") or {}
    if "quads" in cond:  # torsion angles (molecule-torsion): the conformer they make of the local structure
        from .torsion_domain import relax
        from .torsions import set_torsions

        cond = {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in cond.items()}
        x = relax(x.detach().cpu(), cond, int(batch.get("relax_steps", 0)))
        x = set_torsions(cond["pos0"].double().cpu(), cond["quads"].cpu(), cond["sides"].cpu(), x.detach().double().cpu(),
                         cond["tmask"].cpu())
    for i, g in enumerate(batch["mol"]):
        mg = graphs[g]
        c = x[i, : mg.num_atoms].detach().double().cpu().numpy() * scale
        c, ok = fix_chirality(mg.mol, c)
        out.append((mg, c, ok))
    if batch.get("minimise"):  # data.sampling_minimise: onto the force field's nearest minima, one call per molecule
        from .druglike import VACUUM
        from .torsion_domain import minimised

        rows: dict[int, list[int]] = {}
        for i, g in enumerate(batch["mol"]):
            rows.setdefault(g, []).append(i)
        for g, idx in rows.items():
            for i, c in zip(idx, minimised(graphs[g].mol, np.stack([out[i][1] for i in idx]),
                                           dielectric=batch.get("dielectric", VACUUM))):
                out[i] = (out[i][0], c, out[i][2])
    return out


def _slug(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return s[:60] or "molecule"


def write_sdf_files(results, out_dir: Path) -> list[Path]:
    """One SDF file per molecule of ``results`` (``[(x, batch), ...]`` from
    :meth:`MoleculeDomain.sample_batches`), each holding all of its generated conformers."""
    groups: dict[int, tuple[MolGraph, list]] = {}
    for x, batch in results:
        for mg, coords, ok in decode(x, batch):
            groups.setdefault(id(mg), (mg, []))[1].append((coords, ok))
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, used = [], set()
    for mg, confs in groups.values():
        stem = _slug(mg.name)
        k = 2
        while stem in used:
            stem, k = f"{_slug(mg.name)}-{k}", k + 1
        used.add(stem)
        path = out_dir / f"{stem}.sdf"
        m = with_conformers(mg.mol, [c for c, _ in confs])
        with Chem.SDWriter(str(path)) as w:
            for cid, (_, ok) in enumerate(confs):
                m.SetProp("_Name", mg.name)
                m.SetProp("smiles", mg.smiles)
                m.SetIntProp("conformer", cid)
                m.SetProp("stereo_ok", "yes" if ok else "no")
                w.write(m, confId=cid)
        paths.append(path)
    return paths
