"""Several worker processes on this machine, supervised, with a progress bar.

Each worker is a separate ``hpo worker`` process: the same code path a user starts by hand
on another machine, and a crash in one objective (or a CUDA context) never takes the others
down. The storage URL reaches the children through the environment, never the command line,
so a password does not show up in ``ps``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hpo.storage import ENV_VAR

if TYPE_CHECKING:
    import optuna


def spawn(study_file: Path, url: str, budget: int, count: int, *, quiet: bool = True) -> list[subprocess.Popen]:
    env = {**os.environ, ENV_VAR: url}
    command = [sys.executable, "-m", "hpo", "worker", str(study_file), "--trials", str(budget)]
    if quiet:
        command.append("--quiet")
    return [subprocess.Popen(command, env=env) for _ in range(count)]


def supervise(workers: list[subprocess.Popen], study: optuna.Study, budget: int) -> list[int]:
    """Show progress until every worker has exited; returns their exit codes."""
    from tqdm import tqdm

    from hpo.budget import progress

    bar = tqdm(total=budget, unit="trial", desc="trials", file=sys.stderr, dynamic_ncols=True)
    try:
        while any(w.poll() is None for w in workers):
            bar.n = progress(study, budget)[0]
            bar.refresh()
            time.sleep(0.5)
        bar.n = progress(study, budget)[0]
        bar.refresh()
    finally:
        bar.close()
    return [w.returncode for w in workers]


def stop(workers: list[subprocess.Popen], timeout: float = 30.0) -> None:
    """Ask workers to stop (they hand their trials back), then make sure they are gone."""
    for w in workers:
        if w.poll() is None:
            w.terminate()
    deadline = time.monotonic() + timeout
    for w in workers:
        try:
            w.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()
