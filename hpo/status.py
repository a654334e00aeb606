"""``hpo status``: what is running where, what is stale, and how far the budget has come.

Read-only: it never creates, lays out or changes anything in storage. It reads counts, not
trials (:meth:`hpo.store.queue.TrialQueue.counts`: aggregate queries on PostgreSQL), and the
running trials, so it takes about as long on a study of 100,000 trials as on one of 100.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from hpo import attrs, failures
from hpo.store.budget import until_decided
from hpo.store.leases import dead_trials
from hpo.store.queue import queue_for
from hpo.tables import COUNT_COLUMNS, count_cells, kinds_line, render_table

if TYPE_CHECKING:
    import optuna

    from hpo.counts import StudyCounts
    from hpo.study import Study


def status_text(definition: Study, study: optuna.Study, budget: int | None = None,
                now: dt.datetime | None = None) -> str:
    queue = queue_for(study)
    now = now or dt.datetime.now()
    # The budget as given, else as laid out, else the design's. Done: design slots whose
    # final attempt finished; seed re-runs and retried attempts are not the budget's, so a
    # re-run still waiting does not make a finished slot look undone. A study run
    # --until-decided has gaps in its slot numbers: every slot laid out counts.
    decided = until_decided(study) is not None
    counts = queue.counts(definition, 2**31 - 1 if decided else budget)
    done, budget = counts.done, (counts.planned if decided else counts.budget)
    lines = [f"study {definition.name!r} ({definition.phase}): {definition.goal}",
             f"budget: {done} of {budget} trials done ({100 * done / budget:.0f}%), "
             f"{_eta(counts, now)}", ""]

    names = list(definition.space.scientific)
    rows = [["scientific value", *COUNT_COLUMNS]] + [[v.label, *count_cells(v)]
                                                     for v in counts.values]
    lines += [render_table(rows), ""]
    kinds = kinds_line(counts.failed)
    if kinds:
        lines += [kinds, *_failure_lines(counts), ""]

    running = sorted(queue.running(), key=lambda t: t.number)
    ages = queue.heartbeat_ages([queue.trial_id(t) for t in running])
    # A trial with no owner is named below as not hpo's, not as a dead worker's.
    stale = {t.number for t in dead_trials(queue) if attrs.WORKER_PID in t.user_attrs}
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
    foreign = [t for t in running if attrs.WORKER_PID not in t.user_attrs]
    if foreign:
        lines.append(f"not hpo's: {len(foreign)} running trial(s) taken by a client that is "
                     "not an hpo worker (#" + ", #".join(str(t.number) for t in foreign)
                     + "): no owner, no heartbeat; reaped after the grace period and their "
                     "slots retried")
    return "\n".join(lines)


def _failure_lines(counts: StudyCounts) -> list[str]:
    """Each distinct failure message (error, timeout, infrastructure) with its trials."""
    by_message = sorted(counts.failed_by(failures.RETRYABLE), key=lambda f: -f.count)
    lines = [f"  {f.kind} x{f.count} (#{', #'.join(map(str, f.first))}"
             f"{', ...' if f.count > len(f.first) else ''}): {f.message[:200]}"
             for f in by_message]
    if lines:
        lines.append("  fix the cause, then hpo retry <study file> queues these slots again")
    return lines


def _eta(counts: StudyCounts, now: dt.datetime) -> str:
    done, budget = counts.done, counts.budget
    if done >= budget:
        return "finished"
    if counts.first_start is None or not counts.any_finished or done == 0:
        return "ETA unknown until a trial finishes"
    elapsed = (now - counts.first_start).total_seconds()
    return f"ETA {_duration(elapsed / done * (budget - done))} at the rate so far"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
