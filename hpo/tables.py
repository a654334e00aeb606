"""The one way hpo prints a table, and the per-scientific-value counts every table shows.

``hpo run``'s summary, ``hpo status`` and ``hpo report`` print the same count columns, from
the same :func:`hpo.tally.tally`, so a reader can hold one output against another.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from hpo import failures

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from hpo.tally import ValueTally

# Design slots by their final attempt, then the attempts retried, then the seed re-runs
# ("finished/enqueued"), which are outside the design. A FAIL is "infeasible" (diverged, out
# of memory: a result about the hyperparameters) or "failed" (error, timeout,
# infrastructure: to fix and retry); kinds_line() breaks both down.
COUNT_COLUMNS = ("finished", "complete", "pruned", "infeasible", "failed", "running", "waiting",
                 "retried", "seed re-runs")
SHOWN_NUMBERS = 8  # trial numbers listed per failure kind before "..."


def count_cells(value: ValueTally) -> list[str]:
    c, r = value.counts, value.rerun_counts
    return [str(n) for n in (c.finished, c.complete, c.pruned, c.infeasible, c.failed,
                             c.running, c.waiting, value.retried)] + [f"{r.finished}/{r.total}"]


def kinds_line(values: Iterable[ValueTally]) -> str | None:
    """The design slots that ended FAIL, by kind, in one line (None if there are none):
    "infeasible: 2 diverged; failed: 1 error (#3), 1 timeout (#7)". The failed ones list
    their trial numbers: those are the ones to look at, and ``hpo retry`` queues again."""
    finals = [s.final for v in values for s in v.slots if failures.kind_of(s.final)]
    parts = [f"{label}: {text}" for label, kinds, numbered in (
        ("infeasible", failures.INFEASIBLE, False), ("failed", failures.RETRYABLE, True))
        if (text := by_kind_text(finals, kinds, numbered=numbered))]
    return "; ".join(parts) or None


def by_kind_text(trials: Iterable[FrozenTrial], kinds: Sequence[str], *,
                 numbered: bool = True) -> str:
    """"2 error (#3, #5), 1 timeout (#7)": the trials of these failure kinds, counted."""
    by_kind: dict[str, list[int]] = {}
    for t in sorted(trials, key=lambda t: t.number):
        by_kind.setdefault(str(failures.kind_of(t)), []).append(t.number)
    shown = []
    for kind in kinds:
        numbers = by_kind.get(kind, [])
        if not numbers:
            continue
        listed = ""
        if numbered:
            listed = ", ".join(f"#{n}" for n in numbers[:SHOWN_NUMBERS])
            listed = f" ({listed}{', ...' if len(numbers) > SHOWN_NUMBERS else ''})"
        shown.append(f"{len(numbers)} {kind}{listed}")
    return ", ".join(shown)


def render_table(rows: Sequence[Sequence[str]], *, markdown: bool = False) -> str:
    """The first row is the header. Plain: columns padded, two spaces apart, a rule of dashes
    under the header. Markdown: a pipe table, padded the same way so it reads as text too."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rule = ["-" * w for w in widths]
    lines = []
    for row in [rows[0], rule, *rows[1:]]:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)]
        lines.append(f"| {' | '.join(cells)} |" if markdown else "  ".join(cells).rstrip())
    return "\n".join(lines)
