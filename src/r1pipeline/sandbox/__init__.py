"""A local sandbox for untrusted, model-written Python programs.

Threat model: the program is hostile or broken. It may loop forever, sleep, ignore SIGTERM, fork
or spawn threads without end, allocate all memory, flood stdout/stderr, fill the disk, write
anywhere it can, read secrets (the parent's environment, root-only files, /proc of other
processes), signal or kill the trainer, open network connections, detach children that outlive
it, or crash the interpreter. A run must end within its limits, leave no process and no file
behind, and report how it ended (``SandboxResult.status``/``reason``). Out of scope: kernel
exploits and side channels (this is not a VM), and world-readable files, which stay readable.

What is enforced (each with a fallback where the machine lacks it; ``sandbox_capabilities()``
says which, and ``SandboxResult.meta["isolation"]`` lists what a run had):

* separate process: ``python -I -S -B prog.py`` (isolated mode, no site-packages: the standard
  library only), started by ``_launcher.py`` in a new session, cwd a fresh temporary directory,
  environment scrubbed to PATH, LANG, HOME, TMPDIR. The interpreter is the caller's own if the
  run's uid may execute it, else the system's ``/usr/bin/python3`` (``capabilities().python``);
* rlimits: CPU, address space, file size, open files, core 0, memlock 0, process count; plus a
  CPU-time check, a wall-clock limit and an output cap enforced by the parent (SIGKILL);
* as root: its own unprivileged uid per run (60000+, see ``uids``), no groups, no_new_privs, so
  RLIMIT_NPROC holds, root-only files are unreadable and the parent cannot be signalled;
* as root: per-run cgroups (pids.max, memory limit, cgroup.kill) where the hierarchy is writable;
* namespaces: empty network namespace (no connection succeeds, loopback included), private IPC,
  and a private mount namespace with a size-limited tmpfs on /tmp bound over /var/tmp, /dev/shm
  and /run/lock, and /proc mounted with hidepid=2; unprivileged callers get the network and IPC
  namespaces through a user namespace where the kernel allows it;
* cleanup after every run: SIGKILL to the process group, the cgroups and every process of the
  run's uid, so detached (double-forked, setsid) children die too; then the directory is removed.

Without root (a laptop): no uid drop and no cgroups, so the program can signal the caller's
processes and read its files, RLIMIT_NPROC counts all of the caller's processes, and a detached
child can outlive the run. ``sandbox_capabilities()["enforced"]`` spells it out. On the
project's VMs (root, Debian 12, kernel 6.18, hybrid cgroup v1+v2) everything above is enforced.

>>> from r1pipeline.sandbox import run_program
>>> run_program("print(int(input()) * 2)", "21\\n").stdout
'42\\n'
"""

from .capabilities import sandbox_capabilities
from .errors import SandboxError
from .limits import Limits
from .pool import SandboxPool
from .result import SandboxResult
from .runner import run_program

__all__ = ["Limits", "SandboxError", "SandboxPool", "SandboxResult", "run_program",
           "sandbox_capabilities"]
