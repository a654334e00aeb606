"""Keeps bench/scale.py from rotting: its --quick run builds, reads and runs small studies,
and its fleets (on PostgreSQL and through PgBouncer) lose and duplicate nothing."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.timeout(480)  # about 90 s here; more when the machine is busy
def test_scale_benchmark_quick_run():
    proc = subprocess.run([sys.executable, "bench/scale.py", "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=460)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    # A row per study size, each read with its ratio to Optuna's.
    for size in ("325", "1,025"):
        assert re.search(rf"^\| {size} +\| [\d.]+ s +\| [\d.]+ s +(\| [\d.]+ s \([\d.]+x\) +){{4}}"
                         r"\|$", out, re.MULTILINE), out
    # 8 workers, straight and through a pool of 4: all ran, no error, nothing lost or doubled.
    for via in ("PostgreSQL", "PgBouncer pool 4"):
        assert re.search(rf"^\| 8 +\| {via} +\| 24 +\| [\d.]+ s +\| .+\| none +\| 0 +\| 0 +\|",
                         out, re.MULTILINE), out
