"""Per-run cgroups: a process-count and memory cap on the whole run, and a way to kill all of it.

Both cgroup layouts are handled: v2 (one unified hierarchy) and v1 (one hierarchy per controller),
and the hybrid of the two, where a process is in one cgroup of every hierarchy at once. For each
usable hierarchy a run gets a child of this process's own cgroup there (``r1sbx-<pid>-<n>``), with
``pids.max`` and the memory limit set where that hierarchy has the controller. Killing uses v2's
``cgroup.kill`` where the kernel has it (5.14+; it also stops a fork bomb racing the kill), else
repeated SIGKILL of every listed task. Only root (or a delegated subtree) can do any of this;
``discover()`` returns what works and the sandbox degrades to rlimits without it.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "r1sbx-"
_counter = itertools.count()


@dataclass(frozen=True)
class Hierarchy:
    """A writable cgroup directory (this process's own cgroup in one hierarchy)."""

    version: int  # 1 or 2
    controllers: frozenset[str]  # for v1 the mount's controllers; for v2 those children get
    base: Path

    @property
    def can_kill(self) -> bool:
        return self.version == 2


def _own_paths() -> dict[str, str]:
    """Controller list (``""`` for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        paths[controllers] = path
    return paths


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(fstype, mount root, mount point, super options) of cgroup mounts, from mountinfo."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if rfields and rfields[0] in ("cgroup", "cgroup2"):
            found.append((rfields[0], fields[3], fields[4], set(rfields[2].split(","))))
    return found


def _base_dir(mount_root: str, mount_point: str, own: str) -> Path | None:
    if not (own + "/").startswith(mount_root.rstrip("/") + "/"):
        return None
    return Path(mount_point) / own[len(mount_root.rstrip("/")):].lstrip("/")


def _writable(base: Path) -> bool:
    probe = base / f"{PREFIX}probe-{os.getpid()}-{next(_counter)}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError:
        return False
    return True


def discover() -> list[Hierarchy]:
    """The hierarchies where this process may create child cgroups (pids, memory, v2)."""
    try:
        own, mounts = _own_paths(), _mounts()
    except OSError:
        return []
    found: list[Hierarchy] = []
    for fstype, root, point, options in mounts:
        if fstype == "cgroup2" and "" in own:
            base = _base_dir(root, point, own[""])
            if base is None:
                continue
            try:
                controllers = frozenset((base / "cgroup.subtree_control").read_text().split())
            except OSError:
                continue
            found.append(Hierarchy(2, controllers, base))
        elif fstype == "cgroup":
            wanted = options & {"pids", "memory"}
            key = next((k for k in own if k and set(k.split(",")) & wanted), None)
            if wanted and key is not None:
                base = _base_dir(root, point, own[key])
                if base is not None:
                    found.append(Hierarchy(1, frozenset(wanted), base))
    return [h for h in found if _writable(h.base)]


@dataclass
class RunCgroup:
    """The cgroups of one run, one per usable hierarchy."""

    hierarchies: list[Hierarchy]
    max_processes: int
    memory_bytes: int
    dirs: list[Path] = field(default_factory=list)

    def create(self) -> list[str]:
        """Create the cgroups and set their limits; returns the ``cgroup.procs`` files to join."""
        name = f"{PREFIX}{os.getpid()}-{next(_counter)}"
        for h in self.hierarchies:
            d = h.base / name
            d.mkdir()
            self.dirs.append(d)
            self._limit(d, h.version)
        return [str(d / "cgroup.procs") for d in self.dirs]

    def _limit(self, d: Path, version: int) -> None:
        settings = {"pids.max": self.max_processes}
        if version == 2:
            settings |= {"memory.max": self.memory_bytes, "memory.swap.max": 0}
        else:
            settings |= {"memory.limit_in_bytes": self.memory_bytes,
                         "memory.memsw.limit_in_bytes": self.memory_bytes}
        for key, value in settings.items():
            if (d / key).exists():
                (d / key).write_text(str(value))

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs:
            try:
                found |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
            except OSError:
                pass
        return found

    def kill(self, timeout_s: float = 2.0) -> bool:
        """SIGKILL everything in the run's cgroups; True once they are empty."""
        for d in self.dirs:
            if (d / "cgroup.kill").exists():
                try:
                    (d / "cgroup.kill").write_text("1")
                except OSError:
                    pass
        deadline = time.monotonic() + timeout_s
        while pids := self.pids():
            if time.monotonic() > deadline:
                return False
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.005)
        return True

    def oom_killed(self) -> bool:
        """Whether the memory controller killed a process of the run."""
        for d in self.dirs:
            for name in ("memory.events", "memory.oom_control"):
                try:
                    text = (d / name).read_text()
                except OSError:
                    continue
                counts = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
                if int(counts.get("oom_kill", 0)) > 0:
                    return True
        return False

    def remove(self, timeout_s: float = 2.0) -> list[Path]:
        """rmdir the cgroups (retrying while exiting tasks drain); returns those left behind."""
        deadline = time.monotonic() + timeout_s
        left = list(self.dirs)
        while left:
            for d in list(left):
                try:
                    d.rmdir()
                    left.remove(d)
                except FileNotFoundError:
                    left.remove(d)
                except OSError:
                    pass
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        self.dirs = left
        return left


def remove_stale(hierarchies: list[Hierarchy]) -> None:
    """Remove empty run cgroups left by processes that died before cleaning up."""
    for h in hierarchies:
        for d in h.base.glob(f"{PREFIX}*"):
            owner = d.name[len(PREFIX):].split("-", 1)[0]
            if owner.isdigit() and not Path(f"/proc/{owner}").exists():
                try:
                    d.rmdir()
                except OSError:
                    pass
