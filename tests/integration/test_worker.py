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
