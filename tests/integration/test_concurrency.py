"""Many worker processes on one study: the budget is global and exact, the design holds.

These start real ``hpo worker`` processes at the same moment, against the embedded journal
file and against a real, initially empty PostgreSQL database.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter, defaultdict

import optuna
import pytest
from optuna.trial import TrialState

from hpo.store import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


def start_workers(count, study_path, url, trials, cwd):
    env = {**os.environ, "HPO_STORAGE": url}
    command = [sys.executable, "-m", "hpo", "worker", str(study_path), "--quiet"]
    if trials:
        command += ["--trials", str(trials)]
    return [subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(count)]


def wait_all(workers, timeout=240):
    results = []
    for w in workers:
        out, err = w.communicate(timeout=timeout)
        results.append((w.returncode, err))
    return results


def check_design(url, name, expected):
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state.is_finished()]
    assert len(finished) == expected, Counter(t.state for t in trials)
    assert all(t.state == TrialState.COMPLETE for t in finished)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)), "duplicate trial numbers"
    per_value = Counter(t.params["optimizer"] for t in finished)
    assert max(per_value.values()) - min(per_value.values()) <= 1, per_value
    points = defaultdict(set)
    for t in finished:
        point = tuple(sorted((k, v) for k, v in t.params.items() if k != "optimizer"))
        assert point not in points[t.params["optimizer"]], f"repeated point {point}"
        points[t.params["optimizer"]].add(point)
    slots = sorted(t.user_attrs["slot"] for t in finished)
    assert slots == list(range(expected))


def test_three_workers_on_the_embedded_default(tmp_path, study_file):
    path = study_file(per_value=8, sleep=0.02)
    # No --storage and no HPO_STORAGE: the default journal file in the working directory.
    env = {k: v for k, v in os.environ.items() if k != "HPO_STORAGE"}
    workers = [subprocess.Popen([sys.executable, "-m", "hpo", "worker", str(path), "--quiet",
                                 "--trials", "21"], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(3)]
    results = wait_all(workers)
    for code, err in results:
        assert code == 0, err
        assert "lock" not in err.lower(), err
    check_design(str(tmp_path / "hpo-journal.log"), "synthetic-v1", 21)


@pytest.mark.postgres
def test_eight_workers_on_postgres_exact_budget_balanced_and_paired(tmp_path, study_file, pg_url):
    path = study_file(per_value=20, sleep=0.01)
    results = wait_all(start_workers(8, path, pg_url, 37, tmp_path))
    for code, err in results:
        assert code == 0, err
    check_design(pg_url, "synthetic-v1", 37)


@pytest.mark.postgres
def test_four_workers_starting_at_once_on_an_empty_database(tmp_path, study_file, pg_url):
    path = study_file(per_value=2)
    results = wait_all(start_workers(4, path, pg_url, None, tmp_path))
    for code, err in results:
        assert code == 0, err
        assert "Traceback" not in err, err
    check_design(pg_url, "synthetic-v1", 4)


@pytest.mark.postgres
def test_more_trials_later_extends_the_same_design(tmp_path, study_file, pg_url):
    path = study_file(per_value=2)
    assert all(code == 0 for code, _ in wait_all(start_workers(2, path, pg_url, 6, tmp_path)))
    assert all(code == 0 for code, _ in wait_all(start_workers(2, path, pg_url, 10, tmp_path)))
    check_design(pg_url, "synthetic-v1", 10)
