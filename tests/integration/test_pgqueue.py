"""The one-statement trial queue on PostgreSQL (hpo.store.pgqueue), against a real server.

What a claim answers must be exactly what Optuna itself reads back, and what the two
statements write must be what Optuna's own writes would have left: every other reader
(optuna-dashboard, the analysis, plain Optuna) sees the same trials.
"""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState, create_trial

from hpo.store import open_storage, open_study
from hpo.store.queue import queue_for
from hpo.study_file import load_study_file

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.postgres

def take(study, budget, attrs):
    return queue_for(study).claim(budget, attrs)


def finish(study, trial, value):
    queue_for(study).finish(trial, value)


def open_in_storage(definition, url, budget):
    return open_study(definition, url, budget=budget)[0]


MINE = {"host": "gpu-7", "worker_pid": 4242, "gpu": "NVIDIA H100", "note": [1, {"a": None}]}


def waiting(study, state=TrialState.WAITING, **kwargs):
    """A trial (WAITING unless told) added as Optuna adds one; with a slot (and not a seed
    re-run), it is registered as that slot's next attempt, as hpo's layout and retries
    register theirs."""
    study.add_trial(create_trial(state=state, **kwargs))
    trial = study.get_trials(deepcopy=False)[-1]
    user_attrs = kwargs.get("user_attrs", {})
    backend = getattr(study._storage, "_backend", None)
    if hasattr(backend, "engine") and "slot" in user_attrs and "seed_rerun_of" not in user_attrs:
        import sqlalchemy

        with study._storage._backend.engine.begin() as conn:
            conn.execute(sqlalchemy.text(
                "INSERT INTO hpo_slots (study_id, slot, attempt, trial_id) SELECT :s, :slot,"
                " (SELECT count(*) FROM hpo_slots WHERE study_id = :s AND slot = :slot), :t"),
                {"s": study._study_id, "slot": user_attrs["slot"], "t": trial._trial_id})
    return trial


@pytest.fixture
def empty_study(study_file):
    """An hpo study (the playbook sampler over the synthetic space) with no trials yet."""
    definition = load_study_file(study_file(name="q"))
    return lambda url: open_in_storage(definition, url, budget=0)


def fields(trial):
    return (trial.number, trial.state, trial.params, trial.distributions, trial.user_attrs,
            trial.system_attrs, trial.intermediate_values, trial._trial_id)


def test_a_claim_answers_what_optuna_reads_back(pg_url):
    """A retried or handed-back trial carries params, attributes and reported steps, with
    NaN and infinities among them: the claim's answer must hold all of them, unchanged."""
    study = optuna.create_study(study_name="q", storage=open_storage(pg_url))
    waiting(
        study,
        params={"lr": 0.003, "layers": 4, "opt": "adam"},
        distributions={"lr": FloatDistribution(1e-4, 1.0, log=True),
                       "layers": IntDistribution(1, 8),
                       "opt": CategoricalDistribution(("sgd", "adam"))},
        user_attrs={"slot": 0, "seed": 17, "host": "old-host"},
        system_attrs={"fixed_params": {}, "retry_history": [3]},
        intermediate_values={0: 1.5, 1: float("nan"), 2: float("inf"), 3: float("-inf")},
    )
    storage = study._storage._backend
    claimed = take(study, budget=10, attrs=MINE)

    fresh = open_storage(pg_url).get_trial(claimed._trial_id)  # another process's view
    assert fresh.state == TrialState.RUNNING
    assert fields(claimed)[:4] == fields(fresh)[:4]
    assert claimed.user_attrs == fresh.user_attrs == {"slot": 0, "seed": 17, **MINE}
    assert claimed.system_attrs == fresh.system_attrs
    assert claimed.intermediate_values[0] == 1.5 and math.isnan(claimed.intermediate_values[1])
    assert (claimed.intermediate_values[2], claimed.intermediate_values[3]) == (math.inf, -math.inf)
    assert math.isnan(fresh.intermediate_values[1]) and fresh.intermediate_values[3] == -math.inf
    assert fresh.datetime_start is not None
    assert abs((claimed.datetime_start - fresh.datetime_start).total_seconds()) < 1e-3
    # Its first heartbeat is in: a worker killed right after the claim is judged by it.
    assert storage._get_stale_trial_ids(study._study_id) == []
    # optuna.Trial's own read is served from the claim, once; the next goes to the database.
    assert storage.get_trial(claimed._trial_id) is claimed
    assert storage.get_trial(claimed._trial_id) is not claimed


