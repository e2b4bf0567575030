"""Sampling on one process vs several: wall time of `diffcore sample` for the image default.

    python benchmarks/sample_scaling.py [--run RUN] [--num 64] [--steps 20] [--repeats 3]

Without --run, a run of the image recipe is trained for 2 steps first (sampling cost does not
depend on the weights). Settings are timed in turn, round after round (A B C A B C ...), so a
drift of the shared machine's speed touches each alike; the table gives medians and the ratios
taken round by round. Every setting's files are compared with the first's: sharded sampling
must write the same bytes.
"""

from __future__ import annotations

import argparse
import filecmp
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "diffcore.platform.cli"]
SETTINGS = [("1 process x 1 thread", 1, 1), ("1 process x 2 threads", 1, 2), ("2 processes x 1 thread", 2, 1)]


def run(args: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(CLI + args, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: diffcore {' '.join(args)}\n{proc.stderr}")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path)
    ap.add_argument("--num", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sample-scaling-"))
    if a.run is None:
        a.run = work / "run"
        run(["train", "--plugin", "image-unet", "--out", str(a.run), "--max-steps", "2", "--threads", "1", "--set",
             "training.preview_num=0", "--no-progress"])
    times: dict[str, list[float]] = {name: [] for name, _, _ in SETTINGS}
    outs = {}
    for r in range(a.repeats):
        for name, devices, threads in SETTINGS:
            outs[name] = work / f"{devices}x{threads}-{r}"
            times[name].append(run(["sample", "--run", str(a.run), "--num", str(a.num), "--steps", str(a.steps), "--batch-size",
                                    str(a.batch_size), "--accelerator", "cpu", "--devices", str(devices), "--threads", str(threads),
                                    "--out", str(outs[name])]))
    first = outs[SETTINGS[0][0]]
    same = {name: all(filecmp.cmp(p, outs[name] / p.name, shallow=False) for p in first.iterdir() if p.is_file()) for name in outs}
    base = times[SETTINGS[0][0]]
    print(f"`diffcore sample` of {a.num} images, {a.steps} steps, batch {a.batch_size}, {a.repeats} rounds "
          f"(medians; ratio to 1 x 1 per round, then the median)\n")
    print("| setting | wall s | speed-up | same files as 1 x 1 |\n|---|---:|---:|---|")
    for name, _, _ in SETTINGS:
        ratio = statistics.median(b / t for b, t in zip(base, times[name]))
        print(f"| {name} | {statistics.median(times[name]):.1f} | {ratio:.2f}x | {'yes' if same[name] else 'NO'} |")


if __name__ == "__main__":
    main()
