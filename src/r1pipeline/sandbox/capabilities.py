"""What this machine lets the sandbox enforce, probed once per process.

``sandbox_capabilities()`` answers with a JSON-able dict: each mechanism, whether it is in use,
and in ``enforced`` one line per guarantee saying how it is enforced (or that it is not). The probe
runs the launcher once in probe mode (each namespace and the uid drop tried on their own, as the
real runs would) and tries to create a cgroup in each hierarchy. A mechanism the probe found
working is then required: a run where it fails raises ``SandboxError`` instead of running with
less isolation than reported.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import cgroups, uids
from .errors import SandboxError

LAUNCHER = Path(__file__).with_name("_launcher.py")
PYTHON_CANDIDATES = ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3")
HIDE_DIRS = ("/var/tmp", "/dev/shm", "/run/lock", "/run/shm", "/var/lock")
_probe_lock = threading.Lock()


@dataclass(frozen=True)
class Capabilities:
    """The mechanisms available to runs here (see ``enforced`` for what they add up to)."""

    root: bool
    python: str  # the interpreter programs run with
    launcher_python: str  # the interpreter the launcher runs with (as the caller)
    uid_drop: bool  # each run gets its own unprivileged uid
    netns: bool
    mountns: bool  # private tmpfs /tmp (and /var/tmp, /dev/shm...)
    ipcns: bool
    hidepid: bool
    userns: bool  # namespaces via an unprivileged user namespace (not root)
    no_new_privs: bool
    cgroups: list[cgroups.Hierarchy] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def cgroup_pids(self) -> bool:
        return any("pids" in h.controllers for h in self.cgroups)

    @property
    def cgroup_memory(self) -> bool:
        return any("memory" in h.controllers for h in self.cgroups)

    @property
    def cgroup_kill(self) -> bool:
        return any(h.can_kill for h in self.cgroups)

    @property
    def nproc_enforced(self) -> bool:
        """Whether the process count of a run is capped (root ignores RLIMIT_NPROC)."""
        return self.cgroup_pids or self.uid_drop or not self.root

    def unshare_flags(self) -> list[str]:
        names = [n for n, ok in (("NEWNET", self.netns), ("NEWIPC", self.ipcns),
                                 ("NEWNS", self.mountns)) if ok]
        return ["NEWUSER", *names] if names and self.userns else names

    def _process_count(self) -> str:
        parts = ["pids cgroup (pids.max)"] if self.cgroup_pids else []
        if self.uid_drop:
            parts.append("RLIMIT_NPROC of a dedicated uid")
        elif not self.root:
            parts.append("RLIMIT_NPROC (approximate: it counts all of the caller's processes)")
        return " + ".join(parts) or "NOT ENFORCED (root ignores RLIMIT_NPROC; no pids cgroup)"

    def _cleanup(self) -> str:
        parts = ["SIGKILL of the process group"]
        if self.cgroups:
            parts.append("of the run's cgroup" + (" (cgroup.kill)" if self.cgroup_kill else ""))
        if self.uid_drop:
            parts.append("of every process of the run's uid")
        if len(parts) == 1:
            parts.append("nothing more: detached children (setsid) may survive")
        return " + ".join(parts)

    def enforced(self) -> dict[str, str]:
        """One line per guarantee: how it is enforced here, or that it is not."""
        return {
            "process_count": self._process_count(),
            "memory": "RLIMIT_AS per process"
            + (" + memory cgroup for the whole run" if self.cgroup_memory else ""),
            "cpu_time": "RLIMIT_CPU + measured CPU time; wall-clock kill of the process group",
            "output": "pipes read incrementally, the run is killed over the cap",
            "files": "RLIMIT_FSIZE, RLIMIT_NOFILE"
            + (", size-limited private tmpfs on /tmp" if self.mountns else ""),
            "filesystem": ("private tmpfs on /tmp, bound over " + ", ".join(HIDE_DIRS)
                           if self.mountns else "working dir in the host's /tmp")
            + ("; unprivileged uid: root-only files unreadable, root-owned dirs unwritable"
               if self.uid_drop else "; SAME UID as the caller: its files are exposed"),
            "network": ("empty network namespace" + (" (user namespace)" if self.userns else "")
                        if self.netns else "NOT ISOLATED (unshare(CLONE_NEWNET) failed)"),
            "signals": "own uid: cannot signal the caller or other runs" if self.uid_drop
            else "SAME UID: the program can signal the caller's processes",
            "cleanup": self._cleanup(),
            "processes_visible": "only its own (procfs hidepid=2)" if self.hidepid else "all",
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cgroups"] = [{"version": h.version, "controllers": sorted(h.controllers),
                         "base": str(h.base)} for h in self.cgroups]
        d |= {"cgroup_pids": self.cgroup_pids, "cgroup_memory": self.cgroup_memory,
              "cgroup_kill": self.cgroup_kill, "nproc_enforced": self.nproc_enforced,
              "enforced": self.enforced()}
        return d


def _others_can_run(path: str) -> bool:
    """Whether a user with no special rights can execute ``path`` (every parent searchable)."""
    p = Path(path).resolve()
    try:
        if not p.stat().st_mode & stat.S_IXOTH:
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in p.parents)
    except OSError:
        return False


def choose_python(drop_uid: bool) -> str:
    """This interpreter if an unprivileged uid may run it (or no uid drop), else a system one."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    candidates = [str(Path(base).resolve()), *PYTHON_CANDIDATES]
    for path in candidates:
        if os.path.isfile(path) and (not drop_uid or _others_can_run(path)):
            return path
    raise SandboxError(f"no Python interpreter an unprivileged uid can run among {candidates}")


