"""Training throughput of the image default on CPU: examples per second of ``diffcore train
--plugin image-unet`` (its default config: the embedded digits at 16x16, batch 128, the U-Net's
defaults) with ``training.threads`` 1 or 2, ``training.compile`` off/on and
``training.channels_last`` off/on.

    python benchmarks/throughput.py                         # 5-10 minutes on a 2-core CPU (a first compile: +2-3)
    python benchmarks/throughput.py --repeats 5 --steps 20  # steadier figures

Method. Each setting trains a fresh run of ``--warmup + --steps`` steps in this process through
``diffcore.platform.training.train`` (previews and periodic checkpoints off, ``log_every`` 1,
everything else the recipe's defaults); its figure is the median of the ``samples_per_s`` the
run logged over its last ``--steps`` steps (examples per second from the end of one step to the
end of the next: data loading, optimiser and EMA update included). The settings take turns,
round after round (``--repeats`` rounds), so a busy spell of a shared machine hits all of them;
the table shows the median over the rounds, the range over the rounds, and the ratio to the
first setting (1 thread, nothing else) -- the median of the per-round ratios, so both figures
of a ratio come from the same round. Compiling is a one-off cost at the start of a run, shown
apart: the seconds ``diffcore train`` reports (dynamo's in-memory cache is reset before every
run; inductor's on-disk cache makes every compile after the first one faster).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import platform
import re
import statistics
import tempfile
from pathlib import Path

import torch

from diffcore.platform import config, training

SETTINGS = [  # (threads, compile, channels_last); the first is the reference of the ratios
    (1, False, False),
    (1, True, False),
    (1, False, True),
    (2, False, False),
    (2, True, False),
    (2, False, True),
]


def run_once(threads: int, compiled: bool, channels_last: bool, warmup: int, steps: int, root: Path) -> tuple[float, float | None]:
    """(median samples/s over the last ``steps`` steps, seconds of compilation or None)."""
    out = root / f"t{threads}-c{int(compiled)}-cl{int(channels_last)}-{len(list(root.iterdir()))}"
    sets = [f"training.threads={threads}", f"training.compile={str(compiled).lower()}",
            f"training.channels_last={str(channels_last).lower()}", "training.preview_num=0",
            "training.checkpoint_every=0", "training.log_every=1", f"training.max_steps={warmup + steps}",
            "training.accelerator=cpu"]
    resolved = config.resolve("image-unet", sets=sets)
    torch._dynamo.reset()
    prepared = training.prepare_run_dir(resolved, out, resume=False)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            training.train(resolved, out, progress=False)
    finally:
        prepared.release()
    with open(out / "metrics.csv", newline="") as f:
        rates = [float(r["samples_per_s"]) for r in csv.DictReader(f) if r.get("samples_per_s")]
    found = re.search(r"compiled the backbone in ([0-9.]+) s", printed.getvalue())
    return statistics.median(rates[warmup:]), float(found.group(1)) if found else None


def name(threads: int, compiled: bool, channels_last: bool) -> str:
    return f"threads {threads}" + (", compile" if compiled else "") + (", channels_last" if channels_last else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds over all settings")
    parser.add_argument("--steps", type=int, default=8, help="measured steps per run")
    parser.add_argument("--warmup", type=int, default=2, help="steps per run before the measured ones")
    args = parser.parse_args()

    rates: dict[tuple, list[float]] = {s: [] for s in SETTINGS}
    compile_s: dict[tuple, list[float]] = {s: [] for s in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for s in SETTINGS:
                rate, took = run_once(*s, args.warmup, args.steps, Path(tmp))
                rates[s].append(rate)
                if took is not None:
                    compile_s[s].append(took)
                print(f"round {r + 1}/{args.repeats}: {name(*s)}: {rate:.1f} samples/s"
                      + (f" (compiled in {took:.1f} s)" if took is not None else ""), flush=True)
    ref = SETTINGS[0]
    print(f"\ntorch {torch.__version__}, {platform.processor() or platform.machine()}, image-unet defaults (batch 128, 16x16), "
          f"{args.repeats} rounds of {args.warmup} + {args.steps} steps\n")
    print("| setting | samples/s (median) | range over rounds | vs threads 1 | compile (s, per run) |")
    print("|---|---|---|---|---|")
    for s in SETTINGS:
        ratio = statistics.median(a / b for a, b in zip(rates[s], rates[ref]))
        took = ", ".join(f"{t:.0f}" for t in compile_s[s]) or "-"
        print(f"| {name(*s)} | {statistics.median(rates[s]):.1f} | {min(rates[s]):.1f}-{max(rates[s]):.1f} | {ratio:.2f}x | {took} |")


if __name__ == "__main__":
    main()
