"""``hpo export``: one row per trial, columns tagged by role, for analysis elsewhere.

Columns: ``number``, ``state``, ``failure_kind`` (for a FAIL: diverged, oom, error, timeout,
infrastructure; :mod:`hpo.failures`), ``design`` ("trial": a design slot's final attempt;
"retried": an attempt that failed and was retried; "seed_rerun"), ``scientific.<name>``,
``nuisance.<name>``, ``fixed.<name>`` (the same in every row: the caveats travel with the
data), ``metric.<metric>``, timing, then every user attribute as ``attr.<name>``
(provenance: slot, seed, host, versions, errors...). The stored training curves are left out
of CSV and Parquet, where a cell holds one value, and kept in JSON.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo import failures
from hpo.analysis.results import RERUN_ATTR
from hpo.store.queue import queue_for
from hpo.tally import design_slots

if TYPE_CHECKING:
    import optuna

    from hpo.study import Study

FORMATS = ("csv", "json", "parquet")
_NESTED = ("curves",)  # user attributes too big for a table cell


def trial_rows(definition: Study, study: optuna.Study, *,
               nested: bool = False) -> list[dict[str, Any]]:
    space = definition.space
    roles = {n: hp.role for n, hp in space.hyperparameters.items()}
    trials = queue_for(study).all_trials()  # on PostgreSQL, one query of hpo's own
    # An attempt that failed and was retried is no design trial: its slot's final attempt is.
    retried = {t.number for s in design_slots(trials) for t in s.earlier}
    retried |= {t.number for t in trials if RERUN_ATTR in t.user_attrs} & {
        int(n) for t in trials for n in t.system_attrs.get("retry_history", [])}
    rows = []
    for t in trials:
        row: dict[str, Any] = {
            "number": t.number,
            "state": t.state.name,
            "failure_kind": failures.kind_of(t),
            "design": "retried" if t.number in retried else
                      "seed_rerun" if RERUN_ATTR in t.user_attrs else "trial",
        }
        for name, role in roles.items():
            if role != "fixed":
                row[f"{role}.{name}"] = t.params.get(name)  # None: not active in this trial
        for name, value in space.fixed.items():
            row[f"fixed.{name}"] = value
        row[f"metric.{definition.metric}"] = _number(t.value)
        row["datetime_start"] = t.datetime_start.isoformat() if t.datetime_start else None
        row["datetime_complete"] = t.datetime_complete.isoformat() if t.datetime_complete else None
        row["duration_s"] = (t.duration.total_seconds() if t.duration is not None else None)
        for key in sorted(t.user_attrs):
            if key in _NESTED and not nested:
                continue
            row[f"attr.{key}"] = t.user_attrs[key]
        rows.append(row)
    return rows


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every column, in first-seen order: trials with other user attributes add columns."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def to_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns(rows), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return buffer.getvalue()


def to_json(rows: list[dict[str, Any]]) -> str:
    # NaN and inf are not JSON: strict readers reject them, so they become null.
    return json.dumps(_finite(rows), indent=1, default=str, allow_nan=False) + "\n"


def write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = columns(rows)
    # A column whose cells are of mixed types (a user attribute that is sometimes a string)
    # is stored as text rather than failing the whole export.
    data = {}
    for name in names:
        cells = [_cell(r.get(name)) if isinstance(r.get(name), (dict, list)) else r.get(name)
                 for r in rows]
        try:
            data[name] = pa.array(cells)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            data[name] = pa.array([None if c is None else str(c) for c in cells])
    pq.write_table(pa.table(data), path)


def has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def _cell(value: Any) -> Any:
    """A CSV cell: nested values as JSON text, everything else as is."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return "" if value is None else value


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
