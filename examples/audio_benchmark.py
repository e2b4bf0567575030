"""The audio-spectrogram default run, measured: train with the recipe's defaults, evaluate,
and print the figures that docs/domains/audio.md reports.

    python examples/audio_benchmark.py --out runs/audio-bench          # about 10 CPU-minutes
    python examples/audio_benchmark.py --out runs/audio-bench --skip-train --num 512

Times are CPU seconds of the child process (user + system) next to wall-clock seconds: on a
machine shared with other jobs, the CPU time is what the run itself costs. On a busy
machine, set OMP_NUM_THREADS=1: two intra-op threads that keep losing their core to other
processes can make a step many times slower.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def timed(cmd: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    subprocess.run(cmd, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return time.time() - t0, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="run directory to create (or reuse with --skip-train)")
    ap.add_argument("--num", type=int, default=512, help="samples for `diffcore evaluate` (default 512: 32 per class)")
    ap.add_argument("--skip-train", action="store_true", help="evaluate an existing run")
    ap.add_argument("--set", action="append", default=[], help="extra --set KEY=VALUE for training")
    args = ap.parse_args()
    exe = [sys.executable, "-m", "diffcore.cli"]
    if not args.skip_train:
        sets = [x for s in args.set for x in ("--set", s)]
        wall, cpu = timed([*exe, "train", "--plugin", "audio-spectrogram", "--out", str(args.out), "--no-progress", *sets])
        print(f"train: {wall:.0f} s wall, {cpu:.0f} s CPU")
    wall, cpu = timed([*exe, "evaluate", "--run", str(args.out), "--num", str(args.num)])
    print(f"evaluate --num {args.num}: {wall:.0f} s wall, {cpu:.0f} s CPU")
    m = json.loads((args.out / "metrics.json").read_text())
    print(f"pitch accuracy {m.get('pitch_accuracy', float('nan')):.3f} (median error {m.get('pitch_median_abs_cents', float('nan')):.1f} cents)")
    print(f"MFCC Fréchet {m['mfcc_frechet']:.1f}, floor {m['mfcc_frechet_floor']:.1f}, ratio {m['mfcc_frechet_ratio']:.2f}")
    print(f"against raw audio: {m['mfcc_frechet_raw']:.1f}, floor {m['mfcc_frechet_raw_floor']:.1f}, round trip {m['mfcc_frechet_roundtrip']:.1f}")


if __name__ == "__main__":
    main()