def test_claims_take_the_lowest_slot_inside_the_budget_once_each(pg_url, empty_study):
    study = empty_study(pg_url)
    for slot in (0, 5, 1, 7):
        waiting(study, user_attrs={"slot": slot})
    # Slots 5 and 7 were laid out by an earlier, larger budget: a run of 5 leaves them.
    got = [take(study, budget=5, attrs=MINE) for _ in range(3)]
    assert [t.user_attrs["slot"] for t in got[:2]] == [0, 1] and got[2] is None
    # Laid out without a point, so the claim chose it and wrote it, as stored.
    assert got[1].params == study.sampler.explore_params(1)
    assert open_storage(pg_url).get_trial(got[1]._trial_id).params == got[1].params
    assert take(study, budget=8, attrs=MINE).user_attrs["slot"] == 5
    states = {t.user_attrs["slot"]: t.state for t in study.get_trials()}
    assert states == {0: TrialState.RUNNING, 1: TrialState.RUNNING, 5: TrialState.RUNNING,
                      7: TrialState.WAITING}


def test_finish_writes_what_study_tell_writes_and_refuses_a_trial_no_longer_running(pg_url,
                                                                                  empty_study):
    study = empty_study(pg_url)
    waiting(study, user_attrs={"slot": 0})
    waiting(study, user_attrs={"slot": 1})
    first, second = take(study, 2, MINE), take(study, 2, MINE)

    finish(study, first, 0.25)
    done = open_storage(pg_url).get_trial(first._trial_id)
    assert (done.state, done.value, done.values) == (TrialState.COMPLETE, 0.25, [0.25])
    assert done.datetime_complete >= done.datetime_start
    assert study.best_trial.number == first.number  # Optuna's own queries see it

    # A reaper failed the second meanwhile: its late result must not overwrite that.
    study._storage.set_trial_state_values(second._trial_id, TrialState.FAIL)
    with pytest.raises(UpdateFinishedTrialError):
        finish(study, second, 0.5)
    assert open_storage(pg_url).get_trial(second._trial_id).state == TrialState.FAIL
    with pytest.raises(UpdateFinishedTrialError):  # nor may a repeated finish write twice
        finish(study, first, 0.25)


def test_the_explore_design_is_laid_out_with_its_points_and_run_as_laid_out(pg_url, study_file):
    """Every WAITING slot holds its quasi-random point and seed before any worker starts, and
    the worker runs exactly that point."""
    from hpo.worker import run_worker

    definition = load_study_file(study_file(name="laid", per_value=3))
    study = open_in_storage(definition, pg_url, budget=6)
    planned = {t.user_attrs["slot"]: (t.params, t.user_attrs["seed"])
               for t in study.get_trials(deepcopy=False)}
    assert len(planned) == 6
    sampler = study.sampler
    for slot, (params, seed) in planned.items():
        assert params == sampler.explore_params(slot)
        assert seed == sampler.trial_seed(slot)
    # Paired design: the k-th trial of each optimizer shares its learning rate and seed.
    assert planned[0][0]["learning_rate"] == planned[1][0]["learning_rate"]
    assert planned[0][1] == planned[1][1] != planned[2][1]

    assert run_worker(definition, pg_url, budget=6) == 6
    ran = {t.user_attrs["slot"]: (t.params, t.user_attrs["seed"])
           for t in optuna.load_study(study_name="laid", storage=open_storage(pg_url)).trials}
    assert ran == planned


def test_a_seed_rerun_enqueued_after_the_worker_started_runs_with_its_parameters(pg_url,
                                                                                  study_file):
    """`hpo seeds` in another process adds trials this worker's Optuna cache has never seen;
    their parameters are written while they run, which needs the cache to know them."""
    from hpo.analysis.seeds import RERUN_ATTR, enqueue_seed_reruns
    from hpo.worker import run_trial

    definition = load_study_file(study_file(name="late", per_value=1))
    study, queue = open_study(definition, pg_url, budget=2)  # the worker's view, read once
    for _ in range(2):
        run_trial(definition, queue, queue.claim(2, MINE))

    elsewhere = optuna.load_study(study_name="late", storage=open_storage(pg_url))
    added = enqueue_seed_reruns(definition, elsewhere, top=1, repeats=1)
    assert len(added) == 2

    for _ in added:
        run_trial(definition, queue, queue.claim(2, MINE))
    trials = optuna.load_study(study_name="late", storage=open_storage(pg_url)).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    for rerun in (t for t in trials if RERUN_ATTR in t.user_attrs):
        original = trials[rerun.user_attrs[RERUN_ATTR]]
        assert rerun.params == original.params
        assert rerun.user_attrs["seed"] != original.user_attrs["seed"]


