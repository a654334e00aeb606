"""The one way hpo prints a table, and the per-scientific-value counts every table shows.

``hpo run``'s summary, ``hpo status`` and ``hpo report`` print the same count columns, from
the same :func:`hpo.tally.tally`, so a reader can hold one output against another.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from hpo import failures
from hpo.counts import FIRST

if TYPE_CHECKING:
    from hpo.counts import Failed, ValueCounts
    from hpo.tally import ValueTally

# Design slots by their final attempt, then the attempts retried, then the seed re-runs
# ("finished/enqueued"), which are outside the design. A FAIL is "infeasible" (diverged, out
# of memory: a result about the hyperparameters) or "failed" (error, timeout,
# infrastructure: to fix and retry); kinds_line() breaks both down.
COUNT_COLUMNS = ("finished", "complete", "pruned", "infeasible", "failed", "running", "waiting",
                 "retried", "seed re-runs")
SHOWN_NUMBERS = FIRST  # trial numbers listed per failure kind before "..."


def count_cells(value: ValueTally | ValueCounts) -> list[str]:
    c, r = value.counts, value.rerun_counts
    return [str(n) for n in (c.finished, c.complete, c.pruned, c.infeasible, c.failed,
                             c.running, c.waiting, value.retried)] + [f"{r.finished}/{r.total}"]


def kinds_line(failed: Iterable[Failed]) -> str | None:
    """The design slots that ended FAIL (:attr:`hpo.counts.StudyCounts.failed`), by kind, in
    one line (None if there are none): "infeasible: 2 diverged; failed: 1 error (#3), 1
    timeout (#7)". The failed ones list their trial numbers: those are the ones to look at,
    and ``hpo retry`` queues again."""
    failed = list(failed)
    parts = [f"{label}: {text}" for label, kinds, numbered in (
        ("infeasible", failures.INFEASIBLE, False), ("failed", failures.RETRYABLE, True))
        if (text := by_kind_text(failed, kinds, numbered=numbered))]
    return "; ".join(parts) or None


def by_kind_text(failed: Iterable[Failed], kinds: Sequence[str], *,
                 numbered: bool = True) -> str:
    """"2 error (#3, #5), 1 timeout (#7)": the failed slots of these kinds, counted."""
    count: dict[str, int] = {}
    numbers: dict[str, list[int]] = {}
    for f in failed:
        count[f.kind] = count.get(f.kind, 0) + f.count
        numbers.setdefault(f.kind, []).extend(f.first)
    shown = []
    for kind in kinds:
        if not count.get(kind):
            continue
        listed = ""
        if numbered:
            listed = ", ".join(f"#{n}" for n in sorted(numbers[kind])[:SHOWN_NUMBERS])
            listed = f" ({listed}{', ...' if count[kind] > SHOWN_NUMBERS else ''})"
        shown.append(f"{count[kind]} {kind}{listed}")
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
