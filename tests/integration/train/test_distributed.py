"""Trials that span several processes (``--procs-per-trial 2``, gloo on this CPU machine):
the value matches one process's, only rank 0 writes, and a dead process, rank or worker,
never hangs the trial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import train_helpers
from conftest import hpo_cli
from optuna.trial import TrialState

from hpo import Study, choice, fixed, nuisance, scientific, uniform
from hpo.fleet import seats
from hpo.space import SpaceError
from hpo.store import open_storage
from hpo.study_file import load_study_file
from hpo.worker import run_worker

optuna.logging.set_verbosity(optuna.logging.WARNING)

# The example study's design, smaller: a test of the processes, not of widths.
SHORT = '''
import time
import torch
from hpo import Study, choice, fixed, log_uniform, nuisance, scientific
from hpo.train import TrainSettings, mlp, objective

STEP_SECONDS = {step_seconds}


class Net(torch.nn.Module):
    def __init__(self, config, data):
        super().__init__()
        self.net = mlp(data.features, data.outputs, width=config["width"])

    def forward(self, x):
        if self.training and STEP_SECONDS:
            time.sleep(STEP_SECONDS)  # slow enough to be killed mid-trial
        return self.net(x)


study = Study(
    name="ddp-short-v1", goal="Does a trial in two processes match one in one?",
    metric="val_error",
    space={{"width": scientific(choice(32, 64)),
            "learning_rate": nuisance(log_uniform(1e-4, 1e-1)),
            "optimizer": fixed("adam"), "batch_size": fixed(128),
            "max_train_steps": fixed({steps}), "eval_every": fixed(20)}},
    objective=objective(Net, "digits", TrainSettings(cpu_threads=1)),
    trials_per_value=1, seed=0)
'''


def write(tmp_path: Path, *, steps: int = 100, step_seconds: float = 0.0) -> Path:
    path = tmp_path / "ddp_short.py"
    path.write_text(SHORT.format(steps=steps, step_seconds=step_seconds))
    return path


def trials(storage: Path, name: str = "ddp-short-v1") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=open_storage(str(storage))).trials


def children(pid: int) -> list[int]:
    """The live child processes of ``pid``, from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry.name))
    return sorted(out)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(predicate, timeout=120.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def start_run(path: Path, storage: Path, tmp_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hpo", "run", str(path), "--storage", str(storage),
         "--checkpoint-dir", str(tmp_path / "ckpt"), "--procs-per-trial", "2", *args],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if k != "HPO_STORAGE"})


def running_trial_with_ranks(storage: Path, reports: int = 3):
    """(trial, worker pid, rank pids) once a trial has reported ``reports`` times."""
    try:
        found = trials(storage)
    except Exception:  # noqa: BLE001 - the study is not created yet
        return None
    for t in found:
        pid = t.user_attrs.get("worker_pid")
        if t.state == TrialState.RUNNING and pid and len(t.intermediate_values) >= reports:
            ranks = children(pid)
            if len(ranks) == 2:
                return t, pid, ranks
    return None


def one_process(path: Path, trial: optuna.trial.FrozenTrial, folder: Path):
    """The same trial (parameters, fixed values, seed) in this one process: (value, record)."""
    definition = load_study_file(path)
    ctx, record = train_helpers.make_ctx(folder, seed=trial.user_attrs["seed"])
    value = definition.objective({**trial.params, **definition.space.fixed}, ctx)
    return value, record.user_attrs


