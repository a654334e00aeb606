"""``hpo slurm``: one ``hpo worker`` per task of a Slurm array job.

The script it writes holds no secret: the storage URL reaches the workers through the job's
environment (``sbatch --export=ALL`` with ``HPO_STORAGE`` set), never through a command line
(``ps`` shows those to every user of a node) or a file. Slurm itself keeps that environment
with the job, readable by its owner and the cluster's administrators; a URL without a
password, with the password in ``~/.pgpass``, keeps it out of Slurm too (docs/slurm.md).

A worker hands its running trial back to the queue when it gets SIGTERM, so the script
``exec``s the worker (it *is* the batch shell that ``--signal=B:TERM@60`` and ``scancel``
signal) and asks Slurm for that signal a minute before the time limit; ``--requeue`` brings
a preempted task, or one whose node failed, back to go on with the study.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hpo.context import check_checkpoint_root, default_checkpoint_root
from hpo.errors import HpoError, InputError
from hpo.store.urls import ENV_VAR, kind, redact

if TYPE_CHECKING:
    from hpo.study import Study

# Seconds before the time limit at which Slurm sends the worker SIGTERM. A worker hands its
# trial back within seconds; the margin is Slurm's: it checks time limits about once a
# minute, so the signal may come up to 60 s early or late.
SIGNAL_LEAD_SECONDS = 60
MIN_TIME_SECONDS = 2 * SIGNAL_LEAD_SECONDS

TIME_FORMATS = "MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS or UNLIMITED"
_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")
# What may stand in an #SBATCH line: a newline there would start a shell command.
_PARTITION = re.compile(r"^[A-Za-z0-9_.-]+(?:,[A-Za-z0-9_.-]+)*$")


class SlurmError(InputError):
    """An ``hpo slurm`` option Slurm would not accept, or no Slurm here; exit 2."""


class SubmitError(HpoError):
    """sbatch refused the job (exit 1): its own message says why."""


def time_limit_seconds(text: str) -> int | None:
    """Seconds in a Slurm ``--time`` value; None for no limit. SlurmError if malformed.

    Slurm's forms: ``MM``, ``MM:SS``, ``HH:MM:SS``, and with days ``D-HH``, ``D-HH:MM``,
    ``D-HH:MM:SS``; ``0``, ``UNLIMITED`` and ``INFINITE`` mean no limit.
    """
    if text.strip().upper() in ("UNLIMITED", "INFINITE"):
        return None
    match = _TIME.match(text.strip())
    if not match:
        raise SlurmError(f"--time {text!r}: expected {TIME_FORMATS}, e.g. --time 4:00:00")
    days, first, second, third = match.groups()
    if days is not None:  # D-HH[:MM[:SS]]
        seconds = int(days) * 86400 + int(first) * 3600 + int(second or 0) * 60 + int(third or 0)
    elif third is not None:  # HH:MM:SS
        seconds = int(first) * 3600 + int(second) * 60 + int(third)
    else:  # MM[:SS]
        seconds = int(first) * 60 + int(second or 0)
    if seconds == 0:
        return None
    if seconds < MIN_TIME_SECONDS:
        raise SlurmError(f"--time {text!r}: give at least 2 minutes; Slurm tells a worker to "
                         f"hand its trial back {SIGNAL_LEAD_SECONDS} s before the limit")
    return seconds


def check_options(array: int, gpus_per_task: int, partition: str | None,
                  time: str | None) -> None:
    """SlurmError for an option sbatch would refuse, or would misread."""
    if array < 1:
        raise SlurmError(f"--array {array}: give the number of array tasks (workers), 1 or "
                         "more")
    if gpus_per_task < 0:
        raise SlurmError(f"--gpus-per-task {gpus_per_task}: give 0 (CPU workers) or more")
    if partition is not None and not _PARTITION.match(partition):
        raise SlurmError(f"--partition {partition!r}: expected a partition name or a "
                         "comma-separated list of them")
    if time is not None:
        time_limit_seconds(time)


@dataclass(frozen=True)
class ArrayJob:
    """What goes into the sbatch script: one worker per array task, no secret."""

    study_name: str
    study_file: Path          # absolute: the job may start in another folder
    checkpoint_dir: Path      # absolute, and on a file system every node sees
    array: int
    gpus_per_task: int = 0
    partition: str | None = None
    time: str | None = None
    trials: int | None = None
    trial_timeout: float | None = None
    max_errors: int | None = None
    python: str = sys.executable  # the interpreter hpo runs in, on the shared file system

    def __post_init__(self) -> None:
        check_options(self.array, self.gpus_per_task, self.partition, self.time)

    @property
    def job_name(self) -> str:
        return "hpo-" + (re.sub(r"[^A-Za-z0-9_.-]+", "-", self.study_name).strip("-") or "study")

    def worker_command(self) -> list[str]:
        command = [self.python, "-m", "hpo", "worker", str(self.study_file),
                   "--checkpoint-dir", str(self.checkpoint_dir)]
        if self.trials is not None:
            command += ["--trials", str(self.trials)]
        if self.trial_timeout is not None:
            command += ["--trial-timeout", f"{self.trial_timeout:g}"]
        if self.max_errors is not None:
            command += ["--max-errors", str(self.max_errors)]
        return command

    def script(self) -> str:
        """The sbatch script: directives, a check for the storage, then the worker."""
        directives = [
            f"--job-name={self.job_name}",
            f"--array=0-{self.array - 1}",
            "--ntasks=1",
        ]
        if self.gpus_per_task:
            # --gres rather than --gpus-per-task: it also works on clusters without
            # select/cons_tres, and with one task per array job the two are the same.
            directives.append(f"--gres=gpu:{self.gpus_per_task}")
        if self.partition:
            directives.append(f"--partition={self.partition}")
        if self.time:
            directives.append(f"--time={self.time.strip()}")
        lines = [
            "#!/bin/bash",
            f"# hpo workers for study {self.study_name!r}, one per array task. Written by",
            "# `hpo slurm`, which submits it with the storage URL in the environment:",
            f"#   {ENV_VAR}=... sbatch --export=ALL {self.job_name}.sbatch",
            "# No password is in this file, and none must be: keep it in HPO_STORAGE or ~/.pgpass.",
            *(f"#SBATCH {d}" for d in directives),
            f"# SIGTERM {SIGNAL_LEAD_SECONDS} s before the time limit: the worker hands its "
            "trial back.",
            f"#SBATCH --signal=B:TERM@{SIGNAL_LEAD_SECONDS}",
            "# A preempted task, or one whose node failed, is queued again and goes on.",
            "#SBATCH --requeue",
            f"# {ENV_VAR} comes from the submitting shell.",
            "#SBATCH --export=ALL",
            "#SBATCH --output=%x-%A_%a.out",
            "#SBATCH --open-mode=append",
            "",
            f'if [ -z "${{{ENV_VAR}:-}}" ]; then',
            # Without it every worker would open its own ./hpo-journal.log: a study each.
            f'    echo "hpo: error: {ENV_VAR} is not set in the job; submit with the storage '
            f'URL in the environment: {ENV_VAR}=... sbatch --export=ALL '
            f'{self.job_name}.sbatch" >&2',
            "    exit 2",
            "fi",
            "# exec: the worker is the batch shell, so Slurm's SIGTERM reaches it directly.",
            "exec " + shlex.join(self.worker_command()),
            "",
        ]
        return "\n".join(lines)


def add_options(parser: argparse.ArgumentParser) -> None:
    """``hpo slurm``'s own options (the study file, --storage, --trials, --checkpoint-dir
    are every worker command's)."""
    parser.add_argument("--array", type=int, required=True, metavar="N",
                        help="array tasks to submit, one worker each")
    parser.add_argument("--gpus-per-task", type=int, default=0, metavar="K", help=(
        "GPUs for each worker (#SBATCH --gres=gpu:K; default: 0, CPU workers)"))
    parser.add_argument("--partition", metavar="P", help="Slurm partition (default: the "
                        "cluster's)")
    parser.add_argument("--time", metavar="T", help=(
        f"time limit per task, {TIME_FORMATS} (default: the partition's); the worker hands "
        f"its trial back {SIGNAL_LEAD_SECONDS} s before it"))
    parser.add_argument("--dry-run", action="store_true", help=(
        "print the sbatch script and submit nothing; nothing is written to storage"))


