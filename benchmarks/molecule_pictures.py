"""Pictures of a few conformers per molecule, for ``docs/domains/molecules.md``.

Each input SDF file holds several conformers (records) of one molecule, as written by
``diffcore sample --run RUN --smiles ... --num N --out DIR`` (one file per molecule, the name in
``_Name``, the SMILES in the property ``smiles``). Each file makes one row of the figure: on the
left rdkit's 2D depiction of the molecule without hydrogens (titled with its SMILES, or name);
on the right a 3D overlay of up to ``--max-conformers`` conformers (heavy atoms and bonds), each
aligned onto the first on its heavy atoms (``rdMolAlign.AlignMolConformers``), one colour per
conformer, the first one's atoms dotted by element (C grey, N blue, O red, S yellow, Cl green,
F/Br/I and others purple). Printed per file: conformers, heavy atoms, and the heavy-atom RMSD
of each conformer to the first after alignment, and per saturated six-membered ring whether each
conformer has it as a chair. With ``--reference-sdf`` (one file per input,
same order, e.g. rdkit ETKDG conformers of the same molecule) it also prints, per conformer,
the smallest symmetry-aware heavy-atom RMSD to any reference conformer (nothing is drawn)::

    OMP_NUM_THREADS=1 python benchmarks/molecule_pictures.py --sdf A.sdf B.sdf C.sdf \\
        --out docs/domains/molecule-conformers.png [--max-conformers 6] [--reference-sdf RA.sdf RB.sdf RC.sdf] \\
        [--titles "title A" "title B" "title C"]
"""

from __future__ import annotations

import argparse
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from rdkit import Chem  # noqa: E402
from rdkit.Chem import AllChem, Draw, rdMolAlign, rdMolTransforms  # noqa: E402

ELEMENT_COLOURS = {"C": "#606060", "N": "#1f4fd8", "O": "#d62020", "S": "#d8c200", "Cl": "#2ca02c"}
OTHER_ELEMENT = "#9b30c0"  # F, Br, I, P, ...
CONFORMER_COLOURS = plt.get_cmap("tab10").colors


def read_conformers(path: str, name: str | None = None) -> tuple[Chem.Mol, str]:
    """All records of ``path`` (with ``name``: those whose ``_Name`` it is, e.g. one molecule of
    a reference cache, ``RUN/cache/*.sdf``) as conformers of one heavy-atom molecule, and its title."""
    recs = [m for m in Chem.SDMolSupplier(path, removeHs=False, sanitize=True) if m is not None]
    if name is not None:
        recs = [m for m in recs if m.HasProp("_Name") and m.GetProp("_Name") == name]
    if not recs:
        raise SystemExit(f"{path}: no readable molecule" + (f" named {name!r}" if name is not None else ""))
    mol = Chem.Mol(recs[0])
    mol.RemoveAllConformers()
    for r in recs:
        if r.GetNumAtoms() != mol.GetNumAtoms():
            raise SystemExit(f"{path}: records differ in atom count, not conformers of one molecule")
        mol.AddConformer(Chem.Conformer(r.GetConformer()), assignId=True)
    title = recs[0].GetProp("smiles") if recs[0].HasProp("smiles") else ""
    title = title or (recs[0].GetProp("_Name") if recs[0].HasProp("_Name") else "") or path
    return Chem.RemoveHs(mol), title


def ring_shapes(mol: Chem.Mol) -> list[tuple[tuple[int, ...], str]]:
    """Per saturated six-membered ring of ``mol`` (no double bond in it): its atoms and, per
    conformer, ``c`` for a chair (ring torsions alternate in sign) or ``b`` for anything else
    (a boat or twist-boat)."""
    out = []
    for ring in mol.GetRingInfo().AtomRings():
        if len(ring) != 6 or any(mol.GetBondBetweenAtoms(ring[i], ring[(i + 1) % 6]).GetBondType() != Chem.BondType.SINGLE
                                 for i in range(6)):
            continue
        shape = ""
        for c in mol.GetConformers():
            t = [rdMolTransforms.GetDihedralDeg(c, *(ring[(i + j) % 6] for j in range(4))) for i in range(6)]
            shape += "c" if all((t[i] > 0) != (t[(i + 1) % 6] > 0) for i in range(6)) else "b"
        out.append((ring, shape))
    return out


def align(mol: Chem.Mol, k: int) -> tuple[Chem.Mol, list[float]]:
    """The first ``k`` conformers of ``mol`` aligned onto its first; RMSD of each to the first."""
    m = Chem.Mol(mol)
    for c in [c.GetId() for c in m.GetConformers()][k:]:
        m.RemoveConformer(c)
    rms: list[float] = []
    if m.GetNumConformers() > 1:
        rdMolAlign.AlignMolConformers(m, RMSlist=rms)
    return m, [0.0] + rms


