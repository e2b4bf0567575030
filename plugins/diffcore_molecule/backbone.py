"""The molecule backbones: an E(n)-equivariant graph network over atoms (Satorras, Hoogeboom & Welling 2021;
``egnn``, molecule-cartesian) and, at the end of the file, the torsion score network (``torsion-net``).

The EGNN.

Every layer l updates atom features h and coordinates x over all pairs of real atoms
(eq. 3-6 of the paper, with the refinements of Hoogeboom et al. 2022's EDM):

    e_ij   = [rbf(d_ij), rbf(d0_ij), d_ij, d0_ij, a_ij]        d = ||x_i - x_j||, d0 on the input x
    m_ij   = SiLU(W1 h_i + W2 h_j + W3 e_ij) * F(rbf(d_ij), rbf(d0_ij))                 (3)
    m_ij  <- m_ij * sigmoid(phi_att(m_ij))                                     (EDM's edge gate)
    x_i   <- x_i + sum_j (x_i - x_j) / (d_ij + 1) * phi_x(m_ij)                             (4)
    h_i   <- h_i + phi_h(LayerNorm(h_i), mean_j m_ij)                                    (5, 6)

where a_ij are the pair features of the molecular graph (bond type, graph distance in hops,
same ring, conjugation: see :mod:`diffcore_molecule.data`), rbf a Gaussian radial basis
expansion of distances and F a linear "continuous filter" of it (SchNet, Schuett et al. 2017),
which lets each kind of pair respond to its own length finely. W1 h_i + W2 h_j is phi_e's
first layer on [h_i, h_j] computed per atom rather than per pair (``message_layers`` adds
deeper layers). Coordinate updates are summed over neighbours, not averaged, so a bond's
correction does not shrink as the molecule grows; phi_x starts at zero (the identity map).
The diffusion time enters through :func:`diffcore.nn.timestep_embedding` and an MLP, added to
h in every layer.

The output, the final coordinates x_L (``output: position``, read as x0 by the default
``diffusion.prediction: x0``) or the displacement x_L - x_0 (``output: displacement``, for
``prediction: eps``), with its centre of mass over the real atoms removed and zero at padding,
is E(3)-equivariant: rotating, reflecting or translating the input rotates (reflects) the
output and leaves it unchanged under translation.

Why position/x0 by default: a geometric network is good at moving atoms to where they belong
(small, precise corrections at low noise); predicting eps instead asks it to output those
corrections divided by sigma, which at low noise means amplifying them many times. With the
same training budget the eps variant reached 26 % connectivity and 0.13 A bond-length error
on held-out molecules, the x0 variant 99 % and 0.025 A (docs/domains/molecules.md).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from diffcore import Options
from diffcore.nn import timestep_embedding

from .torsions import set_torsions


class EGNNOptions(Options):
    """The ``backbone:`` section of the molecule-cartesian recipe."""

    hidden: int = Field(64, ge=8, description="width of atom and pair features")
    layers: int = Field(6, ge=1, description="number of equivariant layers")
    rbf: int = Field(24, ge=2, description="Gaussian radial basis functions per distance")
    rbf_max: float = Field(5.0, gt=0, description="largest rbf centre, in data units (coordinates / coord_scale)")
    time_dim: int = Field(64, ge=2, description="size of the sinusoidal time embedding")
    distance_filter: bool = Field(True, description="multiply messages by a learned function of the distances (SchNet's continuous filter)")
    message_layers: int = Field(1, ge=1, le=3, description="depth of the message MLP phi_e (1: one linear map of [h_i, h_j, pair features] and SiLU)")
    output: Literal["position", "displacement"] = Field(
        "position",
        description="what the network returns: x_L (position: for prediction x0, the default) or x_L - x_t (displacement: for prediction eps)",
    )
    coord_updates: bool = Field(True, description="update coordinates in every layer (EGNN) or only in the last")


class GaussianRBF(nn.Module):
    """exp(-(d - mu_k)^2 / (2 w^2)) for K centres mu_k evenly spaced in [0, d_max]; the width w
    defaults to their spacing."""

    def __init__(self, num: int, d_max: float, width: float | None = None):
        super().__init__()
        self.register_buffer("mu", torch.linspace(0.0, d_max, num), persistent=False)
        self.gamma = 0.5 / (width if width is not None else d_max / (num - 1)) ** 2

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.gamma * (d[..., None] - self.mu) ** 2)


class EGNNLayer(nn.Module):
    """One layer of eq. 3-6. phi_e's first linear map acts on [h_i, h_j, edge] as
    W1 h_i + W2 h_j + W3 edge, so the node parts are computed once per atom, not per pair."""

    def __init__(self, hidden: int, edge_in: int, update_coords: bool, message_layers: int = 2, filter_in: int = 0,
                 update_h: bool = True):
        super().__init__()
        self.h_i = nn.Linear(hidden, hidden)
        self.h_j = nn.Linear(hidden, hidden, bias=False)
        self.e = nn.Linear(edge_in, hidden, bias=False)
        # SchNet's continuous filter (Schuett et al. 2017): messages multiplied by a learned
        # function of the distances, so a pair's response to its length is type-specific.
        self.filter = nn.Linear(filter_in, hidden) if filter_in else None
        msg: list[nn.Module] = [nn.SiLU()]
        for _ in range(message_layers - 1):
            msg += [nn.Linear(hidden, hidden), nn.SiLU()]
        self.msg = nn.Sequential(*msg)
        self.att = nn.Linear(hidden, 1)
        # the last layer's features feed nothing: no node update there, so that every parameter
        # gets a gradient (DDP requires it) and no work is wasted
        self.norm = nn.LayerNorm(hidden) if update_h else None
        self.node = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden)) if update_h else None
        self.coord = nn.Linear(hidden, 1, bias=False) if update_coords else None
        if self.coord is not None:
            nn.init.zeros_(self.coord.weight)  # start from the identity map on x

    def forward(self, h, x, edge, emask, count, rbf=None):
        # h [B, N, H]; x [B, N, 3]; edge [B, N, N, edge_in]; emask [B, N, N, 1]; count [B, 1, 1]
        m = self.msg(self.h_i(h)[:, :, None] + self.h_j(h)[:, None, :] + self.e(edge))
        if self.filter is not None:
            m = m * self.filter(rbf)
        m = m * torch.sigmoid(self.att(m)) * emask
        if self.node is not None:
            h = h + self.node(torch.cat([self.norm(h), m.sum(2) / count], dim=-1))
        if self.coord is not None:
            diff = x[:, :, None, :] - x[:, None, :, :]  # x_i - x_j
            dist = diff.pow(2).sum(-1, keepdim=True).add(1e-8).sqrt()
            # summed, not averaged: a bond's correction must not shrink as the molecule grows
            x = x + (diff / (dist + 1.0) * self.coord(m) * emask).sum(2)
        return h, x


class EGNN(nn.Module):
    """``forward(x_t [B, N, 3], t [B], cond) -> [B, N, 3]``, E(3)-equivariant, zero CoM.

    ``cond``: ``{"atoms": [B, N, F], "pairs": [B, N, N, E], "atom_mask": [B, N]}`` (from
    :meth:`MoleculeDomain.collate`); ``None`` means no graph (all atoms real, no features).
    An edit batch adds ``fixed [B, N]`` (the kept atoms) and ``known [B, N, 3]`` (the input):
    the position output is then moved rigidly towards the kept atoms (:func:`anchor`).
    """

    def __init__(self, atom_dim: int, pair_dim: int, options: EGNNOptions | None = None):
        super().__init__()
        o = options or EGNNOptions()
        self.atom_dim, self.pair_dim, self.options = atom_dim, pair_dim, o
        self.rbf = GaussianRBF(o.rbf, o.rbf_max)
        self.embed = nn.Linear(atom_dim, o.hidden)
        self.time = nn.Sequential(nn.Linear(o.time_dim, o.hidden), nn.SiLU(), nn.Linear(o.hidden, o.hidden))
        self.time_in = nn.ModuleList(nn.Linear(o.hidden, o.hidden) for _ in range(o.layers))
        edge_in = 2 * o.rbf + 2 + pair_dim
        self.layers = nn.ModuleList(
            EGNNLayer(o.hidden, edge_in, o.coord_updates or i == o.layers - 1, o.message_layers,
                      2 * o.rbf if o.distance_filter else 0, update_h=i < o.layers - 1) for i in range(o.layers)
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict | None = None) -> torch.Tensor:
        b, n, _ = x.shape
        dtype = x.dtype
        if cond is None:
            atoms = x.new_zeros(b, n, self.atom_dim)
            pairs = x.new_zeros(b, n, n, self.pair_dim)
            mask = x.new_ones(b, n)
        else:
            atoms = cond["atoms"].to(x.device, dtype)
            pairs = cond["pairs"].to(x.device, dtype)
            mask = cond["atom_mask"].to(x.device, dtype)
        eye = torch.eye(n, device=x.device, dtype=dtype)
        emask = (mask[:, :, None] * mask[:, None, :] * (1 - eye))[..., None]
        count = (mask.sum(1) - 1).clamp(min=1.0)[:, None, None]  # real neighbours of each atom

        x0 = x * mask[..., None]
        d0 = (x0[:, :, None] - x0[:, None, :]).pow(2).sum(-1).add(1e-8).sqrt()
        rbf0 = self.rbf(d0)
        temb = self.time(timestep_embedding(t.reshape(-1).expand(b), self.options.time_dim).to(dtype))
        h = self.embed(atoms)
        xl = x0
        for layer, tin in zip(self.layers, self.time_in):
            h = h + tin(temb)[:, None, :]
            if layer is self.layers[0]:
                d, rbf = d0, rbf0
            else:
                d = (xl[:, :, None] - xl[:, None, :]).pow(2).sum(-1).add(1e-8).sqrt()
                rbf = self.rbf(d)
            both = torch.cat([rbf, rbf0], dim=-1)
            edge = torch.cat([both, d[..., None], d0[..., None], pairs], dim=-1)
            h, xl = layer(h, xl, edge, emask, count, both)
        out = (xl - x0 if self.options.output == "displacement" else xl) * mask[..., None]
        com = out.sum(1, keepdim=True) / mask.sum(1).clamp(min=1.0)[:, None, None]
        out = (out - com) * mask[..., None]
        if cond is not None and "fixed" in cond and self.options.output == "position":
            out = anchor(out, mask, cond["fixed"].to(x.device, dtype), cond["known"].to(x.device, dtype))
        return out


#: how far (data units) the network's fixed atoms may be from the kept ones, in shape, before the
#: move onto them is damped (chosen on training molecules: docs/domains/molecules.md, "Editing")
ANCHOR_TAU = 1.0


def kabsch_rotation(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``[B, 3, 3]`` proper rotations r minimising ||p r^T - q|| for centred ``p``, ``q``
    ``[B, N, 3]`` (rows that should not count zeroed in ``p``); the identity where they do not
    fix one (fewer than 3 atoms, or all on a line)."""
    u, s, vt = torch.linalg.svd(p.transpose(1, 2) @ q)
    d = torch.sign(torch.linalg.det(vt.transpose(1, 2) @ u.transpose(1, 2)))
    d = torch.where(d == 0, torch.ones_like(d), d)
    diag = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=-1))
    r = vt.transpose(1, 2) @ diag @ u.transpose(1, 2)
    loose = s[:, 1] <= 1e-6 * s[:, 0].clamp(min=1e-12)
    return torch.where(loose[:, None, None], torch.eye(3, dtype=p.dtype, device=p.device).expand_as(r), r)