def test_a_trial_in_two_processes_matches_one_process_and_records_world_size(tmp_path):
    path, storage = write(tmp_path), tmp_path / "journal.log"
    result = hpo_cli("run", path, "--storage", storage, "--procs-per-trial", "2",
                     "--checkpoint-dir", tmp_path / "ckpt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for two in trials(storage):
        assert two.state == TrialState.COMPLETE and two.user_attrs["world_size"] == 2
        value, one = one_process(path, two, tmp_path / f"one-{two.number}")
        # The same global batches, gradients averaged: equal up to float summation order.
        assert two.value == pytest.approx(value, abs=1 / 450)  # one validation example
        for name in ("val_loss", "train_loss"):
            assert two.user_attrs["curves"][name] == pytest.approx(one["curves"][name],
                                                                   rel=1e-3), name
        # Rank 0 alone reported and wrote: one record, one set of checkpoints.
        assert two.user_attrs["best_step"] == one["best_step"]
        assert Path(two.user_attrs["best_checkpoint"]).is_file()
        assert len(two.intermediate_values) == len(one["curves"]["step"]) == 5


@pytest.mark.parametrize("victim", [1, 0], ids=["rank-1", "rank-0"])
def test_killing_one_rank_stops_the_other_and_the_retry_resumes(tmp_path, victim):
    path, storage = write(tmp_path, steps=120, step_seconds=0.03), tmp_path / "journal.log"
    run = start_run(path, storage, tmp_path)
    try:
        trial, worker, ranks = wait_for(lambda: running_trial_with_ranks(storage),
                                        what="a trial running in two processes")
        os.kill(ranks[victim], signal.SIGKILL)
        other = ranks[1 - victim]
        wait_for(lambda: not alive(other), timeout=30, what="the other rank to be stopped")
        _, err = run.communicate(timeout=180)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err
    final = {t.number: t for t in trials(storage)}
    dead = final[trial.number]
    # As when a worker dies: the attempt failed as infrastructure (not the hyperparameters'
    # fault) and its retry resumed from the checkpoint; the worker went on.
    assert dead.state == TrialState.FAIL and dead.user_attrs["failure_kind"] == "infrastructure"
    assert dead.user_attrs["error"] == (
        f"rank {victim} of 2 (pid {ranks[victim]}) died: killed by SIGKILL; the trial's other "
        "processes were stopped; retried as a new trial, attempt 2")
    retry = next(t for t in final.values() if t.system_attrs.get("failed_trial") == trial.number)
    assert retry.state == TrialState.COMPLETE and retry.params == dead.params
    assert retry.user_attrs["resumed_from_step"] >= 20
    assert not alive(worker)  # the run ended: the worker went on and finished
    other_slot = [t for t in final.values() if t.params["width"] != trial.params["width"]]
    assert [t.state for t in other_slot] == [TrialState.COMPLETE]


def test_a_sigkilled_worker_takes_its_ranks_along_and_the_retry_resumes(tmp_path, monkeypatch):
    path, storage = write(tmp_path, steps=120, step_seconds=0.03), tmp_path / "journal.log"
    run = start_run(path, storage, tmp_path, "--trials", "1")
    try:
        trial, worker, ranks = wait_for(lambda: running_trial_with_ranks(storage, reports=2),
                                        what="a trial running in two processes")
        os.kill(worker, signal.SIGKILL)
        wait_for(lambda: not any(alive(r) for r in ranks), timeout=10,
                 what="the ranks to die with their worker")
        _, err = run.communicate(timeout=180)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err
    final = {t.number: t for t in trials(storage)}
    assert "worker died" in final[trial.number].user_attrs["error"]
    retry = next(t for t in final.values() if t.system_attrs.get("failed_trial") == trial.number)
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["world_size"] == 2
    assert retry.user_attrs["resumed_from_step"] >= 20  # a checkpoint's step, not zero

    # The same slot, uninterrupted, in two processes (forked from here: quicker to start).
    monkeypatch.setenv("HPO_PROCS_PER_TRIAL", "2")
    monkeypatch.setenv("HPO_CHECKPOINT_DIR", str(tmp_path / "whole"))
    whole = str(tmp_path / "whole.log")
    run_worker(load_study_file(path), whole, budget=1)
    (uninterrupted,) = trials(Path(whole))
    # An exact resume: every rank's state and RNG came back, so nothing differs at all.
    assert retry.value == uninterrupted.value
    assert retry.user_attrs["curves"] == uninterrupted.user_attrs["curves"]


# --- a study with no file: the ranks are forked from the worker -------------------------------


def spmd(config, ctx):
    """A hand-written objective: every rank runs it; only rank 0's calls reach the study."""
    import torch
    import torch.distributed as dist

    total = torch.tensor([float(ctx.rank + 1)])
    dist.all_reduce(total)  # 1 + 2
    if config["fail_on_rank"] == ctx.rank:
        raise ValueError(f"rank {ctx.rank} cannot go on")
    for step in range(3):
        ctx.report(step, config["x"] + step)  # only rank 0's reach the trial
    ctx.set_attr("seen", {"rank": ctx.rank, "world": ctx.world_size, "device": ctx.device,
                          "devices": ctx.devices, "sum": total.item()})
    return config["x"] + 10 * ctx.rank  # the trial's value is rank 0's


def definition(fail_on_rank: int) -> Study:
    return Study(name=f"spmd-{fail_on_rank}-v1", goal="Do all ranks run the objective?",
                 metric="loss", space={"arm": scientific(choice("a", "b")),
                                       "x": nuisance(uniform(0.0, 1.0)),
                                       "fail_on_rank": fixed(fail_on_rank)},
                 objective=spmd, trials_per_value=1)


def test_forked_ranks_run_a_hand_written_objective(tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_PROCS_PER_TRIAL", "2")
    monkeypatch.setenv("HPO_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    url = str(tmp_path / "journal.log")
    assert run_worker(definition(-1), url) == 2
    for t in trials(Path(url), "spmd--1-v1"):
        assert t.state == TrialState.COMPLETE and t.value == t.params["x"]
        assert t.user_attrs["seen"] == {"rank": 0, "world": 2, "device": "cpu",
                                        "devices": ["cpu", "cpu"], "sum": 3.0}
        assert t.user_attrs["world_size"] == 2
        assert t.intermediate_values == {s: t.params["x"] + s for s in range(3)}


def test_an_error_in_one_rank_is_the_trials_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HPO_PROCS_PER_TRIAL", "2")
    url = str(tmp_path / "journal.log")
    run_worker(definition(1), url, budget=1)
    (t,) = trials(Path(url), "spmd-1-v1")
    assert t.state == TrialState.FAIL
    assert t.user_attrs["error"] == "ValueError: rank 1 cannot go on"
    assert "in rank 1 of 2" in t.user_attrs["traceback"]


# --- --gpus-per-trial: seats, checked without GPUs -------------------------------------------


def test_gpus_per_trial_pins_groups_of_gpus(monkeypatch):
    monkeypatch.setenv("HPO_GPUS", "0:H200,1:H200,2:H200,3:H200")
    two = seats("all", None, gpus_per_trial=2)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in two] == ["0,1", "2,3"]
    assert {s.env["HPO_DEVICES"] for s in two} == {"cuda:0,cuda:1"}
    assert {s.env["HPO_PROCS_PER_TRIAL"] for s in two} == {"2"}
    assert two[0].env["HPO_GPU_NAME"] == "2 x H200"
    one_process = seats("0,1,2,3", None, gpus_per_trial=4, procs_per_trial=1)
    assert [s.env["HPO_PROCS_PER_TRIAL"] for s in one_process] == ["1"]
    cpu = seats("none", 2, procs_per_trial=3)
    assert [s.env["HPO_PROCS_PER_TRIAL"] for s in cpu] == ["3", "3"]


@pytest.mark.parametrize("args, message", [
    (("all", None, 3, None), "--gpus-per-trial 3 does not divide the 4 GPU(s) of --gpus all "
                             "(0,1,2,3); use one of 1, 2, 4"),
    (("all", None, 2, 3), "--procs-per-trial 3 with --gpus-per-trial 2"),
    (("none", 2, 2, None), "--gpus-per-trial 2 needs GPUs"),
])
def test_gpus_per_trial_mistakes_are_one_line(monkeypatch, args, message):
    monkeypatch.setenv("HPO_GPUS", "0,1,2,3")
    gpus, workers, per_trial, procs = args
    with pytest.raises(SpaceError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        seats(gpus, workers, gpus_per_trial=per_trial, procs_per_trial=procs)


def test_gpus_per_trial_that_does_not_divide_exits_2_writing_nothing(tmp_path, study_file):
    storage = tmp_path / "journal.log"
    result = hpo_cli("workers", study_file(), "--gpus", "all", "--gpus-per-trial", "3",
                     "--storage", storage, env={"HPO_GPUS": "0,1"}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "hpo: error: --gpus-per-trial 3 does not divide the 2 GPU(s) of --gpus all (0,1); "
        "use one of 1, 2"]
    assert not storage.exists()
