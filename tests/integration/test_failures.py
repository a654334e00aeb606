"""Failures a user can see and fix, through the ``hpo`` command as a user runs it: a typo
that fails every trial, ``hpo retry``, a trial timeout, a changed design, definition-time
holes, a read-only ``hpo status``, and a report that counts each kind apart."""

from __future__ import annotations

import csv
import io
import json

import optuna
import pytest
import sqlalchemy
from conftest import dedent, hpo_cli
from optuna.trial import TrialState
from sqlalchemy.pool import NullPool

from hpo.store import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

TYPO_STUDY = '''
import time
from hpo import Study, scientific, nuisance, choice, log_uniform

def objective(config, ctx):
    for step in range(3):
        ctx.report(step, 1.0 / (step + 1))
    return config["learning_rate"] * 2   # the space calls it lr: every trial fails

study = Study(name="typo-v1", goal="Does the retry flow work?", metric="loss",
              space={"optimizer": scientific(choice("sgd", "adam")),
                     "lr": nuisance(log_uniform(1e-4, 1.0))},
              objective=objective, trials_per_value=4)
'''


def load(storage, name):
    return optuna.load_study(study_name=name, storage=open_storage(str(storage)))


def test_a_typo_stops_the_study_after_three_trials_and_retry_then_run_completes_it(tmp_path):
    path, storage = tmp_path / "typo.py", tmp_path / "j.log"
    path.write_text(TYPO_STUDY)
    first = hpo_cli("run", path, "--storage", storage, cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    error = first.stderr.strip().splitlines()[-1]
    assert error.startswith("hpo: error: stopped: the first 3 finished trials all failed with "
                            "an error and none completed; trial 0: KeyError: \"unknown "
                            "hyperparameter 'learning_rate'; known: lr, optimizer\"")
    assert f"hpo retry {path}" in error
    trials = load(storage, "typo-v1").get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 3 and all(t.user_attrs["failure_kind"] == "error" for t in failed)
    assert "config[\"learning_rate\"]" in failed[0].user_attrs["traceback"]
    assert "failed: 3 error (#0, #1, #2)" in first.stdout  # the summary counts them apart

    # The same command again, code unchanged: it stops at once, before running a trial.
    again = hpo_cli("run", path, "--storage", storage, cwd=tmp_path)
    assert again.returncode == 1 and "stopped: the first 3 finished trials" in again.stderr
    assert len(load(storage, "typo-v1").get_trials()) == 8

    path.write_text(TYPO_STUDY.replace('config["learning_rate"]', 'config["lr"]'))
    retry = hpo_cli("retry", path, "--storage", storage)
    assert retry.returncode == 0, retry.stderr
    assert ("hpo: queued 3 failed attempt(s) again, same parameters and seeds: 3 error (#0, #1, "
            f"#2); run them: hpo run {path} --storage {storage}") in retry.stderr
    fixed = hpo_cli("run", path, "--storage", storage, cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    assert "8 complete, 0 pruned, 0 infeasible, 0 failed, best loss" in fixed.stderr  # the bar
    trials = load(storage, "typo-v1").get_trials()
    finals = {}
    for t in trials:
        finals[t.user_attrs["slot"]] = t  # in number order: the last attempt of each slot wins
    assert sorted(finals) == list(range(8))
    assert all(t.state == TrialState.COMPLETE for t in finals.values())
    # The failed attempts are kept, as earlier attempts of their slots, with their error.
    earlier = [t for t in trials if t not in finals.values()]
    assert [t.number for t in earlier] == [0, 1, 2]
    assert all(t.state == TrialState.FAIL and "learning_rate" in t.user_attrs["error"]
               for t in earlier)
    for t in earlier:
        retry_of = next(r for r in trials if r.system_attrs.get("failed_trial") == t.number)
        assert retry_of.params == t.params and retry_of.user_attrs["seed"] == t.user_attrs["seed"]
    rows = [line.split() for line in fixed.stdout.splitlines() if line.startswith("optimizer=")]
    assert sum(int(r[8]) for r in rows) == 3  # the retried column

    nothing = hpo_cli("retry", path, "--storage", storage)
    assert nothing.returncode == 2
    assert nothing.stderr.strip() == ("hpo: error: nothing to retry: no slot of study 'typo-v1' "
                                      "ended with error or timeout or infrastructure")


SLEEPY_STUDY = '''
import time
from hpo import Study, scientific, nuisance, choice, uniform

def objective(config, ctx):
    if ctx.trial_number == 1:
        {hang}
    return config["x"]

study = Study(name="sleepy-v1", goal="g", metric="loss",
              space={{"arm": scientific(choice("a", "b")), "x": nuisance(uniform(0.0, 1.0))}},
              objective=objective, trials_per_value=2, trial_timeout={study_timeout})
'''


def test_a_sleeping_trial_times_out_the_others_complete_and_run_exits_1(tmp_path):
    path, storage = tmp_path / "sleepy.py", tmp_path / "j.log"
    path.write_text(SLEEPY_STUDY.format(hang="time.sleep(600)", study_timeout=None))
    result = hpo_cli("run", path, "--storage", storage, "--trial-timeout", "5", cwd=tmp_path,
                     timeout=120)
    assert result.returncode == 1, result.stderr
    assert "trial timeout 5s" in result.stderr
    assert "hpo: error: 1 of 4 slots failed: 1 timeout (#1)" in result.stderr
    trials = load(storage, "sleepy-v1").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    slow = trials[1]
    assert slow.user_attrs["failure_kind"] == "timeout"
    assert slow.user_attrs["error"].startswith("timeout: the trial ran past its time limit of 5s")
    assert "time.sleep(600)" in slow.user_attrs["traceback"]  # where it was when stopped
    assert 4.5 < (slow.datetime_complete - slow.datetime_start).total_seconds() < 30
    # The same worker process ran them all: asked to stop, the objective did.
    assert len({t.user_attrs["worker_pid"] for t in trials}) == 1


def test_an_objective_that_ignores_its_timeout_has_its_worker_process_replaced(tmp_path):
    path, storage = tmp_path / "stuck.py", tmp_path / "j.log"
    # Swallows the timeout (a bare except around a blocking call) and carries on forever.
    hang = ("while True:\n"
            "            try:\n"
            "                time.sleep(600)\n"
            "            except BaseException:\n"
            "                pass")
    path.write_text(SLEEPY_STUDY.format(hang=hang, study_timeout=2))  # the study's own limit
    result = hpo_cli("run", path, "--storage", storage, env={"HPO_TIMEOUT_GRACE": "1"},
                     cwd=tmp_path, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "replacing this worker process" in result.stderr
    assert "restarting it" not in result.stderr  # the supervisor saw no crash
    trials = load(storage, "sleepy-v1").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[1].user_attrs["failure_kind"] == "timeout"
    assert trials[1].user_attrs["error"] == (
        "timeout: the trial ran past its time limit of 2s and did not stop within 1s of being "
        "asked; its worker process was replaced")
    # Replaced in place (exec): the same pid went on with the next trials.
    assert len({t.user_attrs["worker_pid"] for t in trials}) == 1


def test_a_changed_seed_is_refused_with_exit_2_and_the_journal_left_byte_identical(
        tmp_path, study_file):
    storage = tmp_path / "j.log"
    assert hpo_cli("run", study_file(per_value=1), "--storage", storage).returncode == 0
    before = storage.read_bytes()
    for changed, phrase in ((study_file(per_value=1, seed=1, filename="seed.py"),
                             "a different seed (0 in storage, 1 now)"),
                            (study_file(per_value=1, phase="exploit", filename="phase.py"),
                             "a different phase ('explore' in storage, 'exploit' now)")):
        for command in (["run", changed, "--trials", "4"], ["status", changed],
                        ["report", changed, "--out", tmp_path / "r"], ["retry", changed]):
            result = hpo_cli(*command, "--storage", storage, cwd=tmp_path)
            assert result.returncode == 2, (command, result.stderr)
            message = result.stderr.strip()
            assert message.count("\n") == 0, message
            assert message == (f"hpo: error: study 'synthetic-v1' in {storage} was created with "
                               f"{phrase}; results from two designs must not mix: bump the "
                               "study's name or version, e.g. name='synthetic-v2'")
        assert storage.read_bytes() == before  # nothing written


def test_a_fixed_object_is_one_line_exit_2_and_no_storage_file(tmp_path):
    path, storage = tmp_path / "object.py", tmp_path / "j.log"
    path.write_text(dedent('''
        from hpo import Study, fixed, nuisance, uniform
        study = Study(name="object-v1", goal="g", metric="loss",
                      space={"x": nuisance(uniform(0.0, 1.0)), "activation": fixed(object())},
                      objective=lambda config, ctx: config["x"])
    '''))
    result = hpo_cli("run", path, "--storage", storage, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"hpo: error: {path}: activation: fixed() values are recorded "
                               "with every result, so they must be JSON values")
    assert "of type object; name the option with a string" in lines[0]
    assert not storage.exists() and not list(tmp_path.glob("j.log*"))


@pytest.mark.postgres
def test_status_and_studies_on_an_empty_database_exit_2_and_create_no_table(tmp_path,
                                                                            study_file, pg_url):
    for command in (["status", study_file()], ["studies"], ["report", study_file()],
                    ["export", study_file()]):
        result = hpo_cli(*command, env={"HPO_STORAGE": pg_url}, cwd=tmp_path)
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr.strip().startswith("hpo: error: no hpo study here: "), result.stderr
    engine = sqlalchemy.create_engine(pg_url, poolclass=NullPool)
    try:
        assert sqlalchemy.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


MIXED_STUDY = '''
import math, os, pathlib, signal
from hpo import Study, scientific, nuisance, choice, uniform

MARK = pathlib.Path(__file__).with_name("killed-once")

def objective(config, ctx):
    if ctx.trial_number == 1:
        raise ValueError("boom in the objective")
    if ctx.trial_number == 2 and not MARK.exists():
        MARK.write_text("x")
        os.kill(os.getpid(), signal.SIGKILL)   # its worker dies mid-trial, once
    if config["x"] > 0.6:
        return math.nan   # diverged: infeasible
    return config["x"]

study = Study(name="mixed-v1", goal="Are failures counted apart?", metric="loss",
              space={"arm": scientific(choice("a", "b")), "x": nuisance(uniform(0.0, 1.0))},
              objective=objective, trials_per_value=4)
'''


def test_the_report_counts_errors_dead_workers_and_divergence_apart(tmp_path):
    path, storage = tmp_path / "mixed.py", tmp_path / "j.log"
    path.write_text(MIXED_STUDY)
    run = hpo_cli("run", path, "--storage", storage, cwd=tmp_path, timeout=240)
    assert run.returncode == 1, run.stderr  # the error is a failure; divergence is not
    assert "hpo: error: 1 of 8 slots failed: 1 error (#1)" in run.stderr
    trials = load(storage, "mixed-v1").get_trials()
    kinds = {t.number: t.user_attrs.get("failure_kind") for t in trials}
    assert kinds[1] == "error" and kinds[2] == "infrastructure"
    diverged = [n for n, k in kinds.items() if k == "diverged"]
    assert diverged, "the design has points with x > 0.6"
    retried = next(t for t in trials if t.system_attrs.get("failed_trial") == 2)
    assert retried.state in (TrialState.COMPLETE, TrialState.FAIL)

    report = hpo_cli("report", path, "--storage", storage, "--no-dashboard",
                     "--out", tmp_path / "r")
    assert report.returncode == 0, report.stderr
    out = report.stdout
    feasible = 8 - 1 - len(diverged)
    assert (f"8 of 8 design trials finished ({feasible} complete, 0 pruned, {len(diverged)} "
            "infeasible, 1 failed, 0 running, 0 waiting; 1 retried attempt(s) not counted)") in out
    assert "## Failures" in out
    assert "### error x1: ValueError: boom in the objective" in out
    assert "ended 1 slot(s): #1." in out and 'raise ValueError("boom in the objective")' in out
    assert "### infrastructure x1: worker died (" in out and "1 attempt(s) retried: #2." in out
    infeasible = out[out.index("## Infeasible trials"):out.index("## Failures")]
    assert "(1 failed trial(s) not counted: see Failures)" in infeasible
    assert "boom" not in infeasible
    html = (tmp_path / "r" / "report.html").read_text()
    assert "<pre><code>Traceback" in html or "<pre><code>  File" in html

    status = hpo_cli("status", path, "--storage", storage)
    assert "error x1 (#1): ValueError: boom in the objective" in status.stdout
    assert "failed: 1 error (#1)" in status.stdout

    export = hpo_cli("export", path, "--storage", storage)
    rows = {int(r["number"]): r for r in csv.DictReader(io.StringIO(export.stdout))}
    assert rows[1]["failure_kind"] == "error" and rows[1]["design"] == "trial"
    assert rows[2]["failure_kind"] == "infrastructure" and rows[2]["design"] == "retried"
    assert all(rows[n]["failure_kind"] == "diverged" for n in diverged)
    assert sum(r["design"] == "trial" for r in rows.values()) == 8  # slots, not attempts


def test_studies_lists_what_a_storage_holds_and_delete_needs_yes(tmp_path, study_file):
    storage = tmp_path / "j.log"
    path = study_file(per_value=1)
    assert hpo_cli("run", path, "--storage", storage).returncode == 0
    listed = hpo_cli("studies", "--storage", storage)
    assert listed.returncode == 0, listed.stderr
    header, _, row = listed.stdout.splitlines()
    assert header.split()[:4] == ["study", "phase", "metric", "slots"]
    assert row.split()[:5] == ["synthetic-v1", "explore", "loss", "(minimize)", "2/2"]

    refused = hpo_cli("delete", path, "--storage", storage)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (f"hpo: error: hpo delete removes study 'synthetic-v1' "
                                      f"(2 trial(s)) from {storage} for good; add --yes to "
                                      "delete it")
    assert load(storage, "synthetic-v1")  # still there
    deleted = hpo_cli("delete", path, "--storage", storage, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert optuna.get_all_study_names(open_storage(str(storage))) == []
    empty = hpo_cli("studies", "--storage", storage)
    assert empty.returncode == 2 and "no study in" in empty.stderr


def test_version_and_options_a_command_does_not_use(tmp_path, study_file):
    version = hpo_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("hpo 0.")
    assert "optuna 5." in version.stdout
    for command in (["status", study_file(), "--checkpoint-dir", tmp_path],
                    ["status", study_file(), "--trial-timeout", "5"],
                    ["retry", study_file(), "--kind", "diverged"],
                    ["run", study_file(), "--trial-timeout", "0"],
                    ["run", study_file(), "--max-errors", "-1"]):
        result = hpo_cli(*command, "--storage", tmp_path / "j.log")
        assert result.returncode == 2, (command, result.stderr)
    assert not (tmp_path / "j.log").exists()


def test_the_metric_name_is_set_on_the_optuna_study(tmp_path, study_file):
    storage = tmp_path / "j.log"
    assert hpo_cli("run", study_file(per_value=1), "--storage", storage).returncode == 0
    assert load(storage, "synthetic-v1").metric_names == ["loss"]


def test_export_json_has_the_kind_too(tmp_path):
    path, storage = tmp_path / "typo.py", tmp_path / "j.log"
    path.write_text(TYPO_STUDY)
    hpo_cli("run", path, "--storage", storage, cwd=tmp_path)
    rows = json.loads(hpo_cli("export", path, "--storage", storage, "--format", "json").stdout)
    assert [r["failure_kind"] for r in rows if r["state"] == "FAIL"] == ["error"] * 3


def test_two_workers_stop_together_on_a_failing_study(tmp_path):
    path, storage = tmp_path / "typo.py", tmp_path / "j.log"
    path.write_text(TYPO_STUDY)
    result = hpo_cli("run", path, "--storage", storage, "--workers", "2", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("hpo: error: stopped: the first") == 1  # said once, not per worker
    states = [t.state for t in load(storage, "typo-v1").get_trials()]
    assert TrialState.RUNNING not in states  # the other worker's trial was handed back
    assert 3 <= states.count(TrialState.FAIL) <= 4  # at most one more in flight


@pytest.mark.postgres
def test_retry_on_postgresql_queues_the_next_attempt_of_each_failed_slot(tmp_path, pg_url):
    path = tmp_path / "typo.py"
    path.write_text(TYPO_STUDY)
    env = {"HPO_STORAGE": pg_url}
    assert hpo_cli("run", path, env=env, cwd=tmp_path).returncode == 1
    path.write_text(TYPO_STUDY.replace('config["learning_rate"]', 'config["lr"]'))
    retry = hpo_cli("retry", path, "--kind", "error", env=env)
    assert retry.returncode == 0, retry.stderr
    assert "queued 3 failed attempt(s) again" in retry.stderr
    again = hpo_cli("retry", path, env=env)  # the slots now wait: nothing more to queue
    assert again.returncode == 2 and "nothing to retry" in again.stderr
    run = hpo_cli("run", path, "--workers", "2", env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    trials = optuna.load_study(study_name="typo-v1", storage=open_storage(pg_url)).get_trials()
    assert len(trials) == 11
    retried = [t for t in trials if "failed_trial" in t.system_attrs]
    assert sorted(t.system_attrs["failed_trial"] for t in retried) == [0, 1, 2]
    assert all(t.state == TrialState.COMPLETE and "failure_kind" not in t.user_attrs
               and "error" not in t.user_attrs for t in retried)


@pytest.mark.postgres
def test_outcomes_by_aggregate_query_agree_with_the_tally(tmp_path, pg_url):
    from hpo.store.queue import queue_for
    from hpo.study_file import load_study_file
    from hpo.tally import Counts, tally

    path = tmp_path / "mixed.py"
    path.write_text(MIXED_STUDY)
    run = hpo_cli("run", path, env={"HPO_STORAGE": pg_url}, cwd=tmp_path, timeout=240)
    assert run.returncode == 1, run.stderr
    study = optuna.load_study(study_name="mixed-v1", storage=open_storage(pg_url))
    trials = study.get_trials()
    values = tally(load_study_file(path), trials)
    expected = Counts.of(s.final for v in values for s in v.slots)
    outcomes = queue_for(study).outcomes(8)  # PostgreSQL: one query
    assert outcomes.counts == expected
    assert (expected.error, expected.infrastructure, expected.failed) == (1, 0, 1)
    assert expected.diverged > 0 and expected.finished == 8
    complete = [t.value for t in trials if t.state == TrialState.COMPLETE]
    assert (outcomes.low, outcomes.high) == (min(complete), max(complete))
