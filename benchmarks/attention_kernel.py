"""Self-attention's SDPA kernel on CPU: forward time and peak extra memory of the image
plugin's U-Net with q, k, v handed to ``F.scaled_dot_product_attention`` as transposed views
(the code before: torch runs its math kernel, which builds the whole [B, heads, N, N] score
matrix) and as [B, heads, N, d] with d contiguous (:class:`diffcore.nn.SelfAttention` now: the
fused flash kernel for CPU).

    python benchmarks/attention_kernel.py                  # about two minutes on one thread
    python benchmarks/attention_kernel.py --repeats 3      # quicker

Method. The U-Net is built as ``diffcore train --plugin image-unet --set data.resolution=R``
builds it (``build_unet`` of the image plugin, 3 channels, no labels), with the backbone's
defaults and with attention at 16x16 on three levels. Both paths run in this one process on
the same weights and input, under ``torch.no_grad()`` (sampling); the old path is the previous
``SelfAttention.forward``, put back for its runs. Time: the median of ``--repeats`` forwards
per path, the two paths alternating, after one warm-up each; the speed-up is the ratio of the
two medians. Memory: the peak, over one forward, of the bytes torch's CPU allocator holds above
what it held when the forward began (the profiler's allocation events, in order).
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from diffcore_image.backbone import UNetOptions, build_unet
from torch.profiler import ProfilerActivity, profile

from diffcore.nn import SelfAttention

CONFIGS = {  # name -> the backbone: section
    "defaults": {},
    "attention at 16x16": {"channel_mult": [1, 2, 2], "attention_resolutions": [16]},
}
NEW_FORWARD = SelfAttention.forward


def transposed_views(self, x: torch.Tensor) -> torch.Tensor:
    """``SelfAttention.forward`` before: q, k, v as transposed (stride N along d) views."""
    b, c = x.shape[:2]
    spatial = x.shape[2:]
    q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, -1).unbind(1)
    out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
    out = out.transpose(-1, -2).reshape(b, c, *spatial)
    return x + self.proj(out)


@contextlib.contextmanager
def path(old: bool):
    SelfAttention.forward = transposed_views if old else NEW_FORWARD
    try:
        yield
    finally:
        SelfAttention.forward = NEW_FORWARD


def unet(config: dict, resolution: int) -> torch.nn.Module:
    torch.manual_seed(0)
    domain = SimpleNamespace(options=SimpleNamespace(resolution=resolution), channels=3, labels=[])
    net = build_unet(UNetOptions(**config), domain).eval()
    for m in net.modules():  # zero-initialised output convolutions (as at step 0) would hide the attention
        if isinstance(m, torch.nn.Conv2d) and not m.weight.any():
            torch.nn.init.normal_(m.weight, std=0.05)
    return net


def tokens(net: torch.nn.Module, resolution: int) -> int:
    """The longest attention sequence: the positions of the largest attended feature map."""
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(i[0][0, 0].numel())) for m in net.modules() if isinstance(m, SelfAttention)]
    with torch.no_grad():
        net(torch.zeros(1, 3, resolution, resolution), torch.zeros(1))
    for h in hooks:
        h.remove()
    return max(seen)


def forward_time(net, x, t) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        net(x, t)
    return time.perf_counter() - start


def peak_extra_bytes(net, x, t) -> int:
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        net(x, t)
    held = peak = 0
    allocations = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    for _, nbytes in allocations:
        held += nbytes
        peak = max(peak, held)
    return peak


def measure(config: dict, resolution: int, batch: int, repeats: int) -> dict:
    net = unet(config, resolution)
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(batch, 3, resolution, resolution, generator=g), torch.rand(batch, generator=g)
    with torch.no_grad():
        outs = {}
        for old in (True, False):
            with path(old):
                outs[old] = net(x, t)  # also the warm-up
    times = {True: [], False: []}
    for _ in range(repeats):
        for old in (True, False):
            with path(old):
                times[old].append(forward_time(net, x, t))
    memory = {}
    for old in (True, False):
        with path(old):
            memory[old] = peak_extra_bytes(net, x, t)
    return {
        "tokens": tokens(net, resolution),
        "old_ms": 1e3 * statistics.median(times[True]),
        "new_ms": 1e3 * statistics.median(times[False]),
        "old_mib": memory[True] / 2**20,
        "new_mib": memory[False] / 2**20,
        "diff": (outs[True] - outs[False]).abs().max().item(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s), "
          f"batch {args.batch}, median of {args.repeats} forwards (no_grad)\n")
    print("| U-Net | resolution | longest attention (positions) | transposed views (ms) | contiguous (ms) | speed-up "
          "| peak extra, views (MiB) | peak extra, contiguous (MiB) | max abs difference |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, config in CONFIGS.items():
        for res in args.resolutions:
            r = measure(config, res, args.batch, args.repeats)
            print(f"| {name} | {res}x{res} | {r['tokens']} | {r['old_ms']:.0f} | {r['new_ms']:.0f} | {r['old_ms'] / r['new_ms']:.2f}x "
                  f"| {r['old_mib']:.1f} | {r['new_mib']:.1f} | {r['diff']:.1e} |", flush=True)


if __name__ == "__main__":
    main()
