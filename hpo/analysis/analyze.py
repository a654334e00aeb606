"""Every diagnostic of one study, run once: the :class:`Analysis` record that the report, the
plots and optuna-dashboard's notes are drawn from.

Nothing here draws or writes: :mod:`hpo.analysis.report` renders an Analysis (markdown, HTML),
:mod:`hpo.analysis.plots` turns it into figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hpo import attrs
from hpo.analysis.boundaries import BoundaryWarning, boundary_warnings
from hpo.analysis.curves_diagnostics import CurveDiagnosis, curve_diagnostics
from hpo.analysis.enough import EnoughTrials, answer_could_change, enough_trials
from hpo.analysis.failed import FailureGroup, failure_groups
from hpo.analysis.infeasible import Infeasibility, infeasible_trials
from hpo.analysis.isolation import IsolationPoint, isolation_plot
from hpo.analysis.results import Results, collect
from hpo.analysis.verdict import Verdict, verdict

if TYPE_CHECKING:
    import optuna

    from hpo.study import Study


@dataclass(frozen=True)
class Analysis:
    results: Results
    isolation: list[IsolationPoint]
    boundaries: list[BoundaryWarning]
    infeasible: list[Infeasibility]
    enough: list[EnoughTrials]
    enough_sentence: str
    curves: list[CurveDiagnosis]
    verdict: Verdict
    failures: list[FailureGroup] = field(default_factory=list)


def analyze(definition: Study, study: optuna.Study, *,
            study_file: str = "<study file>") -> Analysis:
    """Run every diagnostic on the study's trials as they are now (running ones included)."""
    results = collect(definition, study)
    points = isolation_plot(results)
    enough = enough_trials(results)
    return Analysis(
        results=results,
        isolation=points,
        boundaries=boundary_warnings(results),
        infeasible=infeasible_trials(results),
        enough=enough,
        enough_sentence=answer_could_change(results, enough, points),
        curves=curve_diagnostics(results),
        # A run --until-decided looked several times: its report's margins allow for them.
        verdict=verdict(results, study_file=study_file, looks=_looks(study)),
        failures=failure_groups(results.tallies),
    )


def _looks(study: optuna.Study) -> int:
    state = study.user_attrs.get(attrs.STUDY_UNTIL_DECIDED)
    return int(state.get("looks", 1)) if isinstance(state, dict) else 1
