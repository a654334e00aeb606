"""Where and with what a trial ran: "untracked experiments might as well not exist".

Collected once per worker (running git and reading versions is not free), then written on
every trial as user attributes, which optuna-dashboard shows on the trial page.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from hpo import attrs, env


def collect(study_file: str | Path | None = None) -> dict[str, Any]:
    """Host, worker process, GPU pinning, code version and library versions."""
    info: dict[str, Any] = {
        # $HPO_HOST names a machine whose hostname is not stable (containers).
        attrs.HOST: env.host(),
        attrs.WORKER_PID: os.getpid(),
        # /proc/self, not /proc/<getpid()>: in a PID namespace whose /proc is the host's,
        # getpid() is the namespace's number, which names another process in that /proc.
        attrs.WORKER_STARTED: process_started("self"),
        attrs.CUDA_VISIBLE_DEVICES: os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)"),
        attrs.GPU: env.raw("HPO_GPU_NAME") or _gpu_name(),
        "python": platform.python_version(),
    }
    if env.procs_per_trial() > 1:
        info[attrs.WORLD_SIZE] = env.procs_per_trial()  # hpo.train.distributed
    for package in ("torch", "optuna"):
        try:
            info[f"{package}_version"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[f"{package}_version"] = "not installed"
    if study_file is not None:
        info.update(_git(Path(study_file).resolve().parent))
    return info


def process_started(pid: int | str) -> int | None:
    """When a process started, in clock ticks since boot (/proc/PID/stat), or None where
    there is no /proc or no such process. With the pid, it names one process: a pid is
    reused, a (pid, start time) pair is not; and it reads the same inside a PID namespace."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or ')'.
    return int(stat.rpartition(")")[2].split()[19])


def _gpu_name() -> str:
    """The name of the GPU this worker sees first, without initializing CUDA."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return "none"
    index = (visible or "0").split(",")[0].strip()
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,uuid,name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "none"
    for line in out.splitlines():
        gpu_index, uuid, name = (part.strip() for part in line.split(",", 2))
        if index in (gpu_index, uuid):
            return name
    return "none"


def _git(folder: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no") != ""
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "not a git repository", "git_dirty": None}
    return {"git_commit": commit, "git_dirty": dirty}
