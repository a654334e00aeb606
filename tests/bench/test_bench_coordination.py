"""Keep bench/coordination.py from rotting: its quick mode runs and prints its ratio."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.postgres
@pytest.mark.parametrize("options", [[], ["--phase", "exploit", "--ahead", "50"]])
def test_coordination_benchmark_quick_prints_the_ratio(options):
    result = subprocess.run([sys.executable, "bench/coordination.py", "--quick", *options],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "hpo / optuna" in result.stdout
    row = [line for line in result.stdout.splitlines() if line.strip().startswith("20 ")]
    assert row and row[0].rstrip().endswith("x")
