"""Keeps bench/decisions.py from rotting: its --quick run must print every table and goal."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT

FIXED = ("hpo (explore + seeds + verdict)", "hpo unpaired", "hpo + fair hyperband",
         "hpo + optuna hyperband", "optuna random", "optuna qmc", "optuna tpe",
         "optuna tpe + hyperband", "naive default", "optuna random +5", "optuna qmc +5",
         "optuna tpe +5")
UNTIL = ("hpo --until-decided", "hpo --until-decided + fair hyperband")
PCT = r"[\d.]+%"


def test_decisions_benchmark_quick_run():
    proc = subprocess.run([sys.executable, "bench/decisions.py", "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert re.match(r"decision benchmark, \d{4}-\d\d-\d\d, ", out)  # the date and machine
    for problem in ("two optimizers", "three optimizers", "outliers"):
        assert re.search(rf"^{problem} \(main: optimizer=\w+ wins; null: no winner\)$", out,
                         re.MULTILINE), problem
    num = r"[\d.]+"
    # Per strategy and budget (4 and 16 in --quick): trials, evals and compute per value, then
    # % correct, wrong, none, false winner, and the null runs' evaluations.
    for name in FIXED:
        for budget in (4, 16):
            row = (rf"^{re.escape(name)}\s+{budget}\s+{num}\s+{num}\s+"
                   rf"{PCT}\s+{PCT}\s+{PCT}\s+{PCT}\s+{num}$")
            assert len(re.findall(row, out, re.MULTILINE)) == 3, (name, budget, out)
    for name in UNTIL:
        row = (rf"^{re.escape(name)}\s+{num}\s+{num}\s+{num}\s+"
               rf"{PCT}\s+{PCT}\s+{PCT}\s+{PCT}\s+{num}$")
        assert len(re.findall(row, out, re.MULTILINE)) == 3, (name, out)
    # The naive habit compares at a default that favours the wrong optimizer.
    assert re.search(r"^naive default\s+16\s+16\.0\s+16\.0\s+0\.0%\s+100\.0%", out, re.MULTILINE)
    for goal in ("goal wrong winner <= 1%", "goal false winner <= 5%",
                 "goal --until-decided >= 95% correct", "goal fair pruning"):
        assert re.search(rf"^{re.escape(goal)}.*-> (met|NOT met)$", out, re.MULTILINE), goal