def anchor(out: torch.Tensor, mask: torch.Tensor, fixed: torch.Tensor, known: torch.Tensor,
           tau: float = ANCHOR_TAU) -> torch.Tensor:
    """Editing (:mod:`diffcore_molecule.edit`): the predicted positions ``out [B, N, 3]``
    (centred) moved towards the kept atoms: ``out + w (moved - out)`` (a linear blend; at w = 1
    a rigid motion), where ``moved``
    is ``out`` rotated and translated so that its ``fixed [B, N]`` atoms best fit those of
    ``known [B, N, 3]`` (Kabsch), and ``w = tau^2 / (tau^2 + e^2)``, e^2 the mean squared
    distance between the fixed atoms of ``out`` and of ``known``, each set centred on its own
    centroid. A centred x0_hat sits on the input's centroid, so its fixed atoms are off the
    kept ones by as much as the generated atoms' centroid moved: the generated atoms would not
    join the kept ones. Once the network's fixed atoms match the kept ones in shape (e -> 0 as
    the noise falls) its frame is theirs; while they do not (high noise) the move is damped."""
    w = (fixed * mask)[..., None]
    nf = w.sum(1, keepdim=True).clamp(min=1.0)  # [B, 1, 1]
    c_out, c_known = (out * w).sum(1, keepdim=True) / nf, (known * w).sum(1, keepdim=True) / nf
    p, q = out - c_out, known - c_known
    e2 = ((p - q).pow(2) * w).sum((1, 2), keepdim=True) / nf
    moved = p @ kabsch_rotation(p * w, q).transpose(1, 2) + c_known
    weight = tau**2 / (tau**2 + e2) * (w.sum((1, 2)) > 0)[:, None, None]
    return (out + weight * (moved - out)) * mask[..., None]