@pytest.mark.parametrize("where", ["postgresql", "journal"])
def test_a_seed_rerun_of_a_slot_beyond_the_budget_still_runs(where, pg_url, tmp_path,
                                                             empty_study):
    """`hpo run --trials 8`, then `hpo seeds`, then `hpo run` with the file's budget of 4: the
    re-run of slot 6 is an extra evaluation, not a slot of the budget, so it must run, and
    workers must not call the study finished while it waits."""
    from hpo.analysis.results import RERUN_ATTR
    from hpo.store.budget import finished

    url = pg_url if where == "postgresql" else str(tmp_path / "j.log")
    study = empty_study(url)
    for slot in range(8):
        waiting(study, state=TrialState.COMPLETE, value=1.0, user_attrs={"slot": slot})
    waiting(study, user_attrs={"slot": 7})  # a design slot beyond the budget of 4: left alone
    waiting(study, user_attrs={"slot": 6, RERUN_ATTR: 6, "seed": 99})

    assert not finished(study, 4)
    claimed = take(study, 4, MINE)
    assert claimed.user_attrs[RERUN_ATTR] == 6 and claimed.user_attrs["seed"] == 99
    assert take(study, 4, MINE) is None
    study.tell(claimed.number, 0.5)
    assert finished(study, 4)


def test_finished_trials_are_read_incrementally_also_when_they_finish_out_of_order(pg_url,
                                                                                   empty_study):
    """TPE's reads in the exploit phase: only finished trials, and each one once."""
    study = empty_study(pg_url)
    for slot in range(3):
        waiting(study, user_attrs={"slot": slot})
    first, second, third = (take(study, 3, MINE) for _ in range(3))
    backend, known = study._storage._backend, {}
    finish(study, third, 3.0)
    seen = backend.tpe_trials(study._study_id, known, running=True)
    assert sorted(known) == [third._trial_id]
    assert {t.number: t.state for t in seen} == {
        first.number: TrialState.RUNNING, second.number: TrialState.RUNNING,
        third.number: TrialState.COMPLETE}
    finish(study, first, 1.0)  # a lower id, finished later
    study._storage.set_trial_state_values(second._trial_id, TrialState.PRUNED)
    seen = backend.tpe_trials(study._study_id, known, running=False)
    assert {t.number: t.state for t in seen} == {
        first.number: TrialState.COMPLETE, second.number: TrialState.PRUNED,
        third.number: TrialState.COMPLETE}
    assert sorted(known) == sorted(t._trial_id for t in seen)
    assert known[first._trial_id].value == 1.0


def test_exploit_trials_get_their_whole_point_at_the_claim(pg_url, study_file):
    """In the exploit phase a slot's point depends on the results so far: it is chosen when
    the trial is claimed (TPE within the scientific value, after 10 finished trials of it)
    and written at once, so the objective reads the parameters it was given."""
    from hpo.worker import run_worker

    definition = load_study_file(study_file(name="ex", per_value=14, phase="exploit"))
    assert run_worker(definition, pg_url, budget=28) == 28
    trials = optuna.load_study(study_name="ex", storage=open_storage(pg_url)).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 28
    sampler = open_in_storage(definition, pg_url, budget=28).sampler
    for t in trials:
        slot = t.user_attrs["slot"]
        assert t.params["optimizer"] == sampler.scientific_value(slot)["optimizer"]
        extra = "momentum" if t.params["optimizer"] == "sgd" else "beta1"
        assert set(t.params) == {"optimizer", "learning_rate", extra}
        if slot < 20:  # fewer than 10 finished per value: still the explore design
            assert t.params == sampler.explore_params(slot)
    # Past the start-up trials, TPE proposes points the explore design would not.
    assert any(t.params != sampler.explore_params(t.user_attrs["slot"]) for t in trials[20:])
