"""Managing the studies in a storage: list them, queue failed slots again, delete one.

``hpo studies``, ``hpo retry`` and ``hpo delete``. Every count here is by design slot, from
the same grouping as ``hpo status`` and ``hpo report`` (:mod:`hpo.tally`): a slot's final
attempt decides it, earlier attempts are kept and shown as retried.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hpo import attrs, failures
from hpo.errors import InputError
from hpo.store import StorageError, exclusive, load_stored_study, open_storage, redact
from hpo.store import kind as storage_kind

if TYPE_CHECKING:
    from hpo.study import Study


class NothingToDo(InputError):
    """The command has nothing to act on (exit 2): one line that says why."""


def _guarded(url: str, name: str) -> contextlib.AbstractContextManager[None]:
    """The study's lock on a file storage; on PostgreSQL the database guards a slot's next
    attempt itself (one attempt n+1 per attempt n), and there is no lock to take."""
    return contextlib.nullcontext() if storage_kind(url) == "postgresql" else exclusive(url, name)


# --- hpo retry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Retried:
    """A failed attempt queued again: its trial number, slot and kind."""

    number: int
    slot: int
    kind: str
    rerun: bool


def retry_failed(definition: Study, url: str, kinds: set[str]) -> list[Retried]:
    """Queue every failed slot of these kinds (and failed seed re-runs) again as a new
    attempt: a WAITING copy with the same parameters, slot and seed, as the reaper queues a
    dead worker's trial (:meth:`hpo.store.queue.TrialQueue.add_retry`). The failed attempt
    stays, as an earlier attempt of its slot.

    Raises NothingToDo when there is none. Under the study's lock, so two ``hpo retry`` at
    once cannot queue a slot twice (a slot whose latest attempt is no longer FAIL is skipped).
    """
    from hpo.store.queue import queue_for
    from hpo.tally import tally

    unknown = kinds - set(failures.RETRYABLE)
    if unknown:
        raise InputError(f"--kind {', '.join(sorted(unknown))}: cannot be retried; allowed: "
                         f"{', '.join(failures.RETRYABLE)}, all (infeasible trials are results)")
    study = load_stored_study(definition, url)
    with _guarded(url, definition.name):
        values = tally(definition, queue_for(study).all_trials())
        todo = [(s.final, False) for v in values for s in v.slots
                if failures.kind_of(s.final) in kinds]
        todo += [(t, True) for v in values for t in v.reruns if failures.kind_of(t) in kinds]
        todo.sort(key=lambda pair: pair[0].number)
        if not todo:
            raise NothingToDo(_nothing_to_retry(definition, values, kinds))
        queue = queue_for(study)
        # False: another hpo retry (or a reaper) queued that attempt's retry first.
        todo = [(t, rerun) for t, rerun in todo if queue.add_retry(t)]
    return [Retried(t.number, int(t.user_attrs.get(attrs.SLOT, t.number)),
                    str(failures.kind_of(t)), rerun) for t, rerun in todo]


def _nothing_to_retry(definition: Study, values: tuple, kinds: set[str]) -> str:
    counts = Counter(str(failures.kind_of(s.final)) for v in values for s in v.slots
                     if failures.kind_of(s.final))
    infeasible = sum(counts[k] for k in failures.INFEASIBLE)
    other = {k: n for k, n in counts.items() if k in failures.RETRYABLE and k not in kinds}
    parts = [f"no slot of study {definition.name!r} ended with "
             f"{' or '.join(k for k in failures.RETRYABLE if k in kinds)}"]
    if other:
        parts.append("other failures: " + ", ".join(f"{n} {k}" for k, n in sorted(other.items()))
                     + " (--kind all retries them)")
    if infeasible:
        parts.append(f"{infeasible} infeasible slot(s) (diverged, oom) are results about their "
                     "hyperparameters and are not retried")
    return "nothing to retry: " + "; ".join(parts)


def retried_text(retried: list[Retried]) -> str:
    """What ``hpo retry`` queued, in one line."""
    by_kind: dict[str, list[Retried]] = {}
    for r in retried:
        by_kind.setdefault(r.kind, []).append(r)
    parts = []
    for kind in failures.RETRYABLE:
        mine = by_kind.get(kind, [])
        if mine:
            listed = ", ".join(f"#{r.number}" + (" (seed re-run)" if r.rerun else "")
                               for r in mine[:12])
            parts.append(f"{len(mine)} {kind} ({listed}{', ...' if len(mine) > 12 else ''})")
    return f"queued {len(retried)} failed attempt(s) again, same parameters and seeds: " \
           + ", ".join(parts)


# --- hpo studies ---------------------------------------------------------------------------


def studies_table(url: str) -> str:
    """One row per study in the storage: phase, metric, slots done, counts by kind."""
    import optuna

    from hpo.store.queue import queue_for
    from hpo.tables import render_table
    from hpo.tally import Counts, design_slots

    storage = open_storage(url, create=False)
    summaries = sorted(optuna.study.get_all_study_summaries(storage, include_best_trial=False),
                       key=lambda s: s.study_name)
    if not summaries:
        raise NothingToDo(f"no study in {redact(url)}; start one with hpo run <study file>")
    rows = [["study", "phase", "metric", "slots done", "complete", "pruned", "infeasible",
             "error", "timeout", "infrastructure", "running", "retried"]]
    for summary in summaries:
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        slots = design_slots(queue_for(study).all_trials())
        c = Counts.of(s.final for s in slots)
        metric = summary.user_attrs.get(attrs.STUDY_METRIC, "?")
        direction = summary.directions[0].name.lower() if len(summary.directions) == 1 else "-"
        rows.append([
            summary.study_name,
            str(summary.user_attrs.get(attrs.STUDY_PHASE, "?")),
            f"{metric} ({direction})",
            f"{sum(s.done for s in slots)}/{len(slots)}",
            str(c.complete), str(c.pruned), str(c.infeasible), str(c.error), str(c.timeout),
            str(c.infrastructure), str(c.running), str(sum(len(s.earlier) for s in slots)),
        ])
    return render_table(rows)


# --- hpo delete ----------------------------------------------------------------------------


def delete_study(definition: Study, url: str, *, yes: bool) -> str:
    """Delete the study named by the definition, with every trial; returns what was done.

    Refuses (exit 2, nothing deleted) without ``yes``, and while a trial runs on a worker
    that is alive: it would crash mid-write. Its design need not match the study file's: a
    study made from an older design is what one deletes.
    """
    import optuna

    from hpo.store.leases import dead_trials
    from hpo.store.queue import queue_for

    storage = open_storage(url, create=False)
    try:
        study = optuna.load_study(study_name=definition.name, storage=storage)
    except KeyError:
        names = sorted(optuna.get_all_study_names(storage))
        raise StorageError(
            f"study {definition.name!r} is not in {redact(url)}"
            f"{' (it holds: ' + ', '.join(names) + ')' if names else ' (it holds no study)'}"
        ) from None
    trials = study.get_trials(deepcopy=False)
    what = f"study {definition.name!r} ({len(trials)} trial(s)) from {redact(url)}"
    if not yes:
        raise InputError(f"hpo delete removes {what} for good; add --yes to delete it")
    running = [t for t in trials if t.state.name == "RUNNING"]
    if running:
        dead = {t.number for t in dead_trials(queue_for(study))}
        alive = [t.number for t in running if t.number not in dead]
        if alive:
            raise InputError(
                f"study {definition.name!r} has {len(alive)} trial(s) running right now (#"
                + ", #".join(map(str, alive[:8])) + "); stop its workers first (Ctrl-C, "
                "SIGTERM), then delete it")
    with _guarded(url, definition.name):
        optuna.delete_study(study_name=definition.name, storage=storage)
    return f"deleted {what}"

