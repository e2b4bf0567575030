"""The score network of torsional diffusion: a learned force field whose torques are the score.

Input: noisy torsion angles ``x_t [B, T]`` of a molecule whose local structure (bond lengths,
angles, rings) is the conformer ``pos0`` of the condition. The network first *builds* the
conformer with those torsions (:func:`diffcore_molecule.torsions.set_torsions`): it sees the
angles only through the geometry they make, so its output is periodic in every angle, which
the core's torus diffusion requires (:mod:`diffcore.math.torus`).

Over the heavy atoms of that conformer, an invariant message-passing network (atom features,
the graph's pair features, a radial basis of the current distances, the diffusion time) gives
every pair of atoms a scalar f_ij, read as a pairwise force. The output for torsion t is the
torque those forces exert about its bond axis u_t (through atom c_t) on the side that turns:

    tau_t = sum_{i fixed, j turning} f_ij * d d_ij / d theta_t,
    d d_ij / d theta_t = (r_j - r_i) . (u_t x (r_j - c_t)) / d_ij,

i.e. minus the derivative of the energy sum_ij e(d_ij) along the torsion when f = e'. Like a
torsion score it is invariant to rotations and translations and changes sign under a
reflection (the cross product), which a network of distances alone could not give (Jing et al.
2022 build the same pseudoscalar with a tensor product over the bond). A per-torsion term
sum_k c_k sin(k theta_t), with c_k from the features of a, b, c, d, adds the intrinsic torsion
preference. The sum is normalised by the square root of the number of pairs it runs over.

The network returns the eps of the core's loss, -sigma times the score: the time embedding
lets it absorb the scale sigma(t).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from diffcore import Options
from diffcore.nn import timestep_embedding

from .torsions import dihedrals, set_torsions


class TorsionNetOptions(Options):
    """The ``backbone:`` section of the molecule-coords recipe (torsional diffusion)."""

    hidden: int = Field(64, ge=8, description="width of atom and pair features")
    layers: int = Field(4, ge=1, description="message-passing layers over the heavy atoms")
    rbf: int = Field(32, ge=2, description="Gaussian radial basis functions of the distances")
    rbf_max: float = Field(12.0, gt=0, description="largest rbf centre, in Angstrom")
    time_dim: int = Field(64, ge=2, description="size of the sinusoidal time embedding")
    harmonics: int = Field(3, ge=0, le=6, description="sin(k theta) terms of the per-torsion preference (0: torques only)")


def _mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.SiLU(), nn.Linear(h, o))


class _Layer(nn.Module):
    def __init__(self, h: int, e: int):
        super().__init__()
        self.a, self.b, self.e = nn.Linear(h, h), nn.Linear(h, h, bias=False), nn.Linear(e, h, bias=False)
        self.msg = nn.Sequential(nn.SiLU(), nn.Linear(h, h), nn.SiLU())
        self.gate = nn.Linear(h, 1)
        self.norm = nn.LayerNorm(h)
        self.upd = _mlp(2 * h, h, h)

    def forward(self, h, e, pmask, count):
        m = self.msg(self.a(h)[:, :, None] + self.b(h)[:, None, :] + self.e(e))
        m = m * torch.sigmoid(self.gate(m)) * pmask[..., None]
        agg = m.sum(2) / count
        return h + self.upd(torch.cat([self.norm(h), agg], -1))


class TorsionNet(nn.Module):
    """See the module docstring. ``forward(x [B, T], t [B], cond) -> eps [B, T]``."""

    def __init__(self, atom_dim: int, pair_dim: int, options: TorsionNetOptions):
        super().__init__()
        o = self.options = options
        h = o.hidden
        self.register_buffer("centres", torch.linspace(0.0, o.rbf_max, o.rbf), persistent=False)
        self.gamma = (o.rbf - 1) / o.rbf_max  # 1 / spacing
        self.embed_atoms = nn.Linear(atom_dim, h)
        self.time = _mlp(o.time_dim, h, h)
        edim = pair_dim + o.rbf
        self.layers = nn.ModuleList(_Layer(h, edim) for _ in range(o.layers))
        self.force_in, self.force_t = nn.Linear(h + edim, h), nn.Linear(h, h, bias=False)
        self.force = nn.Sequential(nn.SiLU(), nn.Linear(h, h), nn.SiLU(), nn.Linear(h, 1))
        self.harm = _mlp(3 * h, h, o.harmonics) if o.harmonics else None
        nn.init.zeros_(self.force[-1].weight)
        nn.init.zeros_(self.force[-1].bias)

    def rbf(self, d: torch.Tensor) -> torch.Tensor:
        return torch.exp(-((d[..., None] - self.centres) * self.gamma) ** 2)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict | None = None) -> torch.Tensor:
        if cond is None:  # no molecule (the unconditional branch of guidance): the uniform torus's score, zero
            return torch.zeros_like(x)
        quads, sides, tmask = cond["quads"], cond["sides"], cond["tmask"]
        if x.shape[1] == 0:
            return torch.zeros_like(x)
        pos = set_torsions(cond["pos0"].to(x.dtype), quads, sides, x, tmask)
        nh = int(cond["heavy"].sum(1).max())  # heavy atoms come first in every molecule
        pos, hmask = pos[:, :nh], cond["heavy"][:, :nh].to(x.dtype)
        pmask = hmask[:, :, None] * hmask[:, None, :] * (1 - torch.eye(nh, dtype=x.dtype, device=x.device))
        count = pmask.sum(2, keepdim=True).clamp(min=1.0)
        rel = pos[:, None, :, :] - pos[:, :, None, :]  # r_j - r_i at [i, j]
        d = rel.norm(dim=-1).clamp(min=1e-6)
        temb = self.time(timestep_embedding(t, self.options.time_dim).to(x.dtype))  # [B, h]
        e = torch.cat([cond["pairs"][:, :nh, :nh].to(x.dtype), self.rbf(d)], -1)
        h = self.embed_atoms(cond["atoms"][:, :nh].to(x.dtype)) + temb[:, None, :]
        for layer in self.layers:
            h = layer(h, e, pmask, count)
        hs = h[:, :, None] + h[:, None, :]
        f = self.force(self.force_in(torch.cat([hs, e], -1)) + self.force_t(temb)[:, None, None])[..., 0] * pmask  # [B, nh, nh]
        # d d_ij / d theta_t for every torsion t and pair (i fixed, j turning)
        bi = torch.arange(x.shape[0], device=x.device)[:, None]
        pb, pc = pos[bi, quads[..., 1]], pos[bi, quads[..., 2]]  # [B, T, 3] (b, c are heavy atoms)
        u = (pc - pb) / (pc - pb).norm(dim=-1, keepdim=True).clamp(min=1e-9)
        arm = torch.cross(u[:, :, None, :].expand(-1, -1, nh, -1), pos[:, None] - pc[:, :, None], dim=-1)  # u x (r_j - c)
        dd = torch.einsum("bijk,btjk->btij", rel, arm) / d[:, None]
        turn = sides[:, :, :nh].to(x.dtype)
        pairs_t = (1 - turn)[:, :, :, None] * turn[:, :, None, :] * pmask[:, None]  # i fixed, j turning
        torque = (pairs_t * f[:, None] * dd).sum((2, 3)) / pairs_t.sum((2, 3)).clamp(min=1.0).sqrt()
        out = torque
        if self.harm is not None:
            ha = torch.gather(h, 1, quads[..., None].expand(-1, -1, -1, h.shape[-1]).reshape(x.shape[0], -1, h.shape[-1]))
            ha = ha.reshape(*quads.shape, -1)
            feats = torch.cat([ha[:, :, 0] + ha[:, :, 3], ha[:, :, 1] + ha[:, :, 2], temb[:, None].expand(-1, quads.shape[1], -1)], -1)
            c = self.harm(feats)
            k = torch.arange(1, self.options.harmonics + 1, device=x.device, dtype=x.dtype)
            theta = dihedrals(pos, quads)
            out = out + (c * torch.sin(k * theta[..., None])).sum(-1)
        return out * tmask.to(x.dtype)


def build_torsion_net(options: TorsionNetOptions, domain) -> TorsionNet:
    """The torsion network for a set-up torsion domain (its feature sizes fix the input widths)."""
    return TorsionNet(domain.atom_dim, domain.pair_dim, options)