def build_egnn(options: EGNNOptions, domain) -> EGNN:
    """The EGNN for a set-up molecule domain (its feature sizes fix the input widths)."""
    return EGNN(domain.atom_dim, domain.pair_dim, options)


# ------------------------------------------------------------------ torsion-net
# The score network of torsional diffusion: a learned force field whose torques are the score.
#
# Input: noisy torsion angles ``x_t [B, T]`` of a molecule whose local structure (bond lengths,
# angles, rings) is the conformer ``pos0`` of the condition. The network first *builds* the
# conformer with those torsions (:func:`diffcore_molecule.torsions.set_torsions`): it sees the
# angles only through the geometry they make, so its output is periodic in every angle, which
# the core's torus diffusion requires (:mod:`diffcore.math.torus`).
#
# Over the heavy atoms of that conformer, an invariant message-passing network (atom features,
# the graph's pair features, a radial basis of the current distances, the diffusion time) gives
# every pair of atoms a scalar f_ij, read as a pairwise force. The output for torsion t is the
# torque those forces exert about its bond axis u_t (through atom c_t) on the side that turns:
#
#     tau_t = sum_{i fixed, j turning} f_ij * d d_ij / d theta_t,
#     d d_ij / d theta_t = (r_j - r_i) . (u_t x (r_j - c_t)) / d_ij,
#
# i.e. minus the derivative of the energy sum_ij e(d_ij) along the torsion when f = e'. Like a
# torsion score it is invariant to rotations and translations and changes sign under a
# reflection (the cross product), which a network of distances alone could not give (Jing et al.
# 2022 build the same pseudoscalar with a tensor product over the bond). A per-torsion term
# sum_k c_k sin(k theta_t), with c_k from the features of a, b, c, d, adds the intrinsic torsion
# preference. The sum is normalised by the square root of the number of pairs it runs over.
#
# The network returns the eps of the core's loss, -sigma times the score: the time embedding
# lets it absorb the scale sigma(t).


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
        self.rbf = GaussianRBF(o.rbf, o.rbf_max, width=o.rbf_max / (o.rbf - 1) / 2**0.5)  # exp(-((d - mu) / spacing)^2)
        self.embed_atoms = nn.Linear(atom_dim, h)
        self.time = _mlp(o.time_dim, h, h)
        edim = pair_dim + o.rbf
        self.layers = nn.ModuleList(_Layer(h, edim) for _ in range(o.layers))
        self.force_in, self.force_t = nn.Linear(h + edim, h), nn.Linear(h, h, bias=False)
        self.force = nn.Sequential(nn.SiLU(), nn.Linear(h, h), nn.SiLU(), nn.Linear(h, 1))
        self.harm = _mlp(3 * h, h, o.harmonics) if o.harmonics else None
        nn.init.zeros_(self.force[-1].weight)
        nn.init.zeros_(self.force[-1].bias)

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
            out = out + (c * torch.sin(k * x[..., None])).sum(-1)  # x: the dihedrals the conformer was built with
        return out * tmask.to(x.dtype)


def build_torsion_net(options: TorsionNetOptions, domain) -> TorsionNet:
    """The torsion network for a set-up torsion domain (its feature sizes fix the input widths)."""
    return TorsionNet(domain.atom_dim, domain.pair_dim, options)
