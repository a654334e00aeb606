"""``hpo status``: what is running where, what is stale, and how far the budget has come.

Read-only: it never creates, lays out or changes anything in storage.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from optuna.trial import TrialState

from hpo import failures
from hpo.store.budget import planned_budget
from hpo.store.leases import dead_trials
from hpo.store.queue import queue_for
from hpo.tables import COUNT_COLUMNS, count_cells, kinds_line, render_table
from hpo.tally import failed_slots, slots_done, tally

if TYPE_CHECKING:
    import optuna

    from hpo.study import Study
    from hpo.tally import ValueTally


def status_text(definition: Study, study: optuna.Study, budget: int | None = None,
                now: dt.datetime | None = None) -> str:
    trials = study.get_trials(deepcopy=False)
    budget = budget or planned_budget(study) or definition.budget
    now = now or dt.datetime.now()
    values = tally(definition, trials)
    # Design slots whose final attempt finished: seed re-runs and retried attempts are not
    # the budget's, so a re-run still waiting does not make a finished slot look undone.
    done = slots_done(values, budget)
    lines = [f"study {definition.name!r} ({definition.phase}): {definition.goal}",
             f"budget: {done} of {budget} trials done ({100 * done / budget:.0f}%), "
             f"{_eta(trials, done, budget, now)}", ""]

    names = list(definition.space.scientific)
    rows = [["scientific value", *COUNT_COLUMNS]] + [[v.label, *count_cells(v)] for v in values]
    lines += [render_table(rows), ""]
    kinds = kinds_line(values)
    if kinds:
        lines += [kinds, *_failure_lines(values), ""]

    running = [t for t in trials if t.state == TrialState.RUNNING]
    queue = queue_for(study)
    ages = queue.heartbeat_ages([queue.trial_id(t) for t in running])
    stale = {t.number for t in dead_trials(queue)}
    if running:
        rows = [["trial", "scientific value", "host", "gpu", "pid", "running for", "heartbeat"]]
        for t in running:
            started = t.datetime_start or now
            beat = ages.get(queue.trial_id(t))
            rows.append([
                f"#{t.number}", ", ".join(f"{n}={t.params.get(n, '?')}" for n in names) or "-",
                str(t.user_attrs.get("host", "?")), str(t.user_attrs.get("gpu", "?")),
                str(t.user_attrs.get("worker_pid", "?")),
                _duration((now - started).total_seconds()),
                (f"{beat:.0f}s ago" if beat is not None else "n/a") +
                (" STALE" if t.number in stale else ""),
            ])
        lines += ["running:", render_table(rows)]
    else:
        lines.append("running: none")
    if stale:
        lines.append(f"stale: {len(stale)} trial(s) whose worker is gone (#"
                     + ", #".join(map(str, sorted(stale)))
                     + "); any worker of this study fails and retries them")
    return "\n".join(lines)


def _failure_lines(values: tuple[ValueTally, ...]) -> list[str]:
    """Each distinct failure message (error, timeout, infrastructure) with its trials."""
    by_message: dict[tuple[str, str], list[int]] = {}
    for slot in failed_slots(values):
        key = (str(failures.kind_of(slot.final)), failures.message_of(slot.final))
        by_message.setdefault(key, []).append(slot.final.number)
    lines = [f"  {kind} x{len(numbers)} (#{', #'.join(map(str, sorted(numbers)[:8]))}"
             f"{', ...' if len(numbers) > 8 else ''}): {message[:200]}"
             for (kind, message), numbers in sorted(by_message.items(),
                                                    key=lambda kv: -len(kv[1]))]
    if lines:
        lines.append("  fix the cause, then hpo retry <study file> queues these slots again")
    return lines


def _eta(trials: list, done: int, budget: int, now: dt.datetime) -> str:
    if done >= budget:
        return "finished"
    starts = [t.datetime_start for t in trials if t.datetime_start]
    finished = [t for t in trials if t.state.is_finished() and t.datetime_complete]
    if not starts or not finished or done == 0:
        return "ETA unknown until a trial finishes"
    elapsed = (now - min(starts)).total_seconds()
    return f"ETA {_duration(elapsed / done * (budget - done))} at the rate so far"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
