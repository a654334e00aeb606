"""Sixty-four workers started at once on one PostgreSQL: none waits on another to join,
every one runs trials, and the budget is met exactly (no trial lost, none run twice)."""

from __future__ import annotations

from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState
from pg_cluster import Cluster
from test_fleet import assert_exact, start_fleet

from hpo import attrs
from hpo.store import open_storage

WORKERS = 64
# Enough trials that work is left when the last worker has started: on 2 loaded cores the
# 64 interpreters take about 45 s to start between them, and the first ones run trials
# meanwhile (about 70 s in all here).
BUDGET = WORKERS * 12

STUDY = '''
import time
from hpo import Study, scientific, nuisance, choice, uniform

def objective(config, ctx):
    time.sleep(1.0)
    return config["x"] if config["arm"] == "a" else 1 - config["x"]

study = Study(name="crowd", goal="Do sixty-four workers share one PostgreSQL?", metric="loss",
              space={"arm": scientific(choice("a", "b")), "x": nuisance(uniform(0.0, 1.0))},
              objective=objective, trials_per_value=1)
'''


@pytest.fixture
def cluster():
    # A private server: 64 workers hold up to two connections each while they start, more
    # than the shared server's default max_connections of 100 leaves to other tests.
    cluster = Cluster(settings={"max_connections": 200})
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.mark.timeout(900)
def test_sixty_four_workers_started_at_once_all_run_trials_and_the_budget_is_exact(
        tmp_path, cluster):
    path = tmp_path / "crowd.py"
    path.write_text(STUDY)
    fleet = start_fleet(["run", path, "--workers", str(WORKERS), "--trials", str(BUDGET)],
                        {"HPO_STORAGE": cluster.url}, tmp_path)
    out, err = fleet.communicate(timeout=840)
    assert fleet.returncode == 0, err
    assert "Traceback" not in err and "restarting" not in err, err
    study = optuna.load_study(study_name="crowd", storage=open_storage(cluster.url))
    assert_exact(study, BUDGET)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    per_slot = Counter(t.user_attrs[attrs.SLOT] for t in complete)
    assert sorted(per_slot) == list(range(BUDGET)) and set(per_slot.values()) == {1}
    ran = Counter(t.user_attrs[attrs.WORKER_PID] for t in complete)
    assert len(ran) == WORKERS, f"only {len(ran)} of {WORKERS} workers ran a trial: {ran}"
