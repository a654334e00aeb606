"""The ``hpo`` command as a user meets it: output, exit codes, refusals, secrets."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest
from conftest import hpo_cli

from hpo.store import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_run_prints_a_summary_per_scientific_value(tmp_path, study_file):
    path = study_file(per_value=3)
    result = hpo_cli("run", path, "--workers", "2", "--storage", tmp_path / "j.log", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in lines if line.startswith("optimizer=")}
    assert set(rows) == {"optimizer=sgd", "optimizer=adam"}
    assert all(row[1] == "3" for row in rows.values())  # finished per value
    sgd, adam = " ".join(rows["optimizer=sgd"]), " ".join(rows["optimizer=adam"])
    # The best trial's nuisance values, each optimizer with its own conditional ones.
    assert "learning_rate=" in sgd and "momentum=" in sgd and "beta1=" not in sgd
    assert "beta1=" in adam and "momentum=" not in adam


def test_trials_option_sets_the_total_budget_not_per_worker(tmp_path, study_file):
    path = study_file(per_value=50)
    journal = tmp_path / "j.log"
    result = hpo_cli("run", path, "--workers", "3", "--trials", "7", "--storage", journal)
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="synthetic-v1", storage=open_storage(str(journal)))
    assert len([t for t in study.get_trials() if t.state.is_finished()]) == 7


def test_changed_search_space_under_the_same_name_is_refused(tmp_path, study_file):
    storage = tmp_path / "j.log"
    assert hpo_cli("run", study_file(per_value=1), "--storage", storage).returncode == 0
    before = storage.read_bytes()
    changed = study_file(per_value=1, filename="changed.py")
    changed.write_text(changed.read_text().replace("log_uniform(1e-4, 1.0)",
                                                   "log_uniform(1e-5, 1.0)"))
    result = hpo_cli("run", changed, "--storage", storage, "--trials", "4")
    assert result.returncode == 2
    message = result.stderr.strip()
    assert message.count("\n") == 0
    assert "synthetic-v1" in message and "different search space" in message
    assert "synthetic-v2" in message  # it says how to fix it: bump the name or version
    assert storage.read_bytes() == before  # nothing written


def test_help_does_not_import_torch():
    code = ("import sys; from hpo.cli import main\ntry: main(['--help'])\n"
            "except SystemExit: pass\nprint('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip().endswith("False"), result.stdout


SECRET = "Sup3rSecretPw"


@pytest.mark.parametrize("url", [
    f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:5432/no_such_db_hpo",  # wrong database
    f"postgresql+psycopg2://postgres:{SECRET}@no-such-host.invalid/hpo",       # unknown host
])
def test_unusable_storage_is_one_line_exit_2_and_never_shows_the_password(tmp_path, study_file,
                                                                           url):
    for args, env in [(["--storage", url], None), ([], {"HPO_STORAGE": url})]:
        result = hpo_cli("run", study_file(), *args, env=env, cwd=tmp_path, timeout=60)
        assert result.returncode == 2, result.stderr
        assert SECRET not in result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("hpo: error: cannot open storage"), lines
        assert "***" in lines[0]


def test_an_unreachable_database_is_waited_for_then_exit_1_with_one_line(tmp_path, study_file):
    """Not bad input: the database may be starting. A worker retries with backoff for
    HPO_DB_PATIENCE seconds, then stops with the reason (exit 1); nothing is written."""
    url = f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:1/hpo"
    result = hpo_cli("run", study_file(), env={"HPO_STORAGE": url, "HPO_DB_PATIENCE": "3"},
                     cwd=tmp_path, timeout=60)
    assert result.returncode == 1, result.stderr
    assert SECRET not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("hpo: error:")]
    assert len(errors) == 1 and errors[0].startswith("hpo: error: cannot reach storage")
    assert "waited 3s (HPO_DB_PATIENCE)" in errors[0]
    assert not any(tmp_path.glob("*journal*"))


@pytest.mark.postgres
def test_password_never_printed_during_a_real_run(tmp_path, study_file, pg_url):
    # The local server uses trust auth, so any password connects: a real run with one set.
    url = pg_url.replace("postgres@", f"postgres:{SECRET}@")
    result = hpo_cli("run", study_file(per_value=2), "--workers", "2", env={"HPO_STORAGE": url},
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert "postgres:***@" in result.stderr  # it does say where it is writing


FAILING_STUDY = '''
import math
from hpo import Study, scientific, nuisance, choice, uniform

def objective(config, ctx):
    kind = config["kind"]
    if kind == "raises":
        raise ValueError("boom in the objective")
    if kind == "nan":
        return math.nan
    if kind == "typo":
        return config["learning_rat"]
    if kind == "oom":
        import torch
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    return config["x"]

study = Study(name="failing-v1", goal="g", metric="loss",
              space={"kind": scientific(choice("ok", "raises", "nan", "typo", "oom")),
                     "x": nuisance(uniform(0.0, 1.0))},
              objective=objective, trials_per_value=2)
'''


def test_objective_failures_are_recorded_and_the_worker_goes_on(tmp_path):
    path = tmp_path / "failing.py"
    path.write_text(FAILING_STUDY)
    storage = tmp_path / "j.log"
    result = hpo_cli("worker", path, "--storage", storage)
    # Errors are failures to fix (exit 1, and how to retry them); infeasible trials are not.
    assert result.returncode == 1, result.stderr
    assert "hpo: error: 4 of 10 slots failed: 4 error (#" in result.stderr
    assert f"hpo retry {path} --storage {storage}" in result.stderr
    study = optuna.load_study(study_name="failing-v1", storage=open_storage(str(storage)))
    by_kind = {}
    for t in study.get_trials():
        by_kind.setdefault(t.params["kind"], []).append(t)
    assert all(len(ts) == 2 for ts in by_kind.values())
    assert all(t.state.name == "COMPLETE" for t in by_kind["ok"])
    expected = {"ok": None, "raises": "error", "nan": "diverged", "typo": "error", "oom": "oom"}
    assert all(t.user_attrs.get("failure_kind") == expected[k]
               for k, ts in by_kind.items() for t in ts)
    for t in by_kind["raises"]:
        assert t.state.name == "FAIL"
        assert t.user_attrs["error"] == "ValueError: boom in the objective"
        assert "raise ValueError" in t.user_attrs["traceback"]
    for t in by_kind["nan"]:
        assert t.state.name == "FAIL" and t.user_attrs["diverged"] is True
    for t in by_kind["oom"]:
        assert t.state.name == "FAIL" and t.user_attrs["oom"] is True
        assert t.user_attrs["error"].startswith(
            "out of memory: OutOfMemoryError: CUDA out of memory")
    for t in by_kind["typo"]:
        assert t.state.name == "FAIL"
        assert "unknown hyperparameter 'learning_rat'" in t.user_attrs["error"]
        assert "kind, x" in t.user_attrs["error"]  # it lists the known names


SLOW_STUDY = '''
import time
from hpo import Study, nuisance, uniform

def objective(config, ctx):
    time.sleep(60)
    return config["x"]

study = Study(name="slow-v1", goal="g", metric="loss", space={"x": nuisance(uniform(0.0, 1.0))},
              objective=objective, trials_per_value=3)
'''


def test_sigterm_hands_the_running_trial_back(tmp_path):
    import signal
    import time

    path = tmp_path / "slow.py"
    path.write_text(SLOW_STUDY)
    storage = tmp_path / "j.log"
    worker = subprocess.Popen([sys.executable, "-m", "hpo", "worker", str(path), "--storage",
                               str(storage)], stderr=subprocess.PIPE, text=True)
    study = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if storage.exists():
            try:
                study = optuna.load_study(study_name="slow-v1", storage=open_storage(str(storage)))
            except KeyError:
                study = None
            if study and any(t.state.name == "RUNNING" and t.params for t in study.get_trials()):
                break
        time.sleep(0.2)
    else:
        worker.kill()
        pytest.fail("the worker never started a trial")
    running = [t for t in study.get_trials() if t.state.name == "RUNNING"]
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=30)
    assert worker.returncode == 130, err
    assert "handed back" in err
    after = {t.number: t for t in study.get_trials()}
    # Not lost, not failed: waiting again, with the parameters it had.
    assert after[running[0].number].state.name == "WAITING"
    assert after[running[0].number].params == running[0].params
    assert not [t for t in after.values() if t.state.name in ("RUNNING", "FAIL")]
