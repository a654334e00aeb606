"""Playbook diagnostics: what the results of a study say, and how sure we can be.

The public API is what ``__all__`` lists. plotly is imported only by the functions that draw
(``hpo.analysis.plots``, ``write_report``), so importing this package stays light.
"""

from hpo.analysis.analyze import Analysis, analyze
from hpo.analysis.boundaries import BoundaryWarning, boundary_warnings
from hpo.analysis.curves_diagnostics import (
    CurveDiagnosis,
    Finding,
    curve_diagnostics,
    diagnose_curve,
)
from hpo.analysis.enough import EnoughTrials, answer_could_change, enough_trials
from hpo.analysis.infeasible import Infeasibility, infeasible_trials
from hpo.analysis.isolation import IsolationPoint, isolation_plot
from hpo.analysis.report import summary_markdown, write_report
from hpo.analysis.results import Group, Results, collect
from hpo.analysis.seeds import enqueue_seed_reruns, plan_seed_reruns
from hpo.analysis.verdict import Verdict, verdict

__all__ = [
    "Analysis",
    "BoundaryWarning",
    "CurveDiagnosis",
    "EnoughTrials",
    "Finding",
    "Group",
    "Infeasibility",
    "IsolationPoint",
    "Results",
    "Verdict",
    "analyze",
    "answer_could_change",
    "boundary_warnings",
    "collect",
    "curve_diagnostics",
    "diagnose_curve",
    "enough_trials",
    "enqueue_seed_reruns",
    "infeasible_trials",
    "isolation_plot",
    "plan_seed_reruns",
    "summary_markdown",
    "verdict",
    "write_report",
]
