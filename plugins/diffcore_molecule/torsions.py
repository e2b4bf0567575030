"""Torsion angles of a molecule: which bonds rotate, what they measure, how to set them.

A conformer of a molecule is nearly fixed by its *local structure* (bond lengths, bond
angles, ring puckers), which classical methods such as ETKDG get right, and its *torsion
angles* about rotatable bonds, where the conformers differ (Jing et al. 2022, sec. 3).

A rotatable bond b-c (after torsional diffusion): a single bond outside every ring, both
of whose atoms have a heavy neighbour besides each other (so methyl and hydroxyl rotors, whose
turn moves only hydrogens, are not counted) and neither of which is linear (sp: the torsion
of a C-C#C bond is undefined). Its torsion angle is the dihedral a-b-c-d with a (d) the
lowest-numbered heavy neighbour of b (c); cutting the bond splits the molecule in two and the
smaller side, the one holding c, is the side that turns.

Turning one bond moves its side rigidly about the bond axis, which leaves every other
torsion angle unchanged (the four atoms of another torsion are on the axis or all on one
side), so torsions are independent coordinates and :func:`rotate` sets them all in one pass.
Rigid rotations keep every stereocentre and double-bond configuration: the chirality of the
local structure is the chirality of the result.
"""

from __future__ import annotations

import torch


def rotatable_torsions(mol: "Chem.Mol") -> tuple[torch.Tensor, torch.Tensor]:
    """``(quads [T, 4] long, sides [T, N] bool)``: the torsions a-b-c-d of ``mol`` and, per
    torsion, the atoms that turn with it (c's side; never b's)."""
    from rdkit import Chem  # here: the network imports this module, and rdkit only when needed
    n = mol.GetNumAtoms()
    quads, sides = [], []
    linear = {a.GetIdx() for a in mol.GetAtoms() if a.GetHybridization() == Chem.HybridizationType.SP}
    for bond in mol.GetBonds():
        if bond.GetBondType() != Chem.BondType.SINGLE or bond.IsInRing():
            continue
        b, c = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        if b in linear or c in linear:
            continue
        heavy_b = [x.GetIdx() for x in mol.GetAtomWithIdx(b).GetNeighbors() if x.GetAtomicNum() > 1 and x.GetIdx() != c]
        heavy_c = [x.GetIdx() for x in mol.GetAtomWithIdx(c).GetNeighbors() if x.GetAtomicNum() > 1 and x.GetIdx() != b]
        if not heavy_b or not heavy_c:
            continue
        side_c = _component(mol, start=c, cut=(b, c))
        if len(side_c) > n - len(side_c):  # turn the smaller side: swap the roles of b and c
            b, c, heavy_b, heavy_c = c, b, heavy_c, heavy_b
            side_c = set(range(n)) - side_c
        mask = torch.zeros(n, dtype=torch.bool)
        mask[sorted(side_c)] = True
        quads.append((min(heavy_b), b, c, min(heavy_c)))
        sides.append(mask)
    if not quads:
        return torch.zeros(0, 4, dtype=torch.long), torch.zeros(0, n, dtype=torch.bool)
    return torch.tensor(quads, dtype=torch.long), torch.stack(sides)


def _component(mol: "Chem.Mol", start: int, cut: tuple[int, int]) -> set[int]:
    """Atoms reachable from ``start`` without crossing the bond ``cut``."""
    seen, stack = {start}, [start]
    while stack:
        i = stack.pop()
        for nb in mol.GetAtomWithIdx(i).GetNeighbors():
            j = nb.GetIdx()
            if {i, j} == set(cut) or j in seen:
                continue
            seen.add(j)
            stack.append(j)
    return seen


def dihedrals(pos: torch.Tensor, quads: torch.Tensor) -> torch.Tensor:
    """Dihedral angles (radians, in (-pi, pi]) of ``quads [..., T, 4]`` in conformers
    ``pos [..., N, 3]`` (leading dimensions broadcast)."""
    idx = quads.reshape(*quads.shape[:-2], -1)
    p = torch.gather(pos, -2, idx[..., None].expand(*idx.shape, 3)).reshape(*quads.shape, 3)
    b0, b1, b2 = p[..., 0, :] - p[..., 1, :], p[..., 2, :] - p[..., 1, :], p[..., 3, :] - p[..., 2, :]
    u = b1 / b1.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    v = b0 - (b0 * u).sum(-1, keepdim=True) * u
    w = b2 - (b2 * u).sum(-1, keepdim=True) * u
    x = (v * w).sum(-1)
    y = (torch.cross(u, v, dim=-1) * w).sum(-1)
    return torch.atan2(y, x)


def rotate(pos: torch.Tensor, quads: torch.Tensor, sides: torch.Tensor, delta: torch.Tensor,
           tmask: torch.Tensor | None = None) -> torch.Tensor:
    """Conformers ``pos [B, N, 3]`` with torsion t of each turned by ``delta [B, T]`` radians
    (its side ``sides [B, T, N]`` rotated about b->c; ``tmask [B, T]``: 0 for padding, which
    does not turn). The dihedral of torsion t grows by exactly ``delta[:, t]``."""
    if tmask is not None:
        delta = delta * tmask.to(delta.dtype)
    pos = pos.clone()
    bi = torch.arange(pos.shape[0], device=pos.device)
    for t in range(quads.shape[1]):
        b, c = pos[bi, quads[:, t, 1]], pos[bi, quads[:, t, 2]]  # [B, 3]
        k = c - b
        k = k / k.norm(dim=-1, keepdim=True).clamp(min=1e-9)
        theta = delta[:, t]
        cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
        r = pos - c[:, None, :]
        kk = k[:, None, :]
        # Rodrigues: r cos + (k x r) sin + k (k . r)(1 - cos)
        turned = r * cos + torch.cross(kk.expand_as(r), r, dim=-1) * sin + kk * (r * kk).sum(-1, keepdim=True) * (1 - cos)
        m = sides[:, t, :, None]
        pos = torch.where(m, turned + c[:, None, :], pos)
    return pos


def set_torsions(pos: torch.Tensor, quads: torch.Tensor, sides: torch.Tensor, angles: torch.Tensor,
                 tmask: torch.Tensor | None = None) -> torch.Tensor:
    """``pos [B, N, 3]`` with each torsion set to ``angles [B, T]`` (absolute, radians)."""
    if quads.shape[1] == 0:
        return pos
    return rotate(pos, quads, sides, angles - dihedrals(pos, quads), tmask)
