"""``hpo run --until-decided``: run the design in rounds until the verdict is decided.

A fixed budget spends the same number of trials on every scientific value, whether the
question was settled after a quarter of them or is still open at the end. Run until decided,
a study goes in rounds, and after each round it looks at its own verdict
(:mod:`hpo.analysis.verdict`):

1. **round 0**: ``FIRST`` trials of every scientific value (the design's first slots);
2. **seed re-runs** of each contender's best trial (``REPEATS`` new seeds), scheduled by the
   controller itself, then **a look**: the verdict, with its error rate corrected for the
   looks this run may take;
3. a winner: stop. Otherwise **more trials only for the values still in contention** (not
   already beaten by the leader) **whose tuning has not converged** (their search
   uncertainty is not yet small next to the noise margin): each chosen value is brought to
   ``FIRST * 2 ** round`` trials. A value's added trials are its next slots, ``k * V + v``
   for k onwards, so its k-th trial keeps its k-th quasi-random point and its seed, and the
   values that get trials in the same round stay paired;
4. **more re-runs instead** (``REPEATS`` doubled, up to ``MAX_REPEATS``) when the noise
   margin's statistical part is the bigger obstacle: it shrinks by ``1 - 1/sqrt(2)`` per
   doubling of the re-runs, as a challenger's search uncertainty shrinks by about half per
   doubling of its trials, so the larger of the two is the one to pull. Re-runs stop being
   worth it once the gap cannot be a real difference (the top of its confidence interval
   below one run-to-run std, the smallest difference the playbook counts): then the values
   are as good as each other, and the run stops. With the re-runs at their most and the gap
   still open, the contenders get more trials;
5. stop when the verdict is decided, when ``max_trials`` design trials are spent, or when
   neither more trials nor more re-runs can settle it; say which.

**Error rates with repeated looks.** Looking at the verdict after every round and stopping at
the first winner would inflate the false-winner rate (every look is another chance for the
noise to produce a lead). The number of looks a run may take is fixed before its first round
from ``max_trials`` (:func:`planned_looks`: every round, at the least, doubles one value's
trials, and re-runs can double twice), and every look's seed-noise margin is taken at
``alpha / (values x looks)`` (Bonferroni). By the union bound, the chance that *any* look
names a winner by seed noise alone, under the null, stays at most ``alpha`` (5%), however the
looks depend on each other. The search uncertainty (how much better an under-tuned value
could get) is an estimate, not a bound with a stated probability; ``bench/decisions.py``
measures how often the whole procedure names a wrong or false winner.

The state (``max_trials``, the planned looks, the looks taken, the round, the re-runs per
trial, the contenders, why it stopped) is kept on the study (attribute ``until_decided``),
so a run stopped halfway continues where it was, and ``hpo report`` applies the same
correction. Workers joining from other machines (plain ``hpo workers STUDY_FILE``) take the
rounds' trials as they come and stop when the controller stops.
"""

from __future__ import annotations

import math
import sys
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from hpo import attrs
from hpo.analysis.results import collect, group_label
from hpo.analysis.seeds import NothingToRerun, Rerun, plan_seed_reruns
from hpo.analysis.verdict import Verdict, verdict
from hpo.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import optuna

    from hpo.analysis.verdict import Comparison
    from hpo.fleet import Seat
    from hpo.study import Study

FIRST = 8  # trials per value in round 0: the fewest a search uncertainty is estimated from
REPEATS = 5  # seed re-runs of each contender's best trial
MAX_REPEATS = 20  # re-runs double (5, 10, 20) while only the noise is in the way
CONVERGED = 0.5  # a value is tuned enough when its search uncertainty is under this x margin


class UntilDecidedError(InputError):
    """A study or an option that cannot be run --until-decided as asked (exit 2)."""


