"""Keeps bench/trainer.py from rotting: its --quick run prints both loops and their ratio."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT


def test_trainer_benchmark_quick_run():
    proc = subprocess.run([sys.executable, "bench/trainer.py", "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert re.search(r"^bare loop\s+[\d,]+ examples/s \(median\)$", out, re.M), out
    assert re.search(r"^hpo\.train\s+[\d,]+ examples/s \(median\)$", out, re.M), out
    line = re.search(r"^ratio: (\d+\.\d+) \(hpo\.train / bare, median of 3 pairs, "
                     r"[\d.]+ to [\d.]+; goal >= 0\.95\)$", out, re.M)
    ratio = float(line.group(1))
    assert re.search(r"^cpu-time ratio: \d+\.\d+ \(same pairs, [\d.]+ to [\d.]+\)$", out, re.M), out
    # Not the 0.95 goal: a quick run on a shared machine is noisy. This catches a loop that
    # has become grossly slower, e.g. a host sync or a checkpoint on every step.
    assert ratio > 0.6, out


def test_hpo_train_imports_no_torch_until_a_trial_runs():
    code = ("import sys, hpo, hpo.train, hpo.cli; from hpo.train import objective, mlp, "
            "TrainSettings; print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stdout + result.stderr
