"""Several nodes: what must be set before Lightning joins them, checked with a clear message.

Under torchrun or SLURM the launcher sets every variable. By hand (Lightning's own launcher on
each node), every node needs ``MASTER_ADDR`` and ``MASTER_PORT`` (node 0's address and a free
port) and ``NODE_RANK`` (0 on node 0, then 1, 2, ...). A node other than 0 checks that node 0
answers before it starts, so a wrong address is one line, not a hang of half an hour
(torch's default wait for a process group).
"""

from __future__ import annotations

import os
import socket
import time

from ..contract.errors import UserError

WAIT_ENV = "DIFFCORE_MASTER_WAIT"  # seconds a node waits for node 0 to answer (default 600)
WAIT = 600.0  # node 0 opens its port only once its data and model are ready (a compile, a reference build: minutes)
_LAUNCHED = ("TORCHELASTIC_RUN_ID", "OMPI_COMM_WORLD_SIZE", "JSM_NAMESPACE_SIZE")
HOW = ("on every node set MASTER_ADDR (node 0's address), MASTER_PORT (a free port on node 0) and NODE_RANK "
       "(0 on node 0, then 1, 2, ...), or start the nodes with torchrun or srun, which set them (docs/scaling.md)")


def cluster_launched() -> bool:
    """True when torchrun, SLURM, MPI or LSF started this process (they set up the nodes)."""
    # SLURM as Lightning sees it: srun's tasks, not an interactive salloc shell
    slurm = "SLURM_NTASKS" in os.environ and os.environ.get("SLURM_JOB_NAME") not in ("bash", "interactive")
    return slurm or any(key in os.environ for key in _LAUNCHED)


def node_rank() -> int:
    return int(os.environ.get("NODE_RANK") or os.environ.get("GROUP_RANK") or 0)


def check(num_nodes: int, what: str = "--num-nodes") -> None:
    """Refuse ``num_nodes`` > 1 launched by hand without the variables it needs; on a node
    other than 0 (its first process), wait until node 0 answers at MASTER_ADDR:MASTER_PORT,
    at most ``DIFFCORE_MASTER_WAIT`` seconds."""
    if num_nodes <= 1 or cluster_launched():
        return
    addr, port = os.environ.get("MASTER_ADDR", "").strip(), os.environ.get("MASTER_PORT", "").strip()
    missing = [k for k, v in (("MASTER_ADDR", addr), ("MASTER_PORT", port), ("NODE_RANK", os.environ.get("NODE_RANK"))) if not v]
    if missing:
        raise UserError(f"{what} {num_nodes}: {', '.join(missing)} not set; {HOW}")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{what} {num_nodes}: MASTER_PORT={port!r} is not a port number (1-65535); {HOW}")
    rank = node_rank()
    if not 0 <= rank < num_nodes:
        raise UserError(f"{what} {num_nodes}: NODE_RANK={rank} is not one of 0..{num_nodes - 1}")
    if rank == 0 or "LOCAL_RANK" in os.environ:  # node 0 is the master; a launched process: its node checked
        return
    wait = float(os.environ.get(WAIT_ENV, "") or WAIT)
    deadline = time.monotonic() + wait
    while True:
        try:
            socket.create_connection((addr, int(port)), timeout=min(5.0, max(0.1, wait))).close()
            return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise UserError(f"{what} {num_nodes}: node 0 does not answer at {addr}:{port} after {wait:g} s ({e.strerror or e}); "
                                f"start node 0 (NODE_RANK=0) with the same MASTER_ADDR and MASTER_PORT, check the address and that the "
                                f"port is open between the nodes; node 0 opens the port once its data and model are ready: if that "
                                f"takes longer, raise {WAIT_ENV} (seconds)") from None
            time.sleep(0.5)
