"""Starting a run on several processes: ``r1 run SPEC --num-processes N`` re-executes itself under a launcher.

The parent process validates the spec, then runs (or, with ``--print-launch``, prints)

    accelerate launch --multi_gpu --num_processes N --num_machines 1 --mixed_precision no \\
        --dynamo_backend no --main_process_port 0 -m r1pipeline.cli run SPEC --out RUN_DIR ...

``--multi_gpu`` is accelerate's torchrun path and starts N local processes whether or not there
are GPUs; each process then joins the process group with NCCL when it sees a GPU and with gloo
when it does not (``distributed.init``). accelerate's own ``--cpu`` mode starts one process per
machine and expects ``mpirun`` for more, so it is not used. With ``--accelerate-config FILE``
(DeepSpeed, FSDP, several machines: see ``configs/accelerate/``) the file decides the mode and
only ``--num_processes`` is added. ``torchrun`` is the other launcher, for clusters without an
accelerate config.

The child command carries no launch options; the children know they were launched from the
``WORLD_SIZE`` the launcher sets, so a child never launches again. When one process fails the
launcher (torch's elastic agent) ends the others, so nobody waits at a barrier for a dead peer.

Nothing here imports torch: printing the command is instant.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Literal, Mapping, Sequence

Launcher = Literal["accelerate", "torchrun"]


def launch_argv(num_processes: int, target: Sequence[str], launcher: Launcher = "accelerate",
                accelerate_config: Path | None = None, python: str | None = None) -> list[str]:
    """The command that starts ``target`` (``-m module args...`` or ``script.py args...``) on N processes.

    >>> launch_argv(2, ["-m", "r1pipeline.cli", "run", "s.yaml"], python="py")[:6]
    ['py', '-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes', '2']
    >>> launch_argv(2, ["x.py"], launcher="torchrun", python="py")
    ['py', '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', 'x.py']
    """
    py = python or sys.executable
    if launcher == "torchrun":
        if accelerate_config is not None:
            raise ValueError("--accelerate-config needs --launcher accelerate")
        return [py, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(num_processes), *target]
    if accelerate_config is not None:
        mode = ["--config_file", str(accelerate_config), "--num_processes", str(num_processes)]
    else:
        mode = ["--multi_gpu", "--num_processes", str(num_processes), "--num_machines", "1",
                "--mixed_precision", "no",  # stages set their own precision (the spec's dtype)
                "--dynamo_backend", "no", "--main_process_port", "0"]  # 0: any free port
    module = ["--module"] if target and target[0] == "-m" else []
    return [py, "-m", "accelerate.commands.launch", *mode, *module, *(target[1:] if module else target)]


def cli_target(spec: Path, out: Path, options: Sequence[str]) -> list[str]:
    """``-m r1pipeline.cli run SPEC --out OUT OPTIONS``: what every process of the launch runs."""
    return ["-m", "r1pipeline.cli", "run", str(spec), "--out", str(out), *options]


def shell_line(argv: Sequence[str]) -> str:
    """``argv`` as a shell line, with the launchers written the way people type them.

    >>> shell_line(["/v/bin/python", "-m", "accelerate.commands.launch", "--num_processes", "2", "x.py"])
    'accelerate launch --num_processes 2 x.py'
    """
    argv = list(argv)
    for module, name in (("accelerate.commands.launch", ["accelerate", "launch"]),
                         ("torch.distributed.run", ["torchrun"])):
        if argv[1:3] == ["-m", module]:
            argv = name + argv[3:]
    return shlex.join(argv)


def threads_per_process(processes: int, cores: int | None = None) -> int:
    """The cores split evenly between the processes, at least one thread each.

    >>> threads_per_process(2, 2), threads_per_process(3, 2), threads_per_process(2, 16)
    (1, 1, 8)
    """
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, cores // processes)


def launch_env(processes: int, env: Mapping[str, str] | None = None, cores: int | None = None) -> dict[str, str]:
    """The launch's environment: each process on ``cores // processes`` threads unless the caller
    set ``OMP_NUM_THREADS`` (torchrun would give each one thread, leaving most of a big CPU idle).

    >>> launch_env(2, {}, cores=16)["OMP_NUM_THREADS"], launch_env(2, {"OMP_NUM_THREADS": "3"})["OMP_NUM_THREADS"]
    ('8', '3')
    """
    out = dict(os.environ if env is None else env)
    if "OMP_NUM_THREADS" not in out:
        threads = str(threads_per_process(processes, cores))
        out.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=out.get("MKL_NUM_THREADS", threads))
    return out


def relaunch(argv: Sequence[str], processes: int) -> int:
    """Run the launch command in the foreground, each process on its share of the cores; its exit
    status (the first failing process's)."""
    return subprocess.call(list(argv), env=launch_env(processes))
