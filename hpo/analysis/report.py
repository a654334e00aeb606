"""``hpo report``'s output: an :class:`~hpo.analysis.analyze.Analysis` rendered as a markdown
summary and one HTML file.

The summary is short enough for a terminal and is also the study's note in optuna-dashboard.
The HTML file is self-contained: plotly's JavaScript is inlined once and every plot is
embedded, so it opens offline, from an e-mail or an artifact store, years later.
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.counts import failed_of
from hpo.tables import COUNT_COLUMNS, count_cells, kinds_line, render_table

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from hpo.analysis.analyze import Analysis

REPORT_FILE = "report.html"
SUMMARY_FILE = "summary.md"


# --- the summary ----------------------------------------------------------------------------


def sections(analysis: Analysis) -> list[tuple[str, str]]:
    """(plot id, markdown) pairs in reading order; the plot id names the figure that follows."""
    r = analysis.results
    designs = [v.counts for v in r.tallies]
    reruns = [v.rerun_counts for v in r.tallies]
    finished, total = sum(c.finished for c in designs), sum(c.total for c in designs)
    head = [
        f"# hpo report: {r.name}",
        "",
        f"**Goal:** {r.goal}",
        "",
        f"{r.metric} ({r.direction}): {finished} of {total} design trials finished "
        f"({sum(c.complete for c in designs)} complete, {sum(c.pruned for c in designs)} pruned, "
        f"{sum(c.infeasible for c in designs)} infeasible, "
        f"{sum(c.failed for c in designs)} failed, {sum(c.running for c in designs)} running, "
        f"{sum(c.waiting for c in designs)} waiting"
        + (f"; {retried} retried attempt(s) not counted" if (retried := sum(
            v.retried for v in r.tallies)) else "") + "); "
        + (f"{sum(c.complete for c in reruns)} of {sum(c.total for c in reruns)} seed "
           "re-runs complete." if any(c.total for c in reruns) else "no seed re-runs yet."),
    ]
    if r.fixed:
        head += ["", "Fixed, a caveat on every conclusion: "
                 + ", ".join(f"`{k}={_fmt(v)}`" for k, v in r.fixed.items()) + "."]
    out = [("", "\n".join(head)),
           ("", "## Verdict\n\n" + analysis.verdict.text + "\n\n" + verdict_table(analysis))]

    # The same counts as hpo run's summary and hpo status: design slots by their final attempt.
    counts = [["scientific value", *COUNT_COLUMNS]] + [[v.label, *count_cells(v)]
                                                       for v in r.tallies]
    kinds = kinds_line(failed_of(r.tallies))
    out.append(("", "## Trials per scientific value\n\n" + render_table(counts, markdown=True)
                + (f"\n\nBy kind: {kinds}." if kinds else "")))

    rows = ["## Isolation: best trial per scientific value", "",
            (f"| scientific value | trials | best {r.metric} | 90% bootstrap band | trial "
             "| nuisance values |"),
            "|---|---|---|---|---|---|"]
    for p in analysis.isolation:
        best = p.best
        band = f"{min(p.band):.4g} to {max(p.band):.4g}" if p.band else "-"
        nuisance = ", ".join(f"{k}={_fmt(v)}" for k, v in best.params.items()
                             if k not in r.scientific) if best else ""
        rows.append(f"| {p.group.label} | {p.trials} | {f'{best.value:.4g}' if best else '-'} | "
                    f"{band} | {f'#{best.number}' if best else '-'} | {nuisance or '-'} |")
    out.append(("isolation", "\n".join(rows)))

    lines = ["## Search-space boundaries", ""]
    lines += [f"- {w.message}" for w in analysis.boundaries] or [
        "- No best trial sits in the outer 10% of a nuisance range."]
    out.append(("axis", "\n".join(lines)))

    lines = ["## Infeasible trials", ""] + [f"- {i.message}" for i in analysis.infeasible]
    out.append(("infeasible", "\n".join(lines)))
    out.append(("", _failures_section(analysis)))

    lines = ["## Enough trials?", ""] + [f"- {e.message}" for e in analysis.enough]
    lines += ["", analysis.enough_sentence]
    out.append(("enough", "\n".join(lines)))

    lines = ["## Training curves of the best trials", ""]
    for d in analysis.curves:
        if d.rank > 1:
            continue  # the HTML report lists the runners-up; the summary stays short
        if d.source == "none":
            lines.append(f"- {d.group}, trial #{d.trial}: no curves recorded")
            continue
        found = "; ".join(f.message for f in d.findings) or "nothing unusual"
        lines.append(f"- {d.group}, trial #{d.trial} ({d.source}): {found}")
    out.append(("curves", "\n".join(lines)))
    return out


def verdict_table(analysis: Analysis) -> str:
    """Per scientific value: estimate, seed noise and search uncertainty, and where it stands."""
    v = analysis.verdict
    beaten = {c.other for c in v.comparisons if c.beaten}
    rows = [["scientific value", f"estimate ({analysis.results.metric})", "seed noise (std)",
             "standard error", "search uncertainty", "design trials", "status", "from"]]
    for e in v.estimates:
        if e.value is None:
            status = "no result"
        elif e.group == v.winner:
            status = "winner"
        elif e.group == v.leader:
            status = "leader"
        else:
            status = "beaten" if e.group in beaten else "in contention"
        search = ("unknown (too few trials)" if math.isinf(e.uncertainty)
                  else f"{e.uncertainty:.3g}" + (" (at an edge)" if e.search.edges else ""))
        rows.append([e.group, f"{e.value:.4g}" if e.value is not None else "-",
                     f"{e.noise:.3g}" if e.noise is not None else "-",
                     f"{e.se:.3g}" if e.se is not None else "-", search,
                     str(e.search.trials), status, e.basis])
    note = ("Search uncertainty: how much better the value's tuned optimum could be than the "
            "configuration found (the gain of its last doubling of trials, doubled at a range "
            "edge). A winner must beat every other value by more than the seed-noise margin "
            "plus that value's search uncertainty.")
    return render_table(rows, markdown=True) + "\n\n" + note


TRACEBACK_LINES = 12  # the end of the first traceback, where the error is


def _failures_section(analysis: Analysis) -> str:
    groups = analysis.failures
    lines = ["## Failures", ""]
    if not groups:
        return "\n".join(lines + ["None: every trial ended complete, pruned or infeasible."])
    ended = sum(len(g.final) for g in groups)
    retried = sum(len(g.retried) for g in groups)
    lines.append(
        f"{ended} slot(s) ended with a failure"
        + (f", and {retried} failed attempt(s) were retried" if retried else "")
        + ". A failure (error, timeout, infrastructure) says nothing about the "
        "hyperparameters: it is not an infeasible trial and no analysis above counts it; fix "
        "its cause, then `hpo retry <study file>` queues the failed slots again.")
    for g in groups:
        where = []
        if g.final:
            where.append(f"ended {len(g.final)} slot(s): {_numbers(g.final)}")
        if g.retried:
            where.append(f"{len(g.retried)} attempt(s) retried: {_numbers(g.retried)}")
        lines += ["", f"### {g.kind} x{g.count}: {g.message[:300]}", "", "; ".join(where) + "."]
        if g.traceback:
            tail = g.traceback.rstrip().splitlines()[-TRACEBACK_LINES:]
            lines += ["", f"First traceback (trial #{g.first}, last lines):", "", "```text",
                      *tail, "```"]
    return "\n".join(lines)


def _numbers(numbers: tuple[int, ...], shown: int = 12) -> str:
    listed = ", ".join(f"#{n}" for n in numbers[:shown])
    return listed + (f" and {len(numbers) - shown} more" if len(numbers) > shown else "")


def summary_markdown(analysis: Analysis) -> str:
    return "\n\n".join(md for _, md in sections(analysis)) + "\n"


# --- the HTML file -------------------------------------------------------------------------


def write_report(analysis: Analysis, out_dir: str | Path,
                 figures: dict[str, go.Figure] | None = None) -> Path:
    """Write ``report.html`` and ``summary.md`` into ``out_dir``; returns the HTML path."""
    from hpo.analysis.plots import all_figures

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = all_figures(analysis) if figures is None else figures
    body, plotly_js = [], True
    for plot_id, md in sections(analysis):
        body.append(markdown_to_html(md))
        for key, figure in figures.items():
            if plot_id and (key == plot_id or key.startswith(f"{plot_id}-")):
                # plotly.js goes inline with the first figure only: one copy, no network needed.
                body.append(figure.to_html(full_html=False, include_plotlyjs=plotly_js,
                                           div_id=f"plot-{key}"))
                plotly_js = False
    body.append(_all_curve_findings(analysis))
    page = _PAGE.format(title=html.escape(f"hpo report: {analysis.results.name}"),
                        body="\n".join(body))
    path = out / REPORT_FILE
    path.write_text(page, encoding="utf-8")
    (out / SUMMARY_FILE).write_text(summary_markdown(analysis), encoding="utf-8")
    return path


def _all_curve_findings(analysis: Analysis) -> str:
    lines = ["## Training-curve findings, best trials of each scientific value", ""]
    for d in analysis.curves:
        found = "; ".join(f.message for f in d.findings) or (
            "no curves recorded" if d.source == "none" else "nothing unusual")
        lines.append(f"- {d.group}, #{d.rank} trial #{d.trial}: {found}")
    return markdown_to_html("\n".join(lines))


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
td, th {{ border: 1px solid #ccc; padding: .3rem .6rem; text-align: left; }}
code {{ background: #f3f3f3; padding: 0 .2rem; }}
h2 {{ margin-top: 2.5rem; border-bottom: 1px solid #ddd; }}
</style></head>
<body>
{body}
</body></html>
"""


def markdown_to_html(md: str) -> str:
    """The markdown this module writes (headings, lists, tables, paragraphs) as HTML."""
    out: list[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("```"):
            code = []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                code.append(lines[i])
                i += 1
            i += 1  # past the closing fence
            out.append(f"<pre><code>{html.escape(chr(10).join(code))}</code></pre>")
        elif m := re.match(r"(#{1,3}) (.*)", line):
            level = len(m.group(1))
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
            i += 1
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
        elif line.startswith("|"):
            rows: list[str] = []
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(set(c) <= {"-", ":"} for c in cells):
                    tag = "th" if not rows else "td"
                    rows.append("<tr>" + "".join(f"<{tag}>{_inline(c)}</{tag}>" for c in cells)
                                + "</tr>")
                i += 1
            out.append("<table>" + "".join(rows) + "</table>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not re.match(r"(#|- |\||```)", lines[i]):
                para.append(lines[i])
                i += 1
            out.append(f"<p>{_inline(' '.join(para))}</p>")
    return "\n".join(out)


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
