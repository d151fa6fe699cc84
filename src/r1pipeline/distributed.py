"""The few collective operations the pipeline needs when it runs on several processes.

A multi-process run is started by ``accelerate launch`` (or ``torchrun``), which sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and ``MASTER_ADDR``/``MASTER_PORT`` for every process. Every function
here also works in a plain single process (world size 1), where collectives are no-ops, so stage
code calls them unconditionally.

Conventions:

* only the main process (rank 0) writes manifests, summaries, datasets and reports;
* work is split with :func:`shard` (strided by index) and put back in order with :func:`merge`,
  so a sharded result is identical to the single-process one whatever the world size.
"""

from __future__ import annotations

import datetime
import os
from typing import Any, Sequence, TypeVar

T = TypeVar("T")

# Rank 0 may run a long single-process stage (pretraining) while the others wait at a barrier.
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=6)


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def world_size() -> int:
    dist = _dist()
    return dist.get_world_size() if dist else int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    dist = _dist()
    return dist.get_rank() if dist else int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def launched_multiprocess() -> bool:
    """True in a process started by a multi-process launcher (accelerate, torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def device() -> str:
    """Where this process computes: its own GPU (``cuda:LOCAL_RANK``) when there are GPUs, else the CPU."""
    import torch

    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu"


def init() -> None:
    """Join the process group when launched with several processes (gloo on CPU, NCCL on GPUs)."""
    if not launched_multiprocess() or _dist():
        return
    import torch
    import torch.distributed as dist

    _die_with_launcher()

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)


def _die_with_launcher() -> None:
    """Have Linux kill this process when its launcher dies.

    torchrun (and accelerate, which uses it) starts each rank in a session of its own, so a
    SIGKILL of the launcher's process group, or of the launcher, would leave the ranks training
    on as orphans next to the run that resumes them.
    """
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL))
    if os.getppid() != parent:  # the launcher died before the call above
        os._exit(1)


def finish() -> None:
    """Leave the process group together, once rank 0 has written its last file.

    A rank that exits while a peer still works closes its gloo connections under the peer's
    threads, which can abort the peer ("terminate called without an active exception").
    """
    dist = _dist()
    if not dist:
        return
    if dist.get_world_size() > 1:
        dist.barrier()
    dist.destroy_process_group()


def barrier() -> None:
    dist = _dist()
    if dist and dist.get_world_size() > 1:
        dist.barrier()


def all_reduce_sum(tensor):
    """``tensor`` summed over every rank, in place (returned too); itself on one process."""
    dist = _dist()
    if dist and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_object(obj: T, src: int = 0) -> T:
    """``obj`` as held by rank ``src``, on every rank."""
    dist = _dist()
    if not dist or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_object(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order, on every rank."""
    dist = _dist()
    if not dist or dist.get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def shard(items: Sequence[T], rank_: int | None = None, world: int | None = None) -> list[T]:
    """This rank's share of ``items``: every ``world``-th item from position ``rank``.

    >>> [shard(range(5), r, 2) for r in range(2)]
    [[0, 2, 4], [1, 3]]
    """
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    return list(items)[r::w]


def merge(shards: Sequence[Sequence[T]]) -> list[T]:
    """Undo :func:`shard`: ``shards[r]`` holds items r, r+w, r+2w, ... of the original order.

    >>> merge([[0, 2, 4], [1, 3]])
    [0, 1, 2, 3, 4]
    """
    w = len(shards)
    total = sum(len(s) for s in shards)
    return [shards[i % w][i // w] for i in range(total)]
