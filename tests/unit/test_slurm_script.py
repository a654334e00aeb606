"""The sbatch script hpo slurm writes, without Slurm: its directives, its worker command, and
its refusal to start a worker that was given no storage."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from hpo.cli import _parser
from hpo.launch.slurm import ArrayJob, SlurmError, time_limit_seconds


def job(**options) -> ArrayJob:
    return ArrayJob("digits optimizer/v1", Path("/shared/studies/my study.py"),
                    Path("/shared/ckpt"), **{"array": 4, **options})


def directives(script: str) -> list[str]:
    return [line.removeprefix("#SBATCH ") for line in script.splitlines()
            if line.startswith("#SBATCH ")]


def test_one_worker_per_array_task_with_signal_requeue_and_the_environment():
    script = job(gpus_per_task=2, partition="gpu,gpu-long", time="1-12:00").script()
    assert directives(script) == [
        "--job-name=hpo-digits-optimizer-v1", "--array=0-3", "--ntasks=1", "--gres=gpu:2",
        "--partition=gpu,gpu-long", "--time=1-12:00", "--signal=B:TERM@60", "--requeue",
        "--export=ALL", "--output=%x-%A_%a.out", "--open-mode=append"]
    # Directives must all come before the first command, or sbatch ignores the rest.
    lines = script.splitlines()
    first_command = next(i for i, line in enumerate(lines[1:], 1)
                         if line.strip() and not line.startswith("#"))
    assert all(i < first_command for i, line in enumerate(lines) if line.startswith("#SBATCH"))


def test_cpu_workers_ask_for_no_gpu_and_no_time_or_partition_of_their_own():
    assert [d for d in directives(job().script())
            if d.startswith(("--gres", "--gpus", "--time", "--partition"))] == []


def test_the_worker_is_exec_d_with_a_command_the_hpo_cli_accepts():
    script = job(trials=50).script()
    command = shlex.split(script.strip().splitlines()[-1])
    assert command[0] == "exec" and command[2:4] == ["-m", "hpo"]
    args = _parser().parse_args(command[4:])
    assert args.command == "worker" and args.trials == 50
    assert str(args.study_file) == "/shared/studies/my study.py"
    assert str(args.checkpoint_dir) == "/shared/ckpt"
    assert args.storage is None  # the URL comes from the environment, never the script


def test_the_script_is_valid_bash_and_refuses_to_run_without_the_storage(tmp_path):
    path = tmp_path / "job.sbatch"
    path.write_text(job().script())
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    ran = subprocess.run(["bash", str(path)], env={"PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True)
    assert ran.returncode == 2
    assert ran.stderr.startswith("hpo: error: HPO_STORAGE is not set in the job; submit")


@pytest.mark.parametrize("text, seconds", [
    ("10", 600), ("2:30", 150), ("4:00:00", 14400), ("2-0", 172800), ("1-2:30", 95400),
    ("1-00:00:30", 86430), ("UNLIMITED", None), ("infinite", None), ("0", None),
])
def test_slurm_time_formats(text, seconds):
    assert time_limit_seconds(text) == seconds


@pytest.mark.parametrize("text", ["4h", "1:2:3:4", "-5", "1-", "", "1.5", "1:59"])
def test_bad_or_too_short_times_are_refused(text):
    with pytest.raises(SlurmError, match=r"^--time "):
        time_limit_seconds(text)
