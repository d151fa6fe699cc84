"""The guard's worker processes: persistent children that score one sample per message.

``safe.GuardedReward`` starts them, sends ``(index, text, row)`` and kills one that runs past
its time limit; this module is only the process plumbing (start, talk, stop, die with the
trainer).
"""

from __future__ import annotations

import atexit
import math
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import weakref
from multiprocessing.connection import Connection
from typing import Any


def _value(v: Any) -> float | None:
    """A reward value as float or None; raises on anything that is not one."""
    if v is None:
        return None
    f = float(v)  # raises TypeError / ValueError on non-numbers
    if math.isnan(f):
        return None
    if math.isinf(f):
        raise ValueError(f"infinite reward {f}")
    return f


def _exit_with_parent(parent: int) -> None:
    """End the worker when the trainer is gone (the trainer also kills its workers at exit)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _worker_main(conn, fn_bytes: bytes) -> None:
    """Worker process: load the reward, then score one sample per message until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    try:
        fn = pickle.loads(fn_bytes)
    except BaseException as e:  # noqa: BLE001
        conn.send(("failed", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        i, text, row = msg
        try:
            out = list(fn([text], **{k: [v] for k, v in row.items()}))
            if len(out) != 1:
                raise ValueError(f"returned {len(out)} values for 1 completion")
            conn.send((i, "ok", _value(out[0])))
        except Exception as e:  # noqa: BLE001
            conn.send((i, "error", f"{type(e).__name__}: {e}"[:500]))


_LIVE_WORKERS: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _kill_workers() -> None:
    for w in list(_LIVE_WORKERS):
        w.stop(kill=True)


class _Worker:
    """A persistent ``python -c`` child talking pickles over two pipes.

    A plain subprocess rather than ``multiprocessing.Process``: spawn would re-import the
    trainer's ``__main__`` in the child, fork is unsafe in a process with torch threads, and
    neither works from a daemonic process (a data-loader worker).
    """

    def __init__(self, fn_bytes: bytes, name: str):
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        code = ("from r1pipeline.rewards.workers import _worker_entry; "
                f"_worker_entry({to_child_r}, {from_child_w})")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        try:
            self.proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=(to_child_r, from_child_w),
                                         stdin=subprocess.DEVNULL, env=env, close_fds=True)
        except BaseException:
            os.close(to_child_w)
            os.close(from_child_r)
            raise
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self.conn = _Duplex(Connection(from_child_r, writable=False), Connection(to_child_w, readable=False))
        self.conn.send(fn_bytes)
        self.name = name
        _LIVE_WORKERS.add(self)
        self.ready = False
        self.started = time.monotonic()

    def stop(self, kill: bool) -> None:
        try:
            if not kill and self.proc.poll() is None:
                self.conn.send(None)
                self.proc.wait(timeout=2)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        try:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.conn.close()


class _Duplex:
    """One end of two pipes: ``recv`` from one, ``send`` to the other; ``wait()``-able."""

    def __init__(self, r: Connection, w: Connection):
        self.r, self.w = r, w

    def fileno(self) -> int:
        return self.r.fileno()

    def send(self, obj) -> None:
        self.w.send(obj)

    def recv(self):
        return self.r.recv()

    def close(self) -> None:
        for c in (self.r, self.w):
            try:
                c.close()
            except OSError:
                pass


def _worker_entry(read_fd: int, write_fd: int) -> None:
    conn = _Duplex(Connection(read_fd, writable=False), Connection(write_fd, readable=False))
    _worker_main(conn, conn.recv())
