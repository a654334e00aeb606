"""Keeps bench/decisions.py from rotting: its --quick run must print the full table."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT

STRATEGIES = ("hpo (explore + seeds + verdict)", "hpo unpaired", "optuna random", "optuna qmc",
              "optuna tpe", "naive default", "optuna random +5", "optuna qmc +5", "optuna tpe +5")


def test_decisions_benchmark_quick_run():
    proc = subprocess.run([sys.executable, "bench/decisions.py", "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "correct" in proc.stdout and "false winner (null)" in proc.stdout, proc.stdout
    # One row per strategy and budget (4 and 16 in --quick): four percentages each.
    for name in STRATEGIES:
        for budget in (4, 16):
            row = rf"^{re.escape(name)}\s+{budget}\s+\d+\s+(?:[\d.]+%\s+){{3}}[\d.]+%$"
            assert re.search(row, proc.stdout, re.MULTILINE), (name, budget, proc.stdout)
    # The naive habit compares at a default that favours the wrong optimizer.
    assert re.search(r"^naive default\s+16\s+16\s+0\.0%\s+100\.0%", proc.stdout, re.MULTILINE)
    for goal in ("goal hpo >= 95% correct", "goal hpo never less often correct",
                 "goal hpo false winners < 5%"):
        assert re.search(rf"^{re.escape(goal)}.*(met|NOT met)", proc.stdout, re.MULTILINE)
