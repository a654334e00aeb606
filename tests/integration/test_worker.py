"""One worker, in process: pruning through ctx.report, and provenance on every trial."""

from __future__ import annotations

import subprocess

import optuna
import pytest
from optuna.trial import TrialState

from hpo import Study, choice, nuisance, scientific, uniform
from hpo.store import open_storage
from hpo.worker import run_worker

optuna.logging.set_verbosity(optuna.logging.WARNING)


def curve_objective(config, ctx):
    # The bad arm is worse than the good one at every step; within an arm, a higher x is worse.
    value = 10.0 * config["x"] + (100.0 if config["arm"] == "bad" else 0.0)
    for step in range(20):
        ctx.report(step, value)
    return value


def test_report_lets_the_pruner_stop_a_trial_as_pruned_against_its_own_value(tmp_path):
    definition = Study(
        name="pruned-v1", goal="g", metric="loss", objective=curve_objective,
        space={"arm": scientific(choice("good", "bad")), "x": nuisance(uniform(0.0, 1.0))},
        trials_per_value=6, pruner=optuna.pruners.MedianPruner(n_startup_trials=2,
                                                                n_warmup_steps=2),
    )
    url = str(tmp_path / "j.log")
    assert run_worker(definition, url) == 12
    trials = optuna.load_study(study_name="pruned-v1", storage=open_storage(url)).get_trials()
    trials.sort(key=lambda t: t.number)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned and all(len(t.intermediate_values) < 20 for t in pruned)  # stopped early
    assert all(t.value == t.intermediate_values[max(t.intermediate_values)] for t in pruned)
    for arm in ("good", "bad"):
        mine = [t for t in trials if t.params["arm"] == arm]
        # The pruner compares a trial with its own arm's complete trials only: pruned exactly
        # when it is worse than their median (the bad arm is not pruned for being bad).
        for i, t in enumerate(mine):
            done = sorted(u.params["x"] for u in mine[:i] if u.state == TrialState.COMPLETE)
            median = (done[(len(done) - 1) // 2] + done[len(done) // 2]) / 2 if done else None
            expected = len(done) >= 2 and t.params["x"] > median
            assert (t.state == TrialState.PRUNED) == expected, (arm, i, t.params["x"], done)


def test_provenance_recorded_on_every_trial(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    path = repo / "study.py"
    path.write_text("x = 1\n")
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    path.write_text("x = 2\n")  # an uncommitted change

    definition = Study(name="prov-v1", goal="g", metric="loss", trials_per_value=2,
                       space={"x": nuisance(uniform(0.0, 1.0))}, objective=lambda c, ctx: c["x"])
    url = str(tmp_path / "j.log")
    run_worker(definition, url, study_file=str(path))
    import os
    import platform
    import socket

    for t in optuna.load_study(study_name="prov-v1", storage=open_storage(url)).get_trials():
        attrs = t.user_attrs
        assert attrs["host"] == socket.gethostname() and attrs["worker_pid"] == os.getpid()
        assert attrs["git_commit"] == commit and attrs["git_dirty"] is True
        assert attrs["python"] == platform.python_version()
        assert attrs["optuna_version"] == optuna.__version__
        assert attrs["torch_version"].startswith("2.")
        assert isinstance(attrs["seed"], int)
        assert "cuda_visible_devices" in attrs and "gpu" in attrs
        assert t.datetime_start and t.datetime_complete


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_report_rejects_a_bad_step(tmp_path, bad):
    def objective(config, ctx):
        ctx.report(bad, 1.0)
        return 1.0

    definition = Study(name="bad-step-v1", goal="g", metric="loss", trials_per_value=1,
                       space={"x": nuisance(uniform(0.0, 1.0))}, objective=objective)
    url = str(tmp_path / "j.log")
    run_worker(definition, url)
    trial = optuna.load_study(study_name="bad-step-v1", storage=open_storage(url)).get_trials()[0]
    assert trial.state == TrialState.FAIL
    assert f"step must be an integer >= 0, got {bad!r}" in trial.user_attrs["error"]


def _one_trial_study(objective, name="end-v1", per_value=1, **kwargs):
    return Study(name=name, goal="g", metric="loss", trials_per_value=per_value,
                 space={"x": nuisance(uniform(0.0, 1.0))}, objective=objective, **kwargs)


@pytest.mark.parametrize("returned, kind", [
    ("0.5", "error"), (True, "error"), (None, "error"), (float("nan"), "diverged")])
def test_an_objective_must_return_a_real_number(tmp_path, returned, kind):
    url = str(tmp_path / "j.log")
    run_worker(_one_trial_study(lambda config, ctx: returned), url, max_errors=0)
    (trial,) = optuna.load_study(study_name="end-v1", storage=open_storage(url)).get_trials()
    assert trial.state == TrialState.FAIL and trial.user_attrs["failure_kind"] == kind
    if kind == "error":
        assert trial.user_attrs["error"].startswith(
            f"objective returned {returned!r} ({type(returned).__name__}); it must return the "
            "loss as a number (int or float)")


def test_numpy_and_int_returns_are_metrics(tmp_path):
    import numpy as np

    url = str(tmp_path / "j.log")
    values = iter([np.float32(0.25), 3])
    run_worker(_one_trial_study(lambda config, ctx: next(values), per_value=2), url)
    trials = optuna.load_study(study_name="end-v1", storage=open_storage(url)).get_trials()
    assert [(t.state, t.value) for t in trials] == [(TrialState.COMPLETE, 0.25),
                                                     (TrialState.COMPLETE, 3.0)]


def _fail_my_trial_elsewhere(url):
    """What a reaper in another process does to a trial it judged dead."""
    other = optuna.load_study(study_name="end-v1", storage=open_storage(url))
    (mine,) = [t for t in other.get_trials() if t.state == TrialState.RUNNING]
    storage = other._storage
    storage.set_trial_user_attr(mine._trial_id, "error",
                                "worker died (elsewhere pid 1); retried as a new trial, attempt 2")
    storage.set_trial_state_values(mine._trial_id, state=TrialState.FAIL)


@pytest.mark.parametrize("where", ["report", "final write"])
def test_a_trial_finished_by_another_process_is_dropped_with_one_line(tmp_path, caplog, where):
    url = str(tmp_path / "j.log")
    calls = []

    def objective(config, ctx):
        calls.append(ctx.trial_number)
        if ctx.trial_number == 0:
            _fail_my_trial_elsewhere(url)
            if where == "report":
                ctx.report(1, 0.5)  # raises: the trial is no longer this worker's
        return config["x"]

    with caplog.at_level("WARNING", logger="hpo.worker"):
        assert run_worker(_one_trial_study(objective, per_value=2), url) == 2
    assert calls == [0, 1]  # it went on to the next trial
    said = [r.getMessage() for r in caplog.records if r.name == "hpo.worker"]
    assert len(said) == 1, said
    assert said[0].startswith("trial 0 was finished by another process meanwhile (FAIL: "
                              "worker died (elsewhere pid 1)")
    trials = optuna.load_study(study_name="end-v1", storage=open_storage(url)).get_trials()
    # Nothing more written on it: the reaper's word stands.
    assert trials[0].state == TrialState.FAIL and "failure_kind" not in trials[0].user_attrs
    assert trials[0].user_attrs["error"].startswith("worker died (elsewhere")
    assert trials[1].state == TrialState.COMPLETE


CHECKPOINTING = '''
from hpo import Study, nuisance, uniform

def objective(config, ctx):
    # The folder was fine when the worker started; now something else sits where this
    # trial's checkpoints go (as a full disk or a lost mount would fail the write).
    ctx.checkpoint_dir.parent.mkdir(parents=True, exist_ok=True)
    ctx.checkpoint_dir.write_text("not a folder")
    ctx.save_checkpoint(0, {"x": config["x"]})
    return config["x"]

study = Study(name="ckpt-v1", goal="g", metric="loss", space={"x": nuisance(uniform(0.0, 1.0))},
              objective=objective, trials_per_value=2)
'''


def test_a_checkpoint_that_cannot_be_written_hands_the_trial_back_and_stops(tmp_path):
    from conftest import hpo_cli

    path, storage = tmp_path / "ckpt.py", tmp_path / "j.log"
    path.write_text(CHECKPOINTING)
    root = tmp_path / "checkpoints"
    result = hpo_cli("worker", path, "--storage", storage, env={"HPO_CHECKPOINT_DIR": str(root)})
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"hpo: error: cannot write checkpoint '{root}/")
    assert "/slot-0/last.pt': File exists;" in last
    assert "its trial went back to the queue" in last
    assert "handed back" in result.stderr
    study = optuna.load_study(study_name="ckpt-v1", storage=open_storage(str(storage)))
    trials = study.get_trials()
    # Neither a result nor a failure of its hyperparameters: waiting for a healthy worker.
    assert [t.state for t in trials] == [TrialState.WAITING, TrialState.WAITING]
    assert not any("failure_kind" in t.user_attrs for t in trials)


def test_a_full_disk_while_checkpointing_leaves_no_partial_file(tmp_path, monkeypatch):
    import errno

    import torch

    from hpo.context import CheckpointIOError, Context

    def full_disk(obj, handle):
        handle.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)

    class Trial:  # just what the checkpoint folder is made of
        number, user_attrs = 0, {"slot": 3}

        class study:
            study_name, user_attrs = "disk-v1", {}

    ctx = Context(Trial(), seed=0, checkpoint_root=tmp_path)
    with pytest.raises(CheckpointIOError) as raised:
        ctx.save_checkpoint(1, {"w": 1})
    assert raised.value.strerror == "No space left on device"
    assert raised.value.path == ctx.checkpoint_dir / "last.pt"
    assert list(ctx.checkpoint_dir.iterdir()) == []  # the .partial file is gone
