"""The one way hpo prints a table, and the per-scientific-value counts every table shows.

``hpo run``'s summary, ``hpo status`` and ``hpo report`` print the same count columns, from
the same :func:`hpo.tally.tally`, so a reader can hold one output against another.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hpo.tally import ValueTally

# Design slots by their final attempt, then the attempts retried, then the seed re-runs
# ("finished/enqueued"), which are outside the design.
COUNT_COLUMNS = ("finished", "complete", "pruned", "failed", "running", "waiting", "retried",
                 "seed re-runs")


def count_cells(value: ValueTally) -> list[str]:
    c, r = value.counts, value.rerun_counts
    return [str(n) for n in (c.finished, c.complete, c.pruned, c.fail, c.running, c.waiting,
                             value.retried)] + [f"{r.finished}/{r.total}"]


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