def best_rms_to_refs(mol: Chem.Mol, ref_path: str) -> list[float]:
    ref, _ = read_conformers(ref_path)
    probe = Chem.Mol(mol)  # GetBestRMS moves the probe: keep the drawn conformers as they are
    return [min(rdMolAlign.GetBestRMS(probe, ref, prbId=c.GetId(), refId=r.GetId()) for r in ref.GetConformers())
            for c in probe.GetConformers()]


def draw_2d(ax, mol: Chem.Mol, title: str) -> None:
    m2 = Chem.Mol(mol)
    m2.RemoveAllConformers()
    AllChem.Compute2DCoords(m2)
    opts = Draw.rdMolDraw2D.MolDrawOptions()
    opts.padding = 0.1
    opts.fixedBondLength = 40  # small molecules stay at a readable scale instead of filling the panel
    ax.imshow(Draw.MolToImage(m2, size=(420, 420), options=opts))
    ax.set_axis_off()
    ax.set_title("\n".join(textwrap.wrap(title, 56)), fontsize=8)


def draw_3d(ax, mol: Chem.Mol, rms: list[float]) -> None:
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]
    confs = [c.GetPositions() for c in mol.GetConformers()]
    centre = confs[0].mean(0)  # principal axes of conformer 1: its widest extent faces the viewer
    axes = np.linalg.svd(confs[0] - centre)[2]
    confs = [(p - centre) @ axes.T for p in confs]
    for j, pos in enumerate(confs):
        col = CONFORMER_COLOURS[j % len(CONFORMER_COLOURS)]
        for n, (a, b) in enumerate(bonds):
            ax.plot(*pos[[a, b]].T, color=col, lw=1.6 if j == 0 else 1.1, alpha=1.0 if j == 0 else 0.75,
                    label=f"conformer {j + 1}" if n == 0 else None)
        if j == 0:
            cols = [ELEMENT_COLOURS.get(at.GetSymbol(), OTHER_ELEMENT) for at in mol.GetAtoms()]
            ax.scatter(*pos.T, c=cols, s=14, depthshade=False, zorder=5)
    p = np.concatenate(confs)
    lo, hi = p.min(0) - 0.3, p.max(0) + 0.3
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_zlim(lo[2], hi[2])
    ax.set_box_aspect(hi - lo, zoom=1.0)  # equal aspect: the box has the data's proportions
    ax.view_init(elev=65, azim=-90)
    ax.set_axis_off()
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    ax.set_title(f"{len(rms)} conformers aligned on #1; RMSD to #1: " + ", ".join(f"{r:.2f}" for r in rms[1:]) + " Å"
                 if len(rms) > 1 else "1 conformer", fontsize=8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sdf", nargs="+", required=True, help="one SDF file per molecule, several conformers each")
    ap.add_argument("--out", required=True, help="PNG to write")
    ap.add_argument("--max-conformers", type=int, default=6)
    ap.add_argument("--reference-sdf", nargs="+", default=None, help="optional: one reference SDF per --sdf file")
    ap.add_argument("--dpi", type=int, default=110)
    ap.add_argument("--titles", nargs="+", default=None, help="optional: one title per --sdf file (default: its SMILES)")
    ap.add_argument("--name", default=None, help="optional: take only the records of this molecule name (_Name) from each file")
    args = ap.parse_args()
    if args.reference_sdf and len(args.reference_sdf) != len(args.sdf):
        ap.error("--reference-sdf needs one file per --sdf file")
    if args.titles and len(args.titles) != len(args.sdf):
        ap.error("--titles needs one title per --sdf file")

    n = len(args.sdf)
    fig = plt.figure(figsize=(9, 3.5 * n))
    for i, path in enumerate(args.sdf):
        mol, title = read_conformers(path, args.name)
        title = args.titles[i] if args.titles else title
        total = mol.GetNumConformers()
        mol, rms = align(mol, args.max_conformers)
        print(f"{path}: {title}\n  conformers {total} (drawn {mol.GetNumConformers()}), heavy atoms {mol.GetNumAtoms()}")
        print("  heavy-atom RMSD to conformer 1 after alignment (Å): " + " ".join(f"{r:.3f}" for r in rms))
        for ring, shape in ring_shapes(mol):
            print(f"  saturated 6-ring {ring}: per conformer c = chair, b = boat / twist-boat: {shape}")
        if args.reference_sdf:
            best = best_rms_to_refs(mol, args.reference_sdf[i])
            print(f"  best RMSD to {args.reference_sdf[i]} (Å): " + " ".join(f"{r:.3f}" for r in best))
        draw_2d(fig.add_subplot(n, 2, 2 * i + 1), mol, title)
        draw_3d(fig.add_subplot(n, 2, 2 * i + 2, projection="3d"), mol, rms)
    fig.subplots_adjust(left=0.02, right=0.86, top=1 - 0.45 / (3.5 * n), bottom=0.02, wspace=0.05, hspace=0.15)
    fig.savefig(args.out, dpi=args.dpi)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
