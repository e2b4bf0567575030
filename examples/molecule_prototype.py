"""Prototype / benchmark of the molecule-cartesian recipe (the coordinate model) with the core API only (no CLI):
train the EGNN with diffcore.DiffusionLoss + AdamW (+ EMA), then evaluate on held-out
molecules with the plugin's metrics. Used to choose the recipe's defaults; run niced:

    nice -n 10 python examples/molecule_prototype.py --steps 2000 --minutes 20
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

import diffcore  # noqa: E402
from diffcore_molecule.backbone import EGNN, EGNNOptions  # noqa: E402
from diffcore_molecule.domain import MoleculeDomain, MoleculeOptions  # noqa: E402
from diffcore_molecule.metrics import evaluate_model  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--minutes", type=float, default=20.0, help="stop training after this wall time")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--message-layers", type=int, default=1)
    p.add_argument("--no-filter", action="store_true")
    p.add_argument("--spacing", default=None)
    p.add_argument("--output", default="position")
    p.add_argument("--weighting", default="snr")
    p.add_argument("--gamma", type=float, default=5.0)
    p.add_argument("--schedule", default="linear")
    p.add_argument("--prediction", default="x0")
    p.add_argument("--sampler", default="ddpm")
    p.add_argument("--sample-steps", type=int, default=200)
    p.add_argument("--eval-mols", type=int, default=30)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--max-atoms", type=int, default=24)
    p.add_argument("--workdir", default="/tmp/molcache")
    p.add_argument("--out", default="/tmp/molproto")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    domain = MoleculeDomain(MoleculeOptions(max_atoms=args.max_atoms), workdir=Path(args.workdir))
    t0 = time.time()
    domain.setup()
    print(f"data: {len(domain.train_idx)} train / {len(domain.val_idx)} held-out molecules, "
          f"scale {domain.scale} A, {time.time() - t0:.1f}s", flush=True)
    ds = domain.train_dataset()
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, shuffle=True, collate_fn=domain.collate, drop_last=True)
    net = EGNN(domain.atom_dim, domain.pair_dim, EGNNOptions(hidden=args.hidden, layers=args.layers, message_layers=args.message_layers, distance_filter=not args.no_filter, output=args.output))
    print("parameters:", sum(p.numel() for p in net.parameters()), flush=True)
    ema = copy.deepcopy(net).requires_grad_(False)
    schedule = diffcore.schedules.get(args.schedule)
    loss_fn = diffcore.DiffusionLoss(schedule, prediction=args.prediction, weighting=args.weighting, min_snr_gamma=args.gamma)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr)
    step, t0, c0, hist = 0, time.time(), time.process_time(), []
    while step < args.steps and time.time() - t0 < 60 * args.minutes:
        for batch in loader:
            loss = loss_fn(net, batch["x"], batch["cond"], mask=batch["mask"],
                           noise_fn=lambda like, b=batch: domain.noise(like, b))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            d = min(args.ema, (1 + step) / (10 + step))
            with torch.no_grad():
                for pe, pn in zip(ema.parameters(), net.parameters()):
                    pe.lerp_(pn, 1 - d)
            hist.append(loss.item())
            step += 1
            if step % 50 == 0:
                el = time.time() - t0
                cpu = (time.process_time() - c0) / step
                print(f"step {step} loss {sum(hist[-50:]) / 50:.4f} {el / step:.3f}s/step (cpu {cpu:.3f}s) {el / 60:.1f}min", flush=True)
            if step >= args.steps or time.time() - t0 > 60 * args.minutes:
                break
    train_s, train_cpu = time.time() - t0, time.process_time() - c0
    ema.eval()

    def sample_fn(batch):
        noise = domain.noise(torch.zeros(batch["shape"]), batch)
        return diffcore.generate(lambda x, t: ema(x, t, batch["cond"]), noise, schedule, sampler=args.sampler,
                                 steps=args.sample_steps, prediction=args.prediction, spacing=args.spacing,
                                 noise_fn=lambda like: domain.noise(like, batch))

    t1 = time.time()
    graphs = [domain.graphs[i] for i in domain.val_idx[: args.eval_mols]]
    m = evaluate_model(domain, graphs, sample_fn, Path(args.out))
    m.update(train_seconds=train_s, train_cpu_seconds=train_cpu, threads=torch.get_num_threads(), steps=step, eval_seconds=time.time() - t1)
    print(json.dumps(m, indent=1), flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    torch.save(ema.state_dict(), Path(args.out) / "ema.pt")


if __name__ == "__main__":
    main()
