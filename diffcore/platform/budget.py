"""What fits, checked before the work: sample counts against memory and disk, and checkpoints
against what reading them would take.

- **Samples.** ``sample``, ``evaluate`` and ``edit`` hold every generated sample in memory
  before the domain writes or scores them. A count is refused up front when it is not a
  positive integer, when it exceeds :data:`MAX_SAMPLES` (a sanity cap: several runs with
  different ``--seed`` make more), or when its samples -- count x the size of one sample (the
  ``shape`` of the domain's first sampling batch) x 4 bytes -- would take more than
  :data:`MEMORY_SHARE` of the available memory, or more than the free space of the output
  folder.
- **Checkpoints.** A Lightning ``.ckpt`` is a zip whose members ``torch.load`` inflates: their
  uncompressed sizes are summed from the zip's directory before anything is read, and the file
  is refused when that is far beyond what the run's model needs (:data:`CKPT_FACTOR` x its
  state + :data:`CKPT_SLACK`), when it inflates although ``torch.save`` stores its members
  uncompressed, or when it exceeds the available memory. A ``.safetensors`` file's header
  gives every tensor's name, shape and size, compared with the model before the tensors are read.

Standard library only at import.
"""

from __future__ import annotations

import math
import os
import shutil
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..contract.errors import UserError

MAX_SAMPLES = 1_000_000  # per command; more: several runs with different --seed
MEMORY_SHARE = 0.8  # the generated samples may take at most this share of the available memory
BYTES_PER_VALUE = 4  # float32
CKPT_FACTOR = 16  # a checkpoint holds the backbone, its EMA copy and AdamW's two moments (4x); float64 and callbacks' state
CKPT_SLACK = 64 * 2**20  # bytes: Lightning's loop and callback state, pickles, small models
FIX = "use a smaller --num, or several runs with different --seed"


def human(n: float) -> str:
    """``1.5 GB``, ``210 KB``, ``12 B`` (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


# ----------------------------------------------------------------- the machine
def available_memory() -> int | None:
    """Bytes this process can still take: ``MemAvailable`` of /proc/meminfo, within the cgroup's
    limit where one is set (a container), else ``os.sysconf``'s available pages; None if unknown."""
    found: list[int] = []
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, ValueError, OSError):
            pass
    # a container's limit minus its use: cgroup v2 ("max" when unlimited), else v1 (a huge number when unlimited)
    for limit, used in (("memory.max", "memory.current"), ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            text = Path("/sys/fs/cgroup", limit).read_text().strip()
            if text.isdigit():
                found.append(int(text) - int(Path("/sys/fs/cgroup", used).read_text().strip()))
                break
        except (OSError, ValueError):
            continue
    return max(0, min(found)) if found else None


def free_disk(path: Path) -> int | None:
    """Free bytes on the file system that will hold ``path`` (its nearest existing folder)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


# --------------------------------------------------------------------- samples
def check_count(num: Any, what: str = "--num") -> int:
    """``num`` as a count of samples: a positive integer up to :data:`MAX_SAMPLES`."""
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise UserError(f"{what} {num!r}: expected a positive integer, e.g. {what} 64")
    if num > MAX_SAMPLES:
        raise UserError(f"{what} {num}: more than {MAX_SAMPLES:,} samples in one command is refused; {FIX}")
    return num


def checked_batches(batches: Iterable[dict], count: int, *, what: str = "--num", copies: int = 1,
                    out_dir: Path | None = None) -> list[dict]:
    """The sampling batches as a list, once ``count`` samples of the first batch's size (times
    ``copies``: tensors held per sample) are known to fit in the available memory and, with
    ``out_dir``, in its free disk space. Only the first batch is made before the check."""
    it = iter(batches)
    first = next(it, None)
    if first is None:
        return []
    shape = tuple(int(d) for d in first.get("data_shape", first.get("shape", ()))[1:])  # a latent run's decoded samples
    need = count * math.prod(shape) * BYTES_PER_VALUE * copies
    size = f"{count} x {'x'.join(map(str, shape)) or '1'} values x {BYTES_PER_VALUE} bytes" + (f" x {copies}" if copies > 1 else "")
    mem = available_memory()
    if mem is not None and need > MEMORY_SHARE * mem:
        most = max(0, int(MEMORY_SHARE * mem // max(1, need // count)))
        raise UserError(f"{what}: the samples would take about {human(need)} of memory ({size}) and {human(mem)} is "
                        f"available; {FIX} (at most about {most:,} here)")
    free = free_disk(out_dir) if out_dir is not None else None
    if free is not None and need > free:
        raise UserError(f"{what}: the samples would take about {human(need)} ({size}) and {out_dir} has {human(free)} "
                        f"of free disk space; {FIX}, or another --out")
    return [first, *it]


def check_evaluation(domain, num: int, what: str = "--num") -> None:
    """:func:`check_count`, and ``num`` samples of the size of the domain's one-sample batch
    against the memory (a domain's ``evaluate`` may hold them all). A domain that cannot make
    that batch without options (e.g. molecules without held-out ones) is left to say so itself."""
    check_count(num, what)
    try:
        first = next(iter(domain.sample_batches(1, 1)), None)
    except Exception:
        return
    checked_batches([first] if first else [], num, what=f"{what} {num}")


# ----------------------------------------------------------------- checkpoints
def state_bytes(module) -> int:
    """The bytes of a module's state dict (what its checkpoint holds once)."""
    return sum(v.numel() * v.element_size() for v in module.state_dict().values())


def check_checkpoint(path: Path, expected: int | None = None) -> None:
    """Refuse a Lightning checkpoint whose contents would be far larger once read than its
    model needs (``expected``: the model's state bytes, when known), larger than the file (a
    compressed zip: ``torch.save`` stores its members uncompressed), or larger than the
    available memory. Reads the zip's directory only."""
    path = Path(path)
    size = path.stat().st_size
    total = size
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                total = sum(i.file_size for i in z.infolist())
        except (zipfile.BadZipFile, OSError, ValueError):
            return  # torch.load says what is wrong with it
    what = f"checkpoint {path} was refused before it was read: it would take {human(total)} in memory"
    if expected is not None and total > CKPT_FACTOR * expected + CKPT_SLACK:
        raise UserError(f"{what}, far more than this run's model needs ({human(expected)} of weights; its checkpoints "
                        f"hold a few times that); it is not a checkpoint of this run")
    if total > 2 * size + CKPT_SLACK:
        raise UserError(f"{what}, inflated from {human(size)} on disk, and torch.save stores checkpoints "
                        "uncompressed; it was not written by diffcore (or Lightning)")
    mem = available_memory()
    if mem is not None and total > mem:
        raise UserError(f"{what} and {human(mem)} is available; free memory, or use the run's ema.safetensors")


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]] | None:
    """Every tensor's shape from a ``.safetensors`` header (no tensor is read), after checking
    that their bytes fit in the available memory; None if the header cannot be read (loading
    the file then says why)."""
    try:
        from safetensors import safe_open

        shapes, total = {}, 0
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                sl = f.get_slice(key)
                shapes[key] = tuple(int(d) for d in sl.get_shape())
                total += math.prod(shapes[key]) * _ITEMSIZE.get(sl.get_dtype(), 8)
    except Exception:  # SafetensorError, OSError: a corrupt or foreign file
        return None
    mem = available_memory()
    if mem is not None and total > mem:
        raise UserError(f"checkpoint {path} was refused before it was read: its tensors take {human(total)} and "
                        f"{human(mem)} of memory is available")
    return shapes


_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
             "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
