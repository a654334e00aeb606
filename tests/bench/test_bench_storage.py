"""Keeps bench/storage.py from rotting: its --quick run must work and show a clean journal."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT


def test_storage_benchmark_quick_run():
    proc = subprocess.run([sys.executable, "bench/storage.py", "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^journal vs sqlite: [\d.]+x trials/s, \d+ vs \d+ errors$", proc.stdout,
                     re.MULTILINE), proc.stdout
    # 3 workers x 15 trials: every journal trial COMPLETE, no storage error.
    assert re.search(r"^journal\s+3\s+45/45\s+0\s", proc.stdout, re.MULTILINE), proc.stdout
