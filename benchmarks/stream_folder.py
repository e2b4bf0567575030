"""Training on an image folder larger than memory: peak memory against folder size, streamed
(``data.stream: true``, images decoded per item in DataLoader workers) and read up front
(``data.stream: false``).

    python benchmarks/stream_folder.py                       # 10k, 50k, 200k PNGs: about 8 minutes on 2 CPUs
    python benchmarks/stream_folder.py --sizes 2000 10000 --memory-sizes 2000 --steps 50   # quick

Method. One folder grows through ``--sizes``: 16x16 grayscale PNGs of scikit-learn's digits
(upsampled, shifted by up to a pixel, with a little noise, so no two are equal), one subfolder
per digit, written with ``--writers`` processes into ``--dir`` (removed at the end unless
``--keep``). At each size, ``diffcore train --plugin image-unet`` runs ``--steps`` steps of a
tiny U-Net (base_channels 8, one block per level, no attention; batch 64, one torch thread,
``--workers`` DataLoader workers, no previews or step checkpoints) in a subprocess. Its memory
is read from /proc: the training process's peak resident set (``VmHWM``: exact, the kernel's
high-water mark), and, polled every 50 ms, the peak of the training process's resident set plus
its workers' private memory (``Private_Clean + Private_Dirty``: the pages a worker does not
share with the trainer it was forked from), i.e. the memory the whole run holds, each page
counted once; and the peak of the workers' private memory alone. (Not the proportional set size: on a shared machine it moves with whatever else
maps the same libraries.) The in-memory path
runs at ``--memory-sizes`` for comparison (it has no workers: nothing left to decode). The
listing a streamed run starts with (``diffcore_image.data.list_images``) is also timed here, in
this process, with the bytes its array of names takes.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESOLUTION = 16
MODEL = ["backbone.base_channels=8", "backbone.channel_mult=[1,2]", "backbone.num_res_blocks=1",
         "backbone.attention_resolutions=[]", "training.batch_size=64", "training.preview_num=0",
         "training.checkpoint_every=0", "training.log_every=50"]


# ------------------------------------------------------------------- the folder
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float32) / 16.0, d.target


def _write(args: tuple[str, int, int]) -> int:
    """Write images ``start`` .. ``stop - 1`` under ``root`` (one process of the pool)."""
    from PIL import Image

    root, start, stop = args
    images, labels = _digits()
    rng = np.random.default_rng(start)
    for i in range(start, stop):
        k = i % len(images)
        big = np.kron(images[k], np.ones((2, 2), np.float32))  # 8x8 -> 16x16
        big = np.roll(big, tuple(rng.integers(-1, 2, 2)), axis=(0, 1))
        pixels = np.clip(big * 255 + rng.normal(0, 8, big.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(os.path.join(root, str(labels[k]), f"{i:07d}.png"), compress_level=1)
    return stop - start


def grow(root: Path, have: int, want: int, writers: int) -> None:
    """Add images ``have`` .. ``want - 1`` to the folder ``root``."""
    for c in range(10):
        (root / str(c)).mkdir(parents=True, exist_ok=True)
    edges = np.linspace(have, want, writers * 8 + 1).astype(int)
    jobs = [(str(root), int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    with multiprocessing.get_context("fork").Pool(writers) as pool:
        assert sum(pool.map(_write, jobs)) == want - have


def listing(root: Path) -> tuple[float, int]:
    """Seconds to list the folder as a streamed run does, and the bytes of the names kept."""
    from diffcore_image.data import list_images

    t0 = time.perf_counter()
    found = list_images(root)
    return time.perf_counter() - t0, found.rel.nbytes + found.ids.nbytes


def folder_bytes(root: Path) -> tuple[int, int]:
    """Bytes of the files' contents, and bytes the files take on disk (whole blocks)."""
    size = disk = 0
    for d in os.scandir(root):
        for e in os.scandir(d.path):
            st = e.stat()
            size, disk = size + st.st_size, disk + st.st_blocks * 512
    return size, disk


# ------------------------------------------------------------------- memory
def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(k) for k in f.read().split()]
    except OSError:
        return []
    return kids + [g for k in kids for g in _children(k)]


def _field(path: str, *names: str) -> int:
    """The sum of ``kB`` fields of /proc/PID/status or smaps_rollup, in bytes (0 if the process
    is gone)."""
    total = 0
    try:
        with open(path) as f:
            for line in f:
                if line.split(":")[0] in names:
                    total += int(line.split()[1]) * 1024
    except OSError:
        pass
    return total


