"""One audit of a study in storage, after a fault: what was asked, what was done, what went wrong.

Used by the fault-injection tests (tests/integration/faults) and by ``bench/faults.py``, so
the table in docs/faults.md counts exactly what the tests assert. It reads the storage
directly (SQL on Optuna's tables; Optuna's reader for a journal file), never through hpo:
the evidence must not depend on the mechanism it checks, and reading must write nothing.

A *design trial* is one with a ``slot`` attribute that is not a seed re-run
(``seed_rerun_of``). For a budget of N:

* **complete**: COMPLETE design trials, whatever their slot (exactly N when all is well);
* **lost**: slots 0..N-1 without a COMPLETE design trial;
* **duplicated**: live design trials (WAITING, RUNNING, COMPLETE, PRUNED) beyond the first of
  their slot, over every slot in storage, so a budget laid out twice counts too;
* **stuck**: trials still RUNNING (any trial: a foreign client's too), and design trials of
  slots 0..N-1 still WAITING;
* **wrongly failed**: FAIL trials whose worker the scenario did not kill or stop (a healthy
  trial failed: reaped during an outage, failed on an I/O error, crashed by hpo itself);
* **wrong values**: COMPLETE trials whose value is not what the deterministic objective
  gives for their parameters (a foreign objective's result, another study's checkpoint).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SLOT, SEED_RERUN_OF, WORKER_PID = "slot", "seed_rerun_of", "worker_pid"
LIVE = ("WAITING", "RUNNING", "COMPLETE", "PRUNED")


@dataclass
class Audit:
    requested: int
    complete: int = 0
    lost: int = 0
    duplicated: int = 0
    stuck: int = 0
    wrongly_failed: int = 0
    wrong_values: int = 0
    laid_out: int = 0           # distinct slots in storage
    trials: int = 0             # every trial of the study, attempts and retries included
    failed: int = 0             # FAIL trials, expected or not
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """Every slot done exactly once, nothing stuck, no healthy trial failed, values right."""
        return (self.complete == self.requested and not self.lost and not self.duplicated
                and not self.stuck and not self.wrongly_failed and not self.wrong_values)

    def row(self) -> list[int]:
        return [self.requested, self.complete, self.lost, self.duplicated, self.stuck,
                self.wrongly_failed, self.wrong_values]

    def merge(self, other: Audit, label: str) -> Audit:
        """The two audits added up (a scenario with two studies)."""
        counts = {k: getattr(self, k) + getattr(other, k)
                  for k in ("requested", "complete", "lost", "duplicated", "stuck",
                            "wrongly_failed", "wrong_values", "laid_out", "trials", "failed")}
        return Audit(**counts, notes=[*self.notes, *(f"{label}: {n}" for n in other.notes)])

    def __str__(self) -> str:
        head = (f"requested {self.requested}, complete {self.complete}, lost {self.lost}, "
                f"duplicated {self.duplicated}, stuck {self.stuck}, wrongly failed "
                f"{self.wrongly_failed}, wrong values {self.wrong_values} (slots laid out "
                f"{self.laid_out}, trials {self.trials}, FAIL {self.failed})")
        return "\n  ".join([head, *self.notes[:30]])


class NoStudy(LookupError):
    """The study is not in storage (never created, or no tables at all)."""


@dataclass
class Trial:
    """A trial as stored, decoded: what the audit and the scenarios look at."""

    number: int
    state: str                   # WAITING, RUNNING, COMPLETE, PRUNED, FAIL
    value: float | None
    params: dict[str, Any]
    user_attrs: dict[str, Any]
    system_attrs: dict[str, Any]
    intermediate_values: dict[int, float]


def load_trials(url: str, study_name: str) -> list[Trial]:
    """The study's trials, read without writing anything.

    PostgreSQL is read with plain SQL on Optuna's tables, in one snapshot: Optuna's own
    RDBStorage would create tables and stamp a schema version on a database that has none
    yet, racing the workers it is watching. A journal file is replayed by Optuna's reader.
    """
    if "://" in url:
        return _pg_trials(url, study_name)
    if not Path(url).is_file():
        raise NoStudy(f"no journal file {url}")
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(url))
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        raise NoStudy(f"no study {study_name!r} in {url}") from None
    return [Trial(t.number, t.state.name, t.value, dict(t.params), dict(t.user_attrs),
                  dict(t.system_attrs), dict(t.intermediate_values))
            for t in storage.get_all_trials(study_id, deepcopy=False)]


_VALUE_TYPES = {"FINITE": None, "INF_POS": math.inf, "INF_NEG": -math.inf}


def _pg_trials(url: str, study_name: str) -> list[Trial]:
    import sqlalchemy
    from optuna.distributions import json_to_distribution
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(url, poolclass=NullPool,
                                      connect_args={"connect_timeout": 5})
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            def rows(query: str, **params: Any) -> list[Any]:
                return list(conn.execute(sqlalchemy.text(query), params))

            if rows("SELECT to_regclass('public.trials')")[0][0] is None:
                raise NoStudy("no Optuna tables in the database")
            found = rows("SELECT study_id FROM studies WHERE study_name = :n", n=study_name)
            if not found:
                raise NoStudy(f"no study {study_name!r} in the database")
            study = found[0][0]
            trials = {tid: Trial(number, state, None, {}, {}, {}, {}) for tid, number, state
                      in rows("SELECT trial_id, number, state FROM trials WHERE study_id = :s",
                              s=study)}
            of_study = "JOIN trials t ON t.trial_id = x.trial_id WHERE t.study_id = :s"
            for tid, name, value, dist in rows(
                    "SELECT x.trial_id, x.param_name, x.param_value, x.distribution_json "
                    f"FROM trial_params x {of_study}", s=study):
                trials[tid].params[name] = json_to_distribution(dist).to_external_repr(value)
            for table, field_name in (("trial_user_attributes", "user_attrs"),
                                      ("trial_system_attributes", "system_attrs")):
                for tid, key, value in rows(f"SELECT x.trial_id, x.key, x.value_json FROM "
                                            f"{table} x {of_study}", s=study):
                    getattr(trials[tid], field_name)[key] = json.loads(value)
            for tid, value, kind in rows("SELECT x.trial_id, x.value, x.value_type FROM "
                                         f"trial_values x {of_study} AND x.objective = 0",
                                         s=study):
                special = _VALUE_TYPES.get(str(kind).rsplit(".", 1)[-1])
                trials[tid].value = value if special is None else special
            for tid, step, value in rows("SELECT x.trial_id, x.step, x.intermediate_value "
                                         f"FROM trial_intermediate_values x {of_study}",
                                         s=study):
                trials[tid].intermediate_values[step] = value
    finally:
        engine.dispose()
    return sorted(trials.values(), key=lambda t: t.number)


def audit(url: str, study_name: str, budget: int, *,
          value: Callable[[Mapping[str, Any]], float] | None = None,
          dead_pids: Iterable[int] = (), dead_trials: Iterable[int] = (),
          trials: list[Trial] | None = None) -> Audit:
    """Audit a study after a fault.

    Args:
        url: The storage (a PostgreSQL URL or a journal file).
        study_name: The study's name.
        budget: The budget the last run asked for (``--trials``).
        value: The objective's value for a trial's params; None: values are not checked.
        dead_pids: Worker pids the scenario killed or stopped: their trials may FAIL.
        dead_trials: Trial numbers the scenario's fault hit (a process killed or stopped
            while it held them): they may FAIL.
        trials: Already loaded trials (default: read them from storage).
    """
    missing = None
    if trials is None:
        try:
            trials = load_trials(url, study_name)
        except NoStudy as e:
            trials, missing = [], str(e)
    dead_pids, dead_trials = set(dead_pids), set(dead_trials)
    result = Audit(requested=budget, trials=len(trials))
    if missing:
        result.notes.append(missing)
    live: dict[int, list[int]] = defaultdict(list)
    complete: dict[int, list[int]] = defaultdict(list)
    waiting: list[int] = []
    for t in trials:
        state = t.state
        slot = t.user_attrs.get(SLOT)
        design = isinstance(slot, int) and SEED_RERUN_OF not in t.user_attrs
        if design and state in LIVE:
            live[slot].append(t.number)
        if design and state == "COMPLETE":
            complete[slot].append(t.number)
        if state == "RUNNING":
            result.stuck += 1
            result.notes.append(f"trial #{t.number} (slot {slot}) still RUNNING "
                                f"(pid {t.user_attrs.get(WORKER_PID)})")
        elif state == "WAITING" and design and slot < budget:
            result.stuck += 1
            waiting.append(slot)
        if state == "FAIL":
            result.failed += 1
            pid = t.user_attrs.get(WORKER_PID)
            if pid not in dead_pids and t.number not in dead_trials:
                result.wrongly_failed += 1
                result.notes.append(f"trial #{t.number} (slot {slot}, pid {pid}) FAIL although "
                                    f"its worker was not hit: {t.user_attrs.get('error')}")
        if state == "COMPLETE" and value is not None:
            expected = value(t.params)
            if t.value is None or not math.isclose(t.value, expected, rel_tol=1e-9,
                                                    abs_tol=1e-12):
                result.wrong_values += 1
                result.notes.append(f"trial #{t.number} (slot {slot}) value {t.value!r}, "
                                    f"the objective gives {expected!r} for {t.params}")
    result.complete = sum(len(v) for v in complete.values())
    result.laid_out = len({t.user_attrs[SLOT] for t in trials
                           if isinstance(t.user_attrs.get(SLOT), int)})
    if waiting:
        result.notes.append(f"slots still WAITING: {_ranges(sorted(set(waiting)))}")
    lost = [s for s in range(budget) if not complete.get(s)]
    result.lost = len(lost)
    if lost:
        result.notes.append(f"slots without a COMPLETE trial: {_ranges(lost)}")
        attempts: dict[int, list[str]] = defaultdict(list)
        for t in trials:
            slot = t.user_attrs.get(SLOT)
            if slot in lost[:5]:
                why = t.user_attrs.get("error")
                attempts[slot].append(f"#{t.number} {t.state}" + (f" ({why})" if why else ""))
        for slot in lost[:5]:
            result.notes.append(f"slot {slot}: {'; '.join(attempts[slot]) or 'no trial'}")
    doubled = {s: n for s, n in live.items() if len(n) > 1}
    result.duplicated = sum(len(n) - 1 for n in doubled.values())
    if doubled:
        shown = ", ".join(f"slot {s}: #{', #'.join(map(str, n))}"
                          for s, n in sorted(doubled.items())[:10])
        result.notes.append(f"{len(doubled)} slot(s) held by more than one live trial ({shown})")
    return result


def _ranges(numbers: list[int]) -> str:
    spans: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        spans.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(spans)


# --- the deterministic objectives of the scenarios' study files (scenarios.py) ---------

def synthetic_value(params: Mapping[str, Any]) -> float:
    """SLEEPY_STUDY's objective."""
    extra = params["momentum"] if params["optimizer"] == "sgd" else params["beta1"]
    return abs(params["learning_rate"] - 0.01) + extra * 0.1


def accumulated_value(steps: int) -> Callable[[Mapping[str, Any]], float]:
    """CHECKPOINT_STUDY's objective: x added once per step, carried in the checkpoint."""
    def value(params: Mapping[str, Any]) -> float:
        acc = 0.0
        for _ in range(steps):
            acc += params["x"]
        return acc
    return value