@dataclass
class State:
    """What a run --until-decided has done so far; kept on the study."""

    max_trials: int
    looks: int  # planned before the first round: the Bonferroni divisor
    looked: int = 0
    round: int = 0
    repeats: int = REPEATS
    contenders: list[str] | None = None  # group labels; None: every value
    stopped: str | None = None  # why it stopped; None while it runs
    winner: str | None = None

    @classmethod
    def from_attr(cls, stored: dict) -> State:
        return cls(**{k: v for k, v in stored.items() if k in cls.__dataclass_fields__})

    def to_attr(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Action:
    """What the controller does next, at a moment when nothing is running."""

    kind: Literal["trials", "reruns", "stop"]
    state: State
    message: str
    slots: tuple[int, ...] = ()  # design slots to lay out
    reruns: tuple[Rerun, ...] = ()  # seed re-runs to enqueue
    verdict: Verdict | None = None
    added: dict[str, int] = field(default_factory=dict)  # group label -> trials added


def planned_looks(max_trials: int, values: int) -> int:
    """The most looks a run with this cap can take: round 0, then rounds that each add at
    least ``FIRST * 2 ** (round - 1)`` trials (one value doubled) while trials are left, then
    the re-run doublings."""
    spent = min(max_trials, FIRST * values)
    looks, r = 1, 1
    while spent < max_trials:
        spent += FIRST * 2 ** (r - 1)
        looks, r = looks + 1, r + 1
    return looks + round(math.log2(MAX_REPEATS / REPEATS))


def start_state(definition: Study, study: optuna.Study, max_trials: int | None) -> State:
    """The run's state: the one kept on the study (continuing it), else a new one."""
    values = len(definition.space.scientific_values())
    stored = study.user_attrs.get(attrs.STUDY_UNTIL_DECIDED)
    if isinstance(stored, dict):
        state = State.from_attr(stored)
        if max_trials is not None and max_trials != state.max_trials:
            raise UntilDecidedError(
                f"study {definition.name!r} was started --until-decided with --max-trials "
                f"{state.max_trials}, not {max_trials}; continue it with the same cap (another "
                "would change its planned looks and so its error rate), or bump the study's "
                "name for a new run")
        return state
    cap = definition.budget if max_trials is None else max_trials
    if cap < FIRST * values:
        raise UntilDecidedError(
            f"--max-trials {cap}: too few for {values} scientific values; give at least "
            f"{FIRST * values} ({FIRST} per value) so the first round can tell anything")
    return State(max_trials=cap, looks=planned_looks(cap, values))


def next_action(definition: Study, study: optuna.Study, state: State, *,
                study_file: str = "<study file>") -> Action:
    """The next step of a run --until-decided; call only when no trial is waiting or running.

    Pure: it reads the study and returns what to do (the caller lays out the slots, enqueues
    the re-runs and stores ``action.state``), so ``bench/decisions.py`` runs the same rules.
    """
    results = collect(definition, study)
    values = definition.space.scientific_values()
    labels = [group_label(definition, dict(v)) for v in values]
    counts = [len(t.slots) for t in results.tallies]  # design slots laid out, per value
    spent = sum(counts)
    remaining = state.max_trials - spent

    if min(counts) < FIRST and remaining > 0:  # round 0 (or its continuation)
        slots = _bring_to(counts, [True] * len(values), FIRST, remaining)
        return Action("trials", state, f"round 0: {FIRST} trials per scientific value",
                      slots=slots, added=_added(slots, labels))

    contenders = state.contenders or sorted(set(labels))
    reruns = _reruns(definition, study, contenders, state.repeats)
    if reruns:
        return Action("reruns", state, f"seed re-runs of the best trial of "
                      f"{', '.join(sorted({r.group for r in reruns}))} ({state.repeats} each)",
                      reruns=reruns)

    v = verdict(results, study_file=study_file, looks=state.looks)
    state = replace(state, looked=state.looked + 1, contenders=v.contenders)
    look = f"look {state.looked} of at most {state.looks}"
    if v.winner is not None:
        return _stop(state, v, f"decided: {v.winner} wins ({look})", winner=v.winner)

    by_label = {e.group: e for e in v.estimates}
    comparisons = {c.other: c for c in v.comparisons}
    need = [g for g in v.contenders if _needs_trials(g, v, by_label, comparisons)]
    open_ = [c for c in v.comparisons if c.other in v.contenders and not c.futile]
    bound = [c for c in v.comparisons if c.other in v.contenders and c.noise_bound]
    hopeful = [c for c in bound if not c.futile]
    # Two levers close a gap that is not yet a win: re-runs shrink the statistical part of
    # the noise margin (by 1 - 1/sqrt(2) per doubling), trials shrink the challenger's search
    # uncertainty (by about half per doubling). Pull the one that is bigger.
    statistical = [c for c in open_ if c.margin is not None
                   and c.margin - c.minimum > (c.search if c.other in need else 0.0)]
    if remaining > 0 and statistical and state.repeats < MAX_REPEATS:
        state = replace(state, repeats=min(MAX_REPEATS, 2 * state.repeats))
        reruns = _reruns(definition, study, v.contenders, state.repeats)
        if reruns:
            return Action("reruns", state, (
                f"{look}: no winner yet, the noise margin is the bigger obstacle: "
                f"{state.repeats} seed re-runs of each contender's best trial"),
                reruns=reruns, verdict=v)
    if need and remaining > 0:
        target = FIRST * 2 ** (state.round + 1)
        chosen = [label in need for label in labels]
        slots = _bring_to(counts, chosen, target, remaining)
        state = replace(state, round=state.round + 1)
        added = _added(slots, labels)
        return Action("trials", state, (
            f"{look}: no winner yet; round {state.round}: "
            + ", ".join(f"{n} more trials of {g}" for g, n in added.items())
            + f" ({spent + len(slots)} of {state.max_trials} design trials)"),
            slots=slots, verdict=v, added=added)
    if remaining > 0 and hopeful:
        # Tuned, the re-runs at their most, and the gap could still be real: tuning further
        # (the values in it, doubled) is what is left to try.
        chosen = [label in {v.leader, *(c.other for c in hopeful)} for label in labels]
        slots, r = (), state.round
        while not slots and FIRST * 2 ** r < state.max_trials:
            r += 1
            slots = _bring_to(counts, chosen, FIRST * 2 ** r, remaining)
        if slots:
            state = replace(state, round=r)
            added = _added(slots, labels)
            return Action("trials", state, (
                f"{look}: no winner yet, within the noise with {state.repeats} re-runs each; "
                f"round {r}, tuning further: "
                + ", ".join(f"{n} more trials of {g}" for g, n in added.items())
                + f" ({spent + len(slots)} of {state.max_trials} design trials)"),
                slots=slots, verdict=v, added=added)
    if remaining <= 0:
        why = (f"no winner: the {state.max_trials} design trials are spent ({look})"
               + (f"; not tuned enough yet: {', '.join(need)}" if need else
                  "; the contenders are within the noise"))
    elif bound and not hopeful:
        why = (f"no winner: every contender is tuned, and even the top of each gap's "
               "confidence interval is below one run-to-run std, the smallest real difference "
               f"(the playbook: not an improvement) ({look})")
    else:
        why = f"no winner: nothing this run can add would settle it ({look})"
    return _stop(state, v, why)


def _needs_trials(group: str, v: Verdict, by_label: dict, comparisons: dict[str, Comparison],
                  ) -> bool:
    """Would more trials of this contender help settle the verdict?"""
    e = by_label[group]
    if e.value is None or math.isinf(e.uncertainty):
        return True  # no result yet, or too few trials to tell
    if group == v.leader:
        # The leader's own uncertainty never blocks its win, but an under-tuned leader may be
        # better than it looks: tune it while it is not small next to the closest margin.
        margins = [c.margin for c in v.comparisons if c.other in v.contenders
                   and c.margin is not None]
        return bool(margins) and e.uncertainty > CONVERGED * min(margins)
    c = comparisons[group]
    if c.margin is None:
        return True
    if c.noise_bound:
        return e.uncertainty > CONVERGED * c.margin
    return True  # not beaten and outside the noise margin: its search uncertainty blocks


def _bring_to(counts: list[int], chosen: list[bool], target: int,
              remaining: int) -> tuple[int, ...]:
    """The slots that bring each chosen value to ``target`` trials (its next slots, k * V + v),
    the lowest counts first when fewer than all of them are left."""
    values = len(counts)
    counts = list(counts)
    slots: list[int] = []
    while len(slots) < remaining:
        open_ = [v for v in range(values) if chosen[v] and counts[v] < target]
        if not open_:
            break
        v = min(open_, key=lambda i: (counts[i], i))
        slots.append(counts[v] * values + v)
        counts[v] += 1
    return tuple(sorted(slots))


def _added(slots: tuple[int, ...], labels: list[str]) -> dict[str, int]:
    added: dict[str, int] = {}
    for slot in slots:
        label = labels[slot % len(labels)]
        added[label] = added.get(label, 0) + 1
    return added


def _reruns(definition: Study, study: optuna.Study, contenders: list[str],
            repeats: int) -> tuple[Rerun, ...]:
    try:
        planned = plan_seed_reruns(definition, study, top=1, repeats=repeats)
    except NothingToRerun:
        return ()
    return tuple(r for r in planned if r.group in contenders)


def _stop(state: State, v: Verdict, why: str, winner: str | None = None) -> Action:
    return Action("stop", replace(state, stopped=why, winner=winner), why, verdict=v)


# --- running it: the controller next to a fleet of workers ------------------------------------


def pending(study: optuna.Study) -> bool:
    """A design slot or a seed re-run waiting or running: not the moment to look."""
    from optuna.trial import TrialState

    return any(attrs.SLOT in t.user_attrs or attrs.SEED_RERUN_OF in t.user_attrs
               for t in study.get_trials(deepcopy=False,
                                         states=(TrialState.WAITING, TrialState.RUNNING)))


def apply(action: Action, definition: Study, study: optuna.Study, url: str) -> None:
    """Lay out the action's slots, enqueue its re-runs, and store its state."""
    from hpo.analysis.seeds import enqueue
    from hpo.store import exclusive, kind
    from hpo.store.queue import queue_for

    if action.slots:
        queue = queue_for(study)
        if kind(url) == "postgresql":  # the database guards the layout
            queue.lay_out(0, action.slots)
        else:
            with exclusive(url, definition.name):
                queue.lay_out(0, action.slots)
    if action.reruns:
        enqueue(study, list(action.reruns))
    study.set_user_attr(attrs.STUDY_UNTIL_DECIDED, action.state.to_attr())


class Controller(threading.Thread):
    """Looks at the study whenever nothing is running, and acts (see the module docstring).

    Runs beside the fleet's supervisor, which keeps the main thread for its signals.
    """

    def __init__(self, definition: Study, study: optuna.Study, url: str, state: State, *,
                 study_file: str, poll_seconds: float = 1.0):
        super().__init__(name="hpo-until-decided", daemon=True)
        self.definition, self.study, self.url = definition, study, url
        self.state, self.study_file, self.poll = state, study_file, poll_seconds
        self.last: Action | None = None
        self.error: BaseException | None = None
        self.halt = threading.Event()

    def run(self) -> None:
        try:
            while not self.halt.is_set() and self.state.stopped is None:
                if not pending(self.study):
                    action = next_action(self.definition, self.study, self.state,
                                         study_file=self.study_file)
                    apply(action, self.definition, self.study, self.url)
                    self.state, self.last = action.state, action
                    print(f"hpo: {action.message}", file=sys.stderr, flush=True)
                    continue
                self.halt.wait(self.poll)
        except BaseException as e:  # noqa: BLE001 - the workers must not wait for us forever
            self.error = e
            failed = replace(self.state, stopped=f"the controller failed: {e}")
            self.study.set_user_attr(attrs.STUDY_UNTIL_DECIDED, failed.to_attr())


def run_until_decided(definition: Study, url: str, study_file: str, members: list[Seat],
                      max_trials: int | None, options: Sequence[str] = ()) -> int:
    """``hpo run/workers STUDY_FILE --until-decided``; returns the exit status. ``options``:
    the workers' own (``--max-errors``, ``--trial-timeout``)."""
    from hpo.analysis.summary import summary_table
    from hpo.fleet import Fleet, FleetStopped
    from hpo.store import open_study, redact
    from hpo.store.budget import SLOT_BOUND

    study, _ = open_study(definition, url, budget=0)  # the controller lays out every round
    state = start_state(definition, study, max_trials)
    study.set_user_attr(attrs.STUDY_UNTIL_DECIDED, state.to_attr())
    print(f"hpo: study {definition.name!r} in {redact(url)}: until decided, at most "
          f"{state.max_trials} design trials and {state.looks} looks (each at alpha / "
          f"(values x {state.looks})), {len(members)} worker(s) "
          f"({', '.join(m.label for m in members)}), phase {definition.phase}",
          file=sys.stderr)
    controller = Controller(definition, study, url, state, study_file=study_file)
    if state.stopped is None:
        controller.start()
        fleet = Fleet(Path(study_file), url, SLOT_BOUND, members, options=options,
                      definition=definition)
        try:
            done = fleet.run(study)
        except FleetStopped as stopped:
            controller.halt.set()
            controller.join(timeout=30)
            print(f"hpo: stopped by {stopped}: running trials handed back; run the same "
                  "command again to continue", file=sys.stderr)
            return 130
        controller.halt.set()
        controller.join(timeout=30)
        if controller.error is not None:
            raise controller.error
        if fleet.failing:
            print("hpo: error: the study is failing (its first trials all failed with an "
                  "error); see the errors above, fix them, then run the same command again",
                  file=sys.stderr)
            return 1
        if not done or controller.state.stopped is None:
            print("hpo: error: the workers gave up before the verdict was decided (see their "
                  "errors above); run the same command again to continue", file=sys.stderr)
            return 1
    final = controller.state
    print(summary_table(definition, study))
    last = controller.last
    if last is None or last.verdict is None:  # stopped earlier: the verdict as it stands
        results = collect(definition, study)
        text = verdict(results, study_file=study_file, looks=final.looks).text
    else:
        text = last.verdict.text
    print()
    print(text)
    print(f"\nhpo: stopped: {final.stopped}", file=sys.stderr)
    return 0