def train(folder: Path, stream: bool, steps: int, workers: int, out: Path) -> dict:
    """Run ``diffcore train`` on ``folder``; its wall time and memory peaks."""
    cmd = [sys.executable, "-m", "diffcore.cli", "train", "--plugin", "image-unet", "--out", str(out),
           "--max-steps", str(steps), "--threads", "1", "--no-progress",
           "--set", f"data.path={folder}", "--set", f"data.stream={str(stream).lower()}",
           "--set", f"training.num_workers={workers if stream else 0}"]
    for item in MODEL:
        cmd += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    hwm = held = own = 0
    while proc.poll() is None:
        hwm = max(hwm, _field(f"/proc/{proc.pid}/status", "VmHWM"))
        workers = sum(_field(f"/proc/{p}/smaps_rollup", "Private_Clean", "Private_Dirty") for p in _children(proc.pid))
        held, own = max(held, _field(f"/proc/{proc.pid}/status", "VmRSS") + workers), max(own, workers)
        time.sleep(0.05)
    log = proc.stdout.read()
    if proc.returncode:
        raise SystemExit(f"diffcore train failed ({proc.returncode}):\n{log[-3000:]}")
    return {"seconds": time.perf_counter() - t0, "rss": hwm, "held": held, "workers": own}


# ------------------------------------------------------------------- main
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000], help="folder sizes (files), increasing")
    p.add_argument("--memory-sizes", type=int, nargs="*", default=[10_000, 50_000, 200_000], help="sizes also trained with data.stream: false")
    p.add_argument("--steps", type=int, default=300, help="training steps per run")
    p.add_argument("--workers", type=int, default=2, help="training.num_workers of the streamed runs")
    p.add_argument("--writers", type=int, default=os.cpu_count() or 1, help="processes writing the PNGs")
    p.add_argument("--dir", type=Path, default=None, help="where the folder is written (default: a new folder under /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the folder and the runs")
    args = p.parse_args()
    if args.sizes != sorted(args.sizes):
        raise SystemExit("--sizes must increase (one folder grows through them)")
    base = args.dir or Path(tempfile.mkdtemp(prefix="diffcore-stream-", dir="/tmp"))
    if args.dir is not None and args.dir.exists() and any(args.dir.iterdir()):
        raise SystemExit(f"--dir {args.dir} is not empty; give a new or empty folder (it is removed afterwards)")
    folder, runs = base / "images", base / "runs"
    rows, have = [], 0
    try:
        for n in args.sizes:
            t0 = time.perf_counter()
            grow(folder, have, n, args.writers)
            have = n
            size, disk = folder_bytes(folder)
            print(f"{n} images written in {time.perf_counter() - t0:.0f} s ({size / 2**20:.0f} MiB, {disk / 2**20:.0f} MiB on disk)", flush=True)
            seconds, names = listing(folder)
            print(f"  listed in {seconds:.2f} s, names and class ids kept in {names / 2**20:.1f} MiB", flush=True)
            for stream in (True, False) if n in args.memory_sizes else (True,):
                r = train(folder, stream, args.steps, args.workers, runs / f"{n}-{stream}")
                rows.append((n, size, disk, stream, r))
                print(f"  stream={stream}: {r['seconds']:.0f} s, peak RSS {r['rss'] / 2**20:.0f} MiB, workers' own {r['workers'] / 2**20:.0f} MiB, with workers {r['held'] / 2**20:.0f} MiB", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    print(f"\n{args.steps} steps at batch 64 on {RESOLUTION}x{RESOLUTION} grayscale PNGs, one torch thread, "
          f"{args.workers} workers when streamed; {os.cpu_count()} CPUs\n")
    print("| files | folder (contents / on disk) | data.stream | wall | peak RSS, trainer | workers' own, peak | trainer + workers' own, peak |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for n, size, disk, stream, r in rows:
        mode = f"true ({args.workers} workers)" if stream else "false (in memory)"
        print(f"| {n:,} | {size / 2**20:.0f} / {disk / 2**20:.0f} MiB | {mode} | {r['seconds']:.0f} s | "
              f"{r['rss'] / 2**20:.0f} MiB | {r['workers'] / 2**20:.0f} MiB | {r['held'] / 2**20:.0f} MiB |")


if __name__ == "__main__":
    main()
