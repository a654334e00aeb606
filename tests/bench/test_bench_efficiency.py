"""Keeps bench/efficiency.py from rotting: its --quick run must print one row per strategy."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT


def test_efficiency_benchmark_quick_run():
    proc = subprocess.run([sys.executable, "bench/efficiency.py", "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"target val error 0\.\d+ = top 5% of 8 random trials", proc.stdout), \
        proc.stdout
    for name in ("random search", "random search + ASHA", "optuna tpe + hyperband", "hpo explore",
                 "hpo explore + ASHA", "hpo exploit + ASHA", "hpo exploit + hyperband"):
        row = (rf"^{re.escape(name)}\s+\d/1\s+\d+\s+\d+->?\d+\s+\d+\s+[\d.]+\s+[\d.]+x"
               rf"\s+\d+\s+[\d.]+x$")
        assert re.search(row, proc.stdout, re.MULTILINE), (name, proc.stdout)
    assert re.search(r"^goal >= 3x less compute .* -> (met|NOT met)$", proc.stdout, re.MULTILINE)
    assert re.search(r"^goal hpo exploit \+ pruning .* optuna tpe \+ hyperband .* -> "
                     r"(met|NOT met)$", proc.stdout, re.MULTILINE)
