"""hpo.tally on hand-built trials: slots, final attempts, retries, seed re-runs, the best."""

from __future__ import annotations

import math

from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from hpo import Study, choice, log_uniform, nuisance, scientific
from hpo.tables import COUNT_COLUMNS, count_cells, render_table
from hpo.tally import Counts, slots_done, tally


def _definition(direction="minimize"):
    return Study(name="tally-v1", goal="Which optimizer?", metric="loss", direction=direction,
                 space={"optimizer": scientific(choice("sgd", "adam")),
                        "learning_rate": nuisance(log_uniform(1e-4, 1.0))},
                 objective=lambda config, ctx: 0.0, trials_per_value=2)


def _trial(number, slot=None, state=TrialState.COMPLETE, value=None, *, rerun_of=None,
           retry_of=None, params=True):
    """A trial as a worker leaves it; slot None: no slot attribute (its number is its slot)."""
    user_attrs = {} if slot is None else {"slot": slot}
    if rerun_of is not None:
        user_attrs["seed_rerun_of"] = rerun_of
    system_attrs = {}
    if retry_of is not None:  # as hpo.liveness._queue_retry writes them
        system_attrs = {"failed_trial": retry_of[0], "retry_history": list(retry_of)}
    s = number if slot is None else slot
    optimizer = ("sgd", "adam")[s % 2]
    trial = create_trial(
        state=state, value=(0.5 if value is None else value) if state == TrialState.COMPLETE
        else None,
        params={"optimizer": optimizer, "learning_rate": 0.01} if params else {},
        distributions={"optimizer": CategoricalDistribution(["sgd", "adam"]),
                       "learning_rate": FloatDistribution(1e-4, 1.0, log=True)} if params else {},
        user_attrs=user_attrs, system_attrs=system_attrs)
    trial.number = number  # create_trial leaves it 0; storage assigns it
    return trial


def test_trials_group_by_the_value_their_slot_gives_even_before_they_have_params():
    trials = [_trial(0, 0, value=0.3), _trial(1, 1, TrialState.RUNNING),
              _trial(2, 2, TrialState.WAITING, params=False),
              _trial(3, 3, TrialState.WAITING, params=False)]
    sgd, adam = tally(_definition(), trials)
    assert (sgd.label, adam.label) == ("optimizer=sgd", "optimizer=adam")
    assert [s.slot for s in sgd.slots] == [0, 2] and [s.slot for s in adam.slots] == [1, 3]
    assert sgd.counts == Counts(complete=1, waiting=1)
    assert adam.counts == Counts(running=1, waiting=1)
    assert sgd.best.number == 0 and adam.best is None
    assert slots_done((sgd, adam)) == 1


def test_a_retried_attempt_is_counted_as_retried_not_as_a_failed_design_trial():
    trials = [_trial(0, 0, TrialState.FAIL),  # its worker died: the reaper failed it...
              _trial(1, 1, value=0.4),
              _trial(2, 0, TrialState.FAIL, retry_of=[0]),  # ...and the retry died too
              _trial(3, 0, value=0.2, retry_of=[0, 2])]  # the third attempt finished
    sgd, adam = tally(_definition(), trials)
    assert len(sgd.slots) == 1
    slot = sgd.slots[0]
    assert slot.final.number == 3 and [t.number for t in slot.earlier] == [0, 2]
    assert sgd.counts == Counts(complete=1) and sgd.retried == 2
    assert [t.number for t in sgd.design] == [3]
    assert adam.retried == 0 and slots_done((sgd, adam)) == 2


def test_a_retry_still_waiting_leaves_its_slot_undone():
    trials = [_trial(0, 0, TrialState.FAIL), _trial(1, 0, TrialState.WAITING, retry_of=[0])]
    sgd, _ = tally(_definition(), trials)
    assert sgd.counts == Counts(waiting=1) and sgd.retried == 1
    assert slots_done(tally(_definition(), trials)) == 0


def test_seed_reruns_are_counted_apart_and_never_make_a_finished_slot_undone_or_win():
    trials = [_trial(0, 0, value=0.3), _trial(1, 1, value=0.4), _trial(2, 2, value=0.5),
              _trial(3, 3, value=0.6),
              _trial(4, 0, value=0.01, rerun_of=0),  # a lucky seed
              _trial(5, 0, TrialState.WAITING, rerun_of=0),
              _trial(6, 1, TrialState.FAIL, rerun_of=1),  # a re-run whose worker died,
              _trial(7, 1, TrialState.RUNNING, rerun_of=1, retry_of=[6])]  # retried
    sgd, adam = tally(_definition(), trials)
    assert [s.final.number for s in sgd.slots] == [0, 2]  # the re-runs are not final attempts
    assert sgd.counts == Counts(complete=2) and slots_done((sgd, adam)) == 4
    assert [t.number for t in sgd.reruns] == [4, 5]
    assert sgd.rerun_counts == Counts(complete=1, waiting=1)
    assert sgd.best.number == 0  # not the lucky re-run
    assert [t.number for t in adam.reruns] == [7] and adam.retried == 1
    assert adam.rerun_counts == Counts(running=1)


def test_the_best_follows_the_direction_skips_non_finite_values_and_breaks_ties_by_number():
    trials = [_trial(0, 0, value=0.3), _trial(2, 2, value=0.7), _trial(4, 4, value=0.7),
              _trial(6, 6, value=math.inf), _trial(8, 8, TrialState.PRUNED)]
    sgd, _ = tally(_definition(), trials)
    assert sgd.best.number == 0
    sgd, _ = tally(_definition("maximize"), [t for t in trials if t.number != 6])
    assert sgd.best.number == 2
    assert sgd.counts == Counts(complete=3, pruned=1)


def test_a_trial_without_a_slot_is_not_the_designs():
    """Enqueued by hand or by another client (hpo lays out every slot with its attribute):
    never counted as a design slot, whatever its number."""
    sgd, adam = tally(_definition(), [_trial(0, 0), _trial(1), _trial(2)])
    assert [s.slot for s in sgd.slots] == [0] and adam.slots == ()


def test_slots_laid_out_beyond_the_budget_are_not_counted_as_its_progress():
    values = tally(_definition(), [_trial(n, n) for n in range(6)])
    assert slots_done(values) == 6 and slots_done(values, budget=4) == 4


def test_one_table_renderer_plain_and_markdown():
    values = tally(_definition(), [_trial(0, 0), _trial(1, 1, TrialState.FAIL),
                                   _trial(2, 1, TrialState.RUNNING, retry_of=[1]),
                                   _trial(3, 0, TrialState.WAITING, rerun_of=0)])
    rows = [["scientific value", *COUNT_COLUMNS]] + [[v.label, *count_cells(v)] for v in values]
    assert render_table(rows).splitlines() == [
        "scientific value  finished  complete  pruned  infeasible  failed  running  waiting  "
        "retried  seed re-runs",
        "----------------  --------  --------  ------  ----------  ------  -------  -------  "
        "-------  ------------",
        "optimizer=sgd     1         1         0       0           0       0        0        "
        "0        0/1",
        "optimizer=adam    0         0         0       0           0       1        0        "
        "1        0/0",
    ]
    markdown = render_table([["a", "bb"], ["ccc", "d"]], markdown=True)
    assert markdown.splitlines() == ["| a   | bb |", "| --- | -- |", "| ccc | d  |"]
