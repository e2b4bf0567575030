"""Prototype of the image-unet default run, without Lightning or the CLI (not a test).

Trains the image plugin's U-Net on the embedded digits with the core's pieces only
(``diffcore.DiffusionLoss`` + AdamW + EMA, ``diffcore.generate`` + ``diffcore.classifier_free``),
to choose the recipe's defaults: it reports wall-clock and CPU time per step and the
metrics of ``ImageDomain.evaluate`` (class consistency, Fréchet distance and its floor).

    nice -n 10 python examples/image_prototype.py train --steps 800 --save 400,600,800 --out /tmp/proto/v
    nice -n 10 python examples/image_prototype.py eval /tmp/proto/v/ema_600.pt --num 512 --guidance 1 1.5
    nice -n 10 python examples/image_prototype.py train --prediction eps --steps 800 --save 400,800 --out /tmp/proto/eps

The EMA follows diffcore.training (decay min(ema_decay, (1 + step) / (10 + step))).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

import diffcore
from diffcore import schedules
from diffcore_image.backbone import UNetOptions, build_unet
from diffcore_image.domain import ImageDomain, ImageOptions


def make(args) -> tuple[ImageDomain, torch.nn.Module]:
    domain = ImageDomain(ImageOptions(resolution=args.resolution))
    domain.setup()
    opts = UNetOptions(
        base_channels=args.base_channels, channel_mult=args.channel_mult, num_res_blocks=args.num_res_blocks,
        attention_resolutions=args.attention, label_drop_prob=args.label_drop,
    )
    return domain, build_unet(opts, domain)


def train(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps(vars(args), indent=1))
    torch.manual_seed(args.seed)
    domain, net = make(args)
    ema = copy.deepcopy(net).requires_grad_(False)
    print(f"params {sum(p.numel() for p in net.parameters()) / 1e6:.2f}M", flush=True)
    sched = schedules.get(args.schedule)
    loss_fn = diffcore.DiffusionLoss(sched, prediction=args.prediction)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.0)
    warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, args.warmup)))
    loader = torch.utils.data.DataLoader(domain.train_dataset(), batch_size=args.batch_size, shuffle=True, drop_last=True)
    save = {int(s) for s in args.save.split(",")} if args.save else {args.steps}
    step, t_wall, t_cpu, run_loss = 0, time.perf_counter(), time.process_time(), 0.0
    while step < args.steps:
        for batch in loader:
            loss = loss_fn(net, batch["x"], batch["cond"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            warm.step()
            step += 1
            with torch.no_grad():
                decay = min(args.ema_decay, (1 + step) / (10 + step))
                for e, p in zip(ema.parameters(), net.parameters()):
                    e.lerp_(p, 1.0 - decay)
            run_loss += loss.item()
            if step % 50 == 0:
                w, c = time.perf_counter() - t_wall, time.process_time() - t_cpu
                print(f"step {step} loss {run_loss / 50:.4f} wall/step {w / step:.3f}s cpu/step {c / step:.3f}s", flush=True)
                run_loss = 0.0
            if step in save:
                torch.save(ema.state_dict(), out / f"ema_{step}.pt")
            if step >= args.steps:
                break
    w, c = time.perf_counter() - t_wall, time.process_time() - t_cpu
    (out / "timing.json").write_text(json.dumps({"steps": step, "wall_s": w, "cpu_s": c}))
    print(f"trained {step} steps: wall {w:.0f}s ({w / step:.3f}s/step), cpu {c:.0f}s ({c / step:.3f}s/step)")


def evaluate(args) -> None:
    ckpt = Path(args.checkpoint)
    targs = argparse.Namespace(**json.loads((ckpt.parent / "args.json").read_text()))
    domain, net = make(targs)
    net.load_state_dict(torch.load(ckpt, weights_only=True))
    net.eval()
    sched = schedules.get(targs.schedule)
    for w in args.guidance:
        gen = torch.Generator().manual_seed(args.seed)

        def sample_fn(batch):
            noise = torch.randn(batch["shape"], generator=gen)
            model = diffcore.classifier_free(net, batch.get("cond"), w)
            with torch.no_grad():
                return diffcore.generate(
                    model, noise, sched, sampler=args.sampler, steps=args.sample_steps, clip_x0=args.clip_x0 or None,
                    prediction=getattr(targs, "prediction", "eps"),
                    generator=gen, **({"spacing": args.spacing} if args.spacing else {}),
                )

        t0 = time.perf_counter()
        tag = f"w{w}_clip{args.clip_x0}_{args.spacing or 'default'}_{args.sample_steps}"
        m = domain.evaluate(sample_fn, args.num, ckpt.parent / f"eval_{ckpt.stem}_{tag}")
        m.update(guidance=w, eval_wall_s=time.perf_counter() - t0)
        print(json.dumps({k: round(v, 4) for k, v in m.items()}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--out", required=True)
    t.add_argument("--steps", type=int, default=1000)
    t.add_argument("--save", default="", help="comma-separated steps at which to save the EMA weights")
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--warmup", type=int, default=50)
    t.add_argument("--ema-decay", type=float, default=0.999)
    t.add_argument("--schedule", default="cosine")
    t.add_argument("--prediction", default="v", help="eps, x0, v")
    t.add_argument("--resolution", type=int, default=16)
    t.add_argument("--base-channels", type=int, default=32)
    t.add_argument("--channel-mult", type=int, nargs="+", default=[1, 2])
    t.add_argument("--num-res-blocks", type=int, default=2)
    t.add_argument("--attention", type=int, nargs="*", default=[8])
    t.add_argument("--label-drop", type=float, default=0.1)
    t.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("eval")
    e.add_argument("checkpoint")
    e.add_argument("--guidance", type=float, nargs="+", default=[2.0])
    e.add_argument("--num", type=int, default=512)
    e.add_argument("--sampler", default="ddim")
    e.add_argument("--sample-steps", type=int, default=50)
    e.add_argument("--clip-x0", type=float, default=1.0, help="clamp x0 predictions to [-v, v] (0: no clamp)")
    e.add_argument("--spacing", default=None, help="trailing, leading, linspace (default: the sampler's)")
    e.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    train(args) if args.cmd == "train" else evaluate(args)


if __name__ == "__main__":
    main()
