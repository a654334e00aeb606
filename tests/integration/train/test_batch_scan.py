"""hpo batch-scan: doubling, a memory cap on CPU, the table, the recommendation, the plot."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from conftest import ROOT, hpo_cli

from hpo.train.batch_scan import Row, parse_memory, recommend

STUDY = ROOT / "studies" / "digits_optimizer.py"


def test_scan_on_cpu_under_a_memory_cap_prints_a_table_a_recommendation_and_a_plot(tmp_path):
    plot = tmp_path / "scan.svg"
    result = hpo_cli("batch-scan", STUDY, "--max-memory", "300KB", "--steps", "3", "--threads",
                     "1", "--set", "optimizer=adam", "--plot", plot, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"^batch size\s+examples/s\s+vs half\s+memory \(est\.\)\s+note$", out, re.M)
    sizes = [int(m) for m in re.findall(r"^\s+(\d+)\s", out, re.M)]
    assert sizes[:5] == [8, 16, 32, 64, 128]  # doubling from --start 8
    # The estimate grows with the batch; the scan stops at the first size over the cap.
    capped = r"^\s+256\s+-\s+-\s+[\d.]+ KB\s+over the 300\.0 KB memory cap$"
    assert re.search(capped, out, re.M), out
    assert len(re.findall(r"^\s+\d+\s+[\d,]+\s", out, re.M)) == 5  # five sizes measured
    recommended = int(re.search(r"^recommendation: batch_size=(\d+), ", out, re.M).group(1))
    assert recommended in sizes[:5]
    assert "optimizer=adam" in result.stderr  # --set reached the config
    svg = ET.parse(plot).getroot()
    assert svg.tag.endswith("svg") and len(svg.findall("{http://www.w3.org/2000/svg}circle")) == 5


@pytest.mark.parametrize("args, message", [
    (["--max-memory", "lots"], "--max-memory: cannot read 'lots'; give a size such as 512MB"),
    (["--set", "nosuch=1"], "--set nosuch: not a hyperparameter of study 'digits-optimizer-v1'"),
    (["--set", "optimizer=rmsprop"], "optimizer must be one of"),
    (["--device", "gpu"], "--device: cannot read 'gpu'; give cpu, cuda or cuda:N"),
    (["--min-speedup", "0.5"], "--min-speedup must be above 1"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = hpo_cli("batch-scan", STUDY, *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "batch-scan.svg").exists()


def test_a_study_without_an_hpo_train_objective_is_refused(tmp_path, study_file):
    result = hpo_cli("batch-scan", study_file(), cwd=tmp_path)
    assert result.returncode == 2
    assert "batch-scan needs the study's model and data, but its objective is 'objective'; " \
           "define it as objective=hpo.train.objective(model, data)" in result.stderr


def rows(*throughputs):
    out = [Row(8 * 2**i, t) for i, t in enumerate(throughputs)]
    for previous, row in zip(out, out[1:], strict=False):
        row.speedup = row.examples_per_s / previous.examples_per_s
    return out


def test_recommendation_is_the_largest_size_that_still_scales():
    assert recommend(rows(100, 190, 370, 500, 520), 1.7) == (32, 64)
    assert recommend(rows(100, 120, 130), 1.7) == (8, 16)  # never scaled: the smallest
    assert recommend(rows(100, 200, 400), 1.7) == (32, None)  # scaled until memory ran out
    assert recommend([Row(8, stop="out of memory")], 1.7) == (None, None)


def test_memory_sizes():
    assert parse_memory("512MB") == 512_000_000
    assert parse_memory("2GiB") == 2 * 2**30
    assert parse_memory("1e6") == 1_000_000
