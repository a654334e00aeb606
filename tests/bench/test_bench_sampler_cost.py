"""Keeps bench/sampler_cost.py from rotting: its --quick run must print both tables."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT


def test_sampler_cost_benchmark_quick_run():
    proc = subprocess.run([sys.executable, "bench/sampler_cost.py", "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for store in ("journal", "in-memory"):
        assert f"{store} storage, ms per suggestion" in proc.stdout, proc.stdout
    header = r"^\s*finished trials\s+hpo explore\s+hpo exploit\s+optuna tpe\s+optuna random"
    assert len(re.findall(header, proc.stdout, re.MULTILINE)) == 2, proc.stdout
    # --quick: 50 and 500 finished trials, four timings and a ratio on each row, per storage.
    for size in (50, 500):
        row = rf"^\s+{size}(?:\s+[\d.]+){{4}}\s+[\d.]+x$"
        assert len(re.findall(row, proc.stdout, re.MULTILINE)) == 2, proc.stdout
    assert len(re.findall(r"^growth from 50 to 500 trials: hpo explore [\d.]+x", proc.stdout,
                          re.MULTILINE)) == 2, proc.stdout
