"""The playbook's plots as plotly figures, for the HTML report and for optuna-dashboard.

Generated, never drawn by hand (playbook: "automate the plots"): an isolation plot, axis plots
for every nuisance hyperparameter, infeasible fractions, best-of-N curves and the best
trials' training curves. plotly is imported here only, so ``hpo --help`` never loads it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from hpo.analysis.curves_diagnostics import trial_curves
from hpo.analysis.results import is_infeasible
from hpo.space import Choice, Float, Int
from hpo.tally import value_of

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from hpo.analysis.analyze import Analysis

_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf")


def color(i: int) -> str:
    return _PALETTE[i % len(_PALETTE)]


def all_figures(analysis: Analysis) -> dict[str, go.Figure]:
    """Every plot, by a stable id (also the dashboard's graph id, so a new report replaces it)."""
    figures = {
        "isolation": isolation_figure(analysis),
        **axis_figures(analysis),
        "infeasible": infeasible_figure(analysis),
        "enough": enough_figure(analysis),
        "curves": curves_figure(analysis),
    }
    return {k: v for k, v in figures.items() if v is not None}


def isolation_figure(analysis: Analysis) -> go.Figure:
    import plotly.graph_objects as go

    r = analysis.results
    fig = go.Figure()
    for i, point in enumerate(analysis.isolation):
        if point.best is None:
            continue
        y = value_of(point.best)
        lo, hi = point.band or (y, y)
        fig.add_trace(go.Scatter(
            x=[point.group.label], y=[y], mode="markers", name=point.group.label,
            marker={"size": 12, "color": color(i)},
            error_y={"type": "data", "symmetric": False, "array": [max(0.0, max(lo, hi) - y)],
                     "arrayminus": [max(0.0, y - min(lo, hi))]},
            hovertext=[f"trial #{point.best.number}, best of {point.trials}"],
        ))
        reruns = [t.value for t in point.group.reruns
                  if t.value is not None and math.isfinite(t.value)]
        if reruns:
            fig.add_trace(go.Scatter(
                x=[point.group.label] * len(reruns), y=reruns, mode="markers",
                name=f"{point.group.label}: seed re-runs", marker={"symbol": "circle-open",
                                                                   "color": color(i)}))
    _add_estimates(fig, analysis)
    fig.update_layout(title=f"Isolation plot: best {r.metric} (bar: 90% bootstrap band; "
                            "diamond: seed re-run estimate, its noise margin and search "
                            "uncertainty)",
                      xaxis_title=", ".join(r.scientific) or "study", yaxis_title=r.metric,
                      showlegend=True)
    return fig


def _add_estimates(fig: go.Figure, analysis: Analysis) -> None:
    """Each value's verdict estimate: a diamond with two bars, the seed noise (+-2 standard
    errors) and, towards better, the search uncertainty (how much better it could get)."""
    import plotly.graph_objects as go

    minimize = analysis.results.direction == "minimize"
    for i, e in enumerate(analysis.verdict.estimates):
        if e.value is None:
            continue
        noise = 2 * e.se if e.se is not None else 0.0
        search = e.uncertainty if math.isfinite(e.uncertainty) else 0.0
        better_side = noise + search
        hover = e.basis + (f"; seed noise std {e.noise:.3g}" if e.noise is not None else "")
        hover += ("; search uncertainty unknown (too few trials)"
                  if not math.isfinite(e.uncertainty)
                  else f"; search uncertainty {e.uncertainty:.3g}")
        fig.add_trace(go.Scatter(
            x=[e.group], y=[e.value], mode="markers", name=f"{e.group}: estimate",
            marker={"symbol": "diamond", "size": 11, "color": color(i),
                    "line": {"color": "black", "width": 1}},
            error_y={"type": "data", "symmetric": False, "color": color(i), "thickness": 3,
                     "array": [noise if minimize else better_side],
                     "arrayminus": [better_side if minimize else noise]},
            hovertext=[hover]))


def axis_figures(analysis: Analysis) -> dict[str, go.Figure]:
    """One axis plot per nuisance hyperparameter: the metric against its value, by scientific
    value. Infeasible trials have no value: they are drawn at the worst value seen, as crosses,
    so the infeasible region shows next to the feasible one."""
    import plotly.graph_objects as go

    r = analysis.results
    names: dict[str, Any] = {}
    for g in r.groups:
        for n, d in g.nuisance.items():
            names.setdefault(n, d)
    complete_values = [value_of(t) for g in r.groups for t in g.complete]
    worst = (max(complete_values) if r.direction == "minimize" else min(complete_values)) \
        if complete_values else 0.0
    figures = {}
    for name, dist in names.items():
        fig = go.Figure()
        for i, g in enumerate(r.groups):
            done = [t for t in g.complete if name in t.params]
            bad = [t for t in g.finished if is_infeasible(t) and name in t.params]
            if not done and not bad:
                continue  # a conditional hyperparameter this value does not have
            fig.add_trace(go.Scatter(
                x=[t.params[name] for t in done], y=[t.value for t in done], mode="markers",
                name=g.label, legendgroup=g.label, marker={"color": color(i), "size": 8},
                hovertext=[f"trial #{t.number}" for t in done]))
            if bad:
                fig.add_trace(go.Scatter(
                    x=[t.params[name] for t in bad], y=[worst] * len(bad), mode="markers",
                    name=f"{g.label}: infeasible", legendgroup=g.label,
                    marker={"color": color(i), "symbol": "x", "size": 10},
                    hovertext=[f"trial #{t.number}: infeasible" for t in bad]))
        if isinstance(dist, (Float, Int)):
            fig.update_xaxes(type="log" if dist.log else "linear")
            for side in sorted({w.edge for w in analysis.boundaries if w.hyperparameter == name}):
                edge = dist.low if side == "low" else dist.high
                # A line trace, not a shape: shapes take log10 units on a log axis, and
                # optuna-dashboard's plotly.js and the report's disagreed about them.
                ys = [value_of(t) for g in r.groups for t in g.complete
                      if name in t.params] or [0.0]
                fig.add_trace(go.Scatter(
                    x=[edge, edge], y=[min(ys), max(ys)], mode="lines",
                    name=f"{name}: best near the {side} edge",
                    line={"color": "orange", "dash": "dot"}))
        elif isinstance(dist, Choice):
            fig.update_xaxes(type="category")
        fig.update_layout(title=f"Axis plot: {r.metric} vs {name}", xaxis_title=name,
                          yaxis_title=r.metric)
        figures[f"axis-{name}"] = fig
    return figures


def infeasible_figure(analysis: Analysis) -> go.Figure:
    import plotly.graph_objects as go

    labels = [i.group for i in analysis.infeasible]
    fig = go.Figure()
    for field, name, c in (("complete", "complete", "#2ca02c"), ("pruned", "pruned", "#bbbbbb"),
                           ("diverged", "diverged", "#d62728"), ("oom", "out of memory", "#9467bd"),
                           ("failed", "failed (not infeasible)", "#ff7f0e")):
        fig.add_trace(go.Bar(x=labels, y=[getattr(i, field) for i in analysis.infeasible],
                             name=name, marker_color=c))
    fig.update_layout(barmode="stack", title="Infeasible trials: outcomes per scientific value",
                      yaxis_title="trials")
    return fig


def enough_figure(analysis: Analysis) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, e in enumerate(analysis.enough):
        if not e.curve:
            continue
        n = [p.n for p in e.curve]
        fig.add_trace(go.Scatter(x=n + n[::-1], y=[p.low for p in e.curve] +
                                 [p.high for p in e.curve][::-1], fill="toself", opacity=0.2,
                                 line={"width": 0}, marker={"color": color(i)},
                                 legendgroup=e.group, showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=n, y=[p.expected for p in e.curve], mode="lines+markers",
                                 name=e.group, legendgroup=e.group, line={"color": color(i)}))
    fig.update_layout(title="Enough trials? Expected best of N (bootstrap)",
                      xaxis_title="trials (N)", yaxis_title=f"best {analysis.results.metric}")
    return fig


def curves_figure(analysis: Analysis) -> go.Figure | None:
    """The best trials' validation curves (and training loss where recorded)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    r = analysis.results
    by_number = {t.number: t for g in r.groups for t in g.trials}
    drawn = []
    for d in analysis.curves:
        curves, _ = trial_curves(by_number[d.trial], r.metric)
        if curves is not None:
            drawn.append((d, curves))
    if not drawn:
        return None
    train = any(c.get("train_loss") is not None for _, c in drawn)
    fig = make_subplots(rows=1, cols=2 if train else 1, subplot_titles=(
        ["validation", "training loss"] if train else ["validation"]))
    groups = [g.label for g in r.groups]
    for d, c in drawn:
        i = groups.index(d.group)
        dash = ("solid", "dash", "dot")[min(d.rank - 1, 2)]
        label = f"{d.group} #{d.trial}"
        series = c.get("val_metric") if c.get("val_metric") is not None else c.get("val_loss")
        if series is not None:
            fig.add_trace(go.Scatter(x=c["step"], y=series, mode="lines", name=label,
                                     legendgroup=label, line={"color": color(i), "dash": dash}),
                          row=1, col=1)
        if train and c.get("train_loss") is not None:
            fig.add_trace(go.Scatter(x=c["step"], y=c["train_loss"], mode="lines", name=label,
                                     legendgroup=label, showlegend=False,
                                     line={"color": color(i), "dash": dash}), row=1, col=2)
    fig.update_xaxes(title_text="step")
    # Solid: each value's best trial, dashed: 2nd, dotted: 3rd.
    fig.update_layout(title="Training curves of the best trials")
    return fig
