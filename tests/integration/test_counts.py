"""On PostgreSQL, ``hpo status`` counts with aggregate queries and ``hpo report`` and
``hpo export`` read every trial in one query of hpo's own: they must say exactly what the
tally of Optuna's own read says, on a study with every case the tally distinguishes."""

from __future__ import annotations

import datetime as dt
import math

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from hpo import attrs
from hpo import status as status_module
from hpo.analysis import export
from hpo.analysis.seeds import enqueue_seed_reruns
from hpo.counts import from_tally
from hpo.status import status_text
from hpo.store import open_study
from hpo.store.queue import PostgresQueue, TrialQueue
from hpo.study_file import load_study_file

optuna.logging.set_verbosity(optuna.logging.WARNING)
OWNER = {attrs.HOST: "elsewhere", attrs.WORKER_PID: 1, attrs.WORKER_STARTED: 1}


def run(queue, budget, value=None, state=TrialState.COMPLETE, error=None, **flags):
    """Claim the next trial and end it so; returns it."""
    trial = queue.claim(budget, OWNER)
    assert trial is not None
    trial_id = queue.trial_id(trial)
    for key, flag in flags.items():
        queue.storage.set_trial_user_attr(trial_id, key, flag)
    if error is not None:
        queue.storage.set_trial_user_attr(trial_id, attrs.ERROR, error)
    if state == TrialState.COMPLETE and value is not None and math.isfinite(value):
        queue.finish(trial, value)
    else:
        queue.storage.set_trial_state_values(
            trial_id, state=state, values=[value] if value is not None else None)
    return queue.storage.get_trial(trial_id)


def died(queue, budget):
    """Claim the next trial; its worker dies: FAIL, and the queue retries it."""
    failed = run(queue, budget, state=TrialState.FAIL, error="worker died (elsewhere pid 1)")
    assert queue.add_retry(failed)
    return failed


def every_case(study_file, url):
    definition = load_study_file(study_file(per_value=12))  # 24 slots, sgd and adam
    study, queue = open_study(definition, url, budget=28)  # 4 beyond the design's budget
    assert isinstance(queue, PostgresQueue)
    for value in (0.2, 0.3, 0.2, 0.4):                     # slots 0-3
        run(queue, 12, value)
    run(queue, 12, math.inf)                               # 4: complete, but never the best
    run(queue, 12, 0.5)                                    # 5
    run(queue, 12, state=TrialState.FAIL, error="RuntimeError: boom\nsecond line")  # 6
    run(queue, 12, state=TrialState.FAIL, error="diverged: loss is nan", diverged=True)  # 7
    died(queue, 12)                                        # 8, retried...
    died(queue, 12)                                        # 9, retried...
    run(queue, 12, state=TrialState.PRUNED)                # 10
    run(queue, 12, state=TrialState.FAIL, error="out of memory", oom=True)  # 11
    run(queue, 12, 0.2)                                    # 8's retry: sgd's 3rd 0.2
    died(queue, 12)                                        # 9's retry dies too: attempt 3
    running = queue.claim(12, OWNER)                       # 9's third attempt runs
    assert running is not None
    for _ in range(10):                                    # 12-21: one error, ten times
        run(queue, 24, state=TrialState.FAIL, error="ValueError: bad config\n  at line 3",
            failure_kind="error")
    run(queue, 24, state=TrialState.FAIL, error="trial ran past its time limit (60s)",
        failure_kind="timeout")                            # 22; 23 waits
    # Seed re-runs of each value's best: one done, one failed and retried, the rest waiting.
    assert len(enqueue_seed_reruns(definition, study, top=1, repeats=3)) == 6
    run(queue, 12, 0.25)
    retried = run(queue, 12, state=TrialState.FAIL, error="worker died (elsewhere pid 2)")
    assert queue.add_retry(retried)
    run(queue, 12, 0.35)
    # Outside the design: a trial added by hand with a slot attribute (an attempt at slot 3
    # as far as the tally is concerned), and one enqueued by hand, refused at the next open.
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.05, params={"x": 0.5},
                                 distributions={"x": FloatDistribution(0, 1)},
                                 user_attrs={attrs.SLOT: 3}))
    study.enqueue_trial({"optimizer": "adam"})
    study, queue = open_study(definition, url, budget=28)
    return definition, study, queue


@pytest.mark.postgres
def test_the_aggregate_queries_count_exactly_what_the_tally_counts(study_file, pg_url):
    definition, study, queue = every_case(study_file, pg_url)
    trials = study.get_trials()
    states = {t.state for t in trials}
    assert states == {TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED,
                      TrialState.RUNNING, TrialState.WAITING}
    for budget in (None, 12, 24, 28, 5, 100):
        sql = queue.counts(definition, budget)
        assert sql == from_tally(definition, trials, budget), budget
        assert sql == TrialQueue(study).counts(definition, budget)
    counted = queue.counts(definition)
    assert counted.budget == counted.planned == 28
    # Slot 6's error, slots 12-21's (the foreign trial refused is no design slot); the dead
    # workers' attempts were all retried, so none counts as a slot's failure.
    assert sorted((f.kind, f.count) for f in counted.failed) == [
        ("diverged", 1), ("error", 1), ("error", 10), ("oom", 1), ("timeout", 1)]
    (bad,) = [f for f in counted.failed if f.count == 10]
    assert bad.message == "ValueError: bad config" and bad.first == tuple(range(12, 20))
    assert sum(v.retried for v in counted.values) == 5  # 8 once, 9 twice, a re-run, slot 3
    sgd, adam = counted.values
    assert (sgd.best.number, sgd.best.value) == (0, 0.2)  # of three at 0.2, the first
    assert adam.best.value == 0.05  # the trial added by hand is slot 3's latest attempt


@pytest.mark.postgres
def test_status_is_the_same_from_the_queries_and_from_every_trial(study_file, pg_url,
                                                                   monkeypatch):
    definition, study, queue = every_case(study_file, pg_url)
    now = dt.datetime.now()

    class Still(PostgresQueue):  # heartbeats' ages held still: the clock moves between reads
        def heartbeat_ages(self, trial_ids):
            return dict.fromkeys(trial_ids, 5.0)

    class Tallied(Still):  # the same queue, counting from every trial
        counts = TrialQueue.counts

    monkeypatch.setattr(status_module, "queue_for", lambda s: Still(s, queue.backend))
    from_sql = status_text(definition, study, now=now)
    monkeypatch.setattr(status_module, "queue_for", lambda s: Tallied(s, queue.backend))
    assert status_text(definition, study, now=now) == from_sql
    assert "budget: 22 of 28 trials done (79%)" in from_sql
    assert ("infeasible: 1 diverged, 1 oom; failed: 11 error (#6, #12, #13, #14, #15, #16, "
            "#17, #18, ...), 1 timeout (#22)\n") in from_sql
    assert "  error x10 (#12, #13, #14, #15, #16, #17, #18, #19, ...): ValueError: bad config" \
        in from_sql


@pytest.mark.postgres
def test_report_and_export_read_every_trial_as_optuna_reads_it(study_file, pg_url,
                                                               monkeypatch):
    definition, study, queue = every_case(study_file, pg_url)
    assert queue.all_trials() == study.get_trials()
    rows = export.trial_rows(definition, study, nested=True)
    monkeypatch.setattr(export, "queue_for", lambda s: TrialQueue(s))
    assert export.trial_rows(definition, study, nested=True) == rows
