"""The per-scientific-value summary printed after a run: the first look at a comparison."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpo.store.queue import queue_for
from hpo.tables import COUNT_COLUMNS, count_cells, kinds_line, render_table
from hpo.tally import value_of

if TYPE_CHECKING:
    import optuna

    from hpo.study import Study


def summary_table(definition: Study, study: optuna.Study) -> str:
    """A plain-text table: one line per scientific value, best first. From the study's
    counts (:meth:`hpo.store.queue.TrialQueue.counts`: aggregate queries on PostgreSQL),
    never the whole study."""
    names = list(definition.space.scientific)
    sign = 1 if definition.direction == "minimize" else -1
    counts = queue_for(study).counts(definition)
    values = sorted(counts.values,
                    key=lambda v: (v.best is None, sign * value_of(v.best) if v.best else 0))
    rows = [["scientific value", *COUNT_COLUMNS, f"best {definition.metric}", "trial",
             "best trial's nuisance values"]]
    for v in values:
        best = v.best
        nuisance = {k: p for k, p in (best.params if best else {}).items() if k not in names}
        rows.append([
            v.label,
            *count_cells(v),
            f"{best.value:.4g}" if best else "-",
            f"#{best.number}" if best else "-",
            ", ".join(f"{k}={_fmt(p)}" for k, p in nuisance.items()) or "-",
        ])
    kinds = kinds_line(counts.failed)
    return "\n".join([f"study {definition.name!r}: {definition.goal}",
                      f"metric: {definition.metric} ({definition.direction}), "
                      f"phase: {definition.phase}", "", render_table(rows),
                      *(["", kinds] if kinds else [])])


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
