"""The child side of the sandbox: confine this process, then exec the untrusted program.

Run by ``r1pipeline.sandbox.runner`` as ``python -I -S _launcher.py CONFIG_JSON``, as a fresh,
single-threaded process (so nothing here runs in a forked copy of a multi-threaded parent, which
``preexec_fn`` would). It uses the standard library only. In order, it:

1. joins the run's cgroups (``cgroups``: paths of ``cgroup.procs`` files), while still root;
2. unshares namespaces (``unshare``: flag names; NEWNET leaves only a downed loopback, so no
   connection succeeds; NEWNS lets it mount a private, size-limited tmpfs on /tmp and bind it over
   the other world-writable directories; NEWIPC isolates SysV IPC and POSIX queues; NEWUSER is
   what an unprivileged caller needs for the others);
3. mounts a fresh /proc with ``hidepid=2`` (``hidepid``), so other users' processes are invisible;
4. sets rlimits and niceness, changes to the working directory;
5. drops to the run's uid/gid with no supplementary groups (``uid``, ``gid``), sets
   no_new_privs and a parent-death SIGKILL;
6. execs ``python -I -S -B PROGRAM`` with the given environment.

Any failure before the exec is written to the status pipe (``status_fd``, closed on exec) and the
launcher exits with 125: the parent treats that as a broken sandbox, never as the program's result.
With ``probe`` set it instead tries each feature separately and writes a JSON report there.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys

CLONE_FLAGS = {"NEWNS": 0x00020000, "NEWIPC": 0x08000000, "NEWUSER": 0x10000000,
               "NEWNET": 0x40000000}
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
LAUNCH_FAILED = 125
PRIVATE_TMP = "/tmp"


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(names: list[str]) -> None:
    """unshare(2) the named namespaces (``os.unshare`` only exists from Python 3.12)."""
    flags = 0
    for name in names:
        flags |= CLONE_FLAGS[name]
    if flags:
        _check(_libc().unshare(flags), f"unshare({'|'.join(names)})")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    def enc(s: str | None) -> bytes | None:
        return None if s is None else s.encode()

    ret = _libc().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))
    _check(ret, f"mount {fstype or 'bind'} on {target}")


def prctl(option: int, arg: int) -> None:
    _check(_libc().prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl({option})")


def join_cgroups(procs_files: list[str]) -> None:
    for path in procs_files:
        with open(path, "w") as f:
            f.write(str(os.getpid()))


def private_tmp(cfg: dict) -> str:
    """Mount a tmpfs owned by the run's uid on /tmp, bind it over ``hide_dirs``, copy the program
    there; returns the new working directory. Needs a private mount namespace."""
    with open(os.path.join(cfg["workdir"], cfg["program"]), "rb") as f:
        source = f.read()
    mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    owner = "" if cfg.get("uid") is None else f",uid={cfg['uid']},gid={cfg['gid']}"
    mount("tmpfs", PRIVATE_TMP, "tmpfs", MS_NOSUID | MS_NODEV,
          f"size={cfg['tmpfs_kb']}k,nr_inodes=4096,mode=0700{owner}")
    done = {PRIVATE_TMP}
    for path in map(os.path.realpath, cfg.get("hide_dirs", [])):
        if path not in done and os.path.isdir(path):
            mount(PRIVATE_TMP, path, None, MS_BIND | MS_REC, None)
            done.add(path)
    target = os.path.join(PRIVATE_TMP, cfg["program"])
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    with os.fdopen(fd, "wb") as f:
        f.write(source)
    return PRIVATE_TMP


def mount_proc_hidepid() -> None:
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")


def set_rlimits(rlimits: dict[str, list[int]]) -> None:
    for name, (soft, hard) in rlimits.items():
        resource.setrlimit(getattr(resource, name), (soft, hard))


def drop_privileges(uid: int, gid: int) -> None:
    """Become uid/gid for good: real, effective and saved ids, no supplementary groups."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getgroups():
        raise PermissionError("privileges were not dropped")
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise PermissionError("could regain root after dropping privileges")


def confine(cfg: dict) -> str:
    """Apply everything in ``cfg`` to this process; returns the working directory to use."""
    parent = os.getppid()
    join_cgroups(cfg.get("cgroups", []))
    unshare(cfg.get("unshare", []))
    workdir = private_tmp(cfg) if "NEWNS" in cfg.get("unshare", []) else cfg["workdir"]
    if cfg.get("hidepid"):
        mount_proc_hidepid()
    os.chdir(workdir)
    os.umask(0o077)
    set_rlimits(cfg.get("rlimits", {}))
    os.setpriority(os.PRIO_PROCESS, 0, min(19, os.getpriority(os.PRIO_PROCESS, 0) + cfg["nice"]))
    if cfg.get("uid") is not None:
        drop_privileges(cfg["uid"], cfg["gid"])
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    prctl(PR_SET_PDEATHSIG, 9)  # after the uid change, which clears it
    if os.getppid() != parent:
        raise RuntimeError("parent died during setup")
    return workdir


def probe(cfg: dict) -> dict:
    """Try each feature on its own (this process is thrown away afterwards)."""
    report: dict = {"euid": os.geteuid()}
    if os.geteuid() != 0:  # one user namespace for all (a nested one needs a uid mapping)
        both = _attempt(lambda: unshare(["NEWUSER", "NEWNET", "NEWIPC"]))
        report["NEWIPC"] = both
        report["NEWNET"] = both if both is True else _attempt(lambda: unshare(["NEWUSER",
                                                                                "NEWNET"]))
    for name in ("NEWNET", "NEWIPC"):
        if name not in report:
            report[name] = _attempt(lambda: unshare([name]))  # noqa: B023 - called at once
    if os.geteuid() == 0:
        report["NEWNS"] = _attempt(lambda: (unshare(["NEWNS"]), private_tmp(cfg)))
        report["hidepid"] = report["NEWNS"] is True and _attempt(mount_proc_hidepid)
        if cfg.get("uid") is not None:
            report["setuid"] = _attempt(lambda: drop_privileges(cfg["uid"], cfg["gid"]))
    report["no_new_privs"] = _attempt(lambda: prctl(PR_SET_NO_NEW_PRIVS, 1))
    return report


def _attempt(fn) -> bool | str:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the report says what failed
        return f"{type(exc).__name__}: {exc}"
    return True


def main() -> None:
    cfg = json.loads(sys.argv[1])
    status_fd = cfg["status_fd"]
    try:
        if cfg.get("probe"):
            os.write(status_fd, json.dumps(probe(cfg)).encode())
            os._exit(0)
        workdir = confine(cfg)
        os.set_inheritable(status_fd, False)
        program = os.path.join(workdir, cfg["program"])
        os.execve(cfg["python"], [cfg["python"], "-I", "-S", "-B", program], cfg["env"])
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, never to the program
        try:
            os.write(status_fd, f"{type(exc).__name__}: {exc}".encode(errors="replace"))
        finally:
            os._exit(LAUNCH_FAILED)


if __name__ == "__main__":
    main()