def _run_probe(python: str, uid: int | None) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix="r1sbx-probe-")
    try:
        Path(workdir, "prog.py").write_text("")
        read_fd, write_fd = os.pipe()
        cfg = {"probe": True, "status_fd": write_fd, "workdir": workdir, "program": "prog.py",
               "tmpfs_kb": 1024, "hide_dirs": list(HIDE_DIRS), "uid": uid, "gid": uid}
        try:
            subprocess.run([python, "-I", "-S", str(LAUNCHER), json.dumps(cfg)],
                           pass_fds=[write_fd], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"}, timeout=30,
                           check=False, start_new_session=True)
        finally:
            os.close(write_fd)
        with os.fdopen(read_fd, "rb") as f:
            raw = f.read()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    try:
        return json.loads(raw)
    except ValueError:
        return {"error": raw.decode(errors="replace") or "launcher probe printed nothing"}


def _usable_cgroups(notes: list[str]) -> list[cgroups.Hierarchy]:
    """The writable hierarchies where a trial run cgroup, limits included, can be set up."""
    usable = []
    for h in cgroups.discover():
        cgroups.remove_stale([h])
        trial = cgroups.RunCgroup([h], max_processes=16, memory_bytes=256 << 20)
        try:
            trial.create()
            usable.append(h)
        except OSError as exc:
            notes.append(f"cgroup {h.base} unusable: {exc}")
        finally:
            trial.remove()
    return usable


def probe() -> Capabilities:
    root = os.geteuid() == 0
    notes = []
    launcher_python = str(Path(getattr(sys, "_base_executable", None) or sys.executable).resolve())
    hierarchies = _usable_cgroups(notes) if root else []
    probe_uid = None
    if root:
        try:
            probe_uid = uids.UID_BASE + uids.N_SLOTS - 1
            uids.lock_dir()
        except SandboxError as exc:
            notes.append(f"no uid drop: {exc}")
            probe_uid = None
    report = _run_probe(launcher_python, probe_uid)
    notes += [f"{k}: {v}" for k, v in report.items() if isinstance(v, str)]
    uid_drop = report.get("setuid") is True
    try:
        python = choose_python(uid_drop)
    except SandboxError as exc:
        notes.append(f"no uid drop: {exc}")
        uid_drop, python = False, choose_python(False)
    if root and not uid_drop:
        notes.append("programs run AS ROOT: only cgroups and namespaces contain them")
    return Capabilities(
        root=root, python=python, launcher_python=launcher_python, uid_drop=uid_drop,
        netns=report.get("NEWNET") is True, mountns=report.get("NEWNS") is True,
        ipcns=report.get("NEWIPC") is True, hidepid=report.get("hidepid") is True,
        userns=not root, no_new_privs=report.get("no_new_privs") is True,
        cgroups=hierarchies, notes=notes)


@functools.lru_cache(maxsize=1)
def _cached() -> Capabilities:
    return probe()


def capabilities() -> Capabilities:
    """The probed capabilities (probed on first use, then cached for the process)."""
    with _probe_lock:
        return _cached()


def sandbox_capabilities() -> dict[str, Any]:
    """What the sandbox enforces on this machine, as a JSON-able dict (see ``enforced``)."""
    return capabilities().to_dict()
