"""The per-scientific-value summary printed after a run: the first look at a comparison."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

if TYPE_CHECKING:
    import optuna

    from hpo.study import Study


def best_per_value(definition: Study, trials: list[optuna.trial.FrozenTrial]) -> list[dict[str, Any]]:
    """For each scientific value: trial counts by state and the best complete trial."""
    names = list(definition.space.scientific)
    sign = 1 if definition.direction == "minimize" else -1
    rows = []
    for value in definition.space.scientific_values():
        mine = [t for t in trials if all(t.params.get(n) == v for n, v in value.items())
                and t.state.is_finished() and "slot" in t.user_attrs
                # Seed re-runs (hpo seeds) measure variance; they are not more design trials.
                and "seed_rerun_of" not in t.user_attrs]
        complete = [t for t in mine if t.state == TrialState.COMPLETE]
        best = min(complete, key=lambda t: sign * t.value, default=None)
        rows.append({
            "value": value,
            "finished": len(mine),
            "complete": len(complete),
            "pruned": sum(t.state == TrialState.PRUNED for t in mine),
            "failed": sum(t.state == TrialState.FAIL for t in mine),
            "best": best,
            "nuisance": {k: v for k, v in (best.params if best else {}).items() if k not in names},
        })
    return rows


def summary_table(definition: Study, study: optuna.Study) -> str:
    """A plain-text table: one line per scientific value, best first."""
    rows = best_per_value(definition, study.get_trials(deepcopy=False))
    sign = 1 if definition.direction == "minimize" else -1
    rows.sort(key=lambda r: (r["best"] is None, sign * r["best"].value if r["best"] else 0))
    header = ["scientific value", "finished", "failed", f"best {definition.metric}", "trial",
              "best trial's nuisance values"]
    body = []
    for r in rows:
        best = r["best"]
        body.append([
            ", ".join(f"{k}={v}" for k, v in r["value"].items()) or "(all trials)",
            str(r["finished"]),
            str(r["failed"]),
            f"{best.value:.4g}" if best else "-",
            f"#{best.number}" if best else "-",
            ", ".join(f"{k}={_fmt(v)}" for k, v in r["nuisance"].items()) or "-",
        ])
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    lines = [f"study {definition.name!r}: {definition.goal}",
             f"metric: {definition.metric} ({definition.direction}), phase: {definition.phase}", ""]
    for row in [header, ["-" * w for w in widths], *body]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