def run(args: argparse.Namespace, url: str) -> int:
    """Validate, create the study, write ``<job name>.sbatch`` here and submit it."""
    from hpo.study_file import load_study_file

    # Bad options: exit 2 before the study file runs (it may import torch) or storage opens.
    check_options(args.array, args.gpus_per_task, args.partition, args.time)
    if not args.dry_run and shutil.which("sbatch") is None:
        raise SlurmError("sbatch is not on PATH: run hpo slurm on a Slurm login node, or "
                         "print the script with --dry-run")
    definition = load_study_file(args.study_file)
    checkpoints = default_checkpoint_root().resolve()
    job = ArrayJob(definition.name, args.study_file.resolve(), checkpoints, array=args.array,
                   gpus_per_task=args.gpus_per_task, partition=args.partition, time=args.time,
                   trials=args.trials, trial_timeout=getattr(args, "trial_timeout", None),
                   max_errors=getattr(args, "max_errors", None))
    if args.dry_run:
        sys.stdout.write(job.script())
        return 0

    check_checkpoint_root()  # exit 2 before anything is written: every worker would fail on it
    if kind(url) == "journal":
        # Compute nodes start in the submitting folder, but an absolute path says which file.
        url = str(Path(url).resolve())
        print(f"hpo: warning: the workers share the journal file {url}: every node must see "
              "it on one file system; prefer PostgreSQL on a cluster", file=sys.stderr)
    _create_study(definition, url, args.trials)
    script = Path(f"{job.job_name}.sbatch")
    script.write_text(job.script(), encoding="utf-8")
    job_id = submit(script, url)
    print(f"hpo: submitted array job {job_id}: {job.array} worker(s) for study "
          f"{definition.name!r} in {redact(url)}, from {script}; follow it with squeue -j "
          f"{job_id} and hpo status {args.study_file}", file=sys.stderr)
    return 0


def _create_study(definition: Study, url: str, trials: int | None) -> None:
    """Create the study and lay out its budget now, so a wrong URL or password fails here,
    not in every array task once it leaves the queue."""
    import optuna

    from hpo.store import open_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    open_study(definition, url, budget=trials or definition.budget)


def submit(script: Path, url: str) -> str:
    """``sbatch`` the script with the URL in its environment; the job id."""
    environment = {**os.environ, ENV_VAR: url}
    try:
        done = subprocess.run(["sbatch", "--parsable", "--export=ALL", str(script)],
                              env=environment, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise SlurmError("sbatch is not on PATH: run hpo slurm on a Slurm login node") from None
    except subprocess.TimeoutExpired:
        raise SubmitError("sbatch did not answer in 120 s: is slurmctld up? (sinfo)") from None
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip() or "no message").splitlines()
        raise SubmitError(f"sbatch refused {script}: {lines[-1]}")
    return done.stdout.strip().split(";")[0]
