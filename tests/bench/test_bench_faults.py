"""Keep bench/faults.py from rotting: its quick mode runs two scenarios and prints the table."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT


def test_faults_benchmark_quick_prints_the_table():
    result = subprocess.run([sys.executable, "bench/faults.py", "--quick",
                             "--only", "j-lock-timeout,k-startup"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"^hpo fault scenarios, short size, \d{4}-\d\d-\d\d \d\d:\d\d", out, re.M)
    assert re.search(r"^machine: .+, \d+ cores, Python .+, postgres", out, re.M)
    assert ("| scenario | trials requested | complete | lost | duplicated | stuck | "
            "wrongly failed | wrong value | time (s) | result |") in out
    for key in ("j-lock-timeout", "k-startup"):
        row = next(line for line in out.splitlines() if line.startswith(f"| {key}:"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        requested, complete, *zeros = cells[1:8]
        assert complete == requested and zeros == ["0"] * 5, row
        assert cells[-1] == "ok", row
    assert "2 of 2 scenarios ok" in out
