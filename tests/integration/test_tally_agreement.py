"""``hpo run``'s summary, ``hpo status`` and ``hpo report`` count the same trials the same way,
after a worker died mid-trial (its trial retried) and seed re-runs were added and run."""

from __future__ import annotations

import os
import re
import signal

import optuna
import pytest
from conftest import hpo_cli
from optuna.trial import TrialState
from test_fleet import start_fleet, wait_for

from hpo.store import open_storage
from hpo.tables import COUNT_COLUMNS

optuna.logging.set_verbosity(optuna.logging.WARNING)
NAME = "synthetic-v1"
PER_VALUE = 3  # 6 design slots


def counts(text: str) -> dict[str, dict[str, str]]:
    """The per-value count table in a command's output: label -> column -> cell."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        cells = _cells(line)
        if cells[:2] == ["scientific value", "finished"]:
            header, table = cells, {}
            for row in lines[i + 2:]:  # past the rule under the header
                if not row.strip():
                    break
                values = _cells(row)
                table[values[0]] = dict(zip(header, values, strict=False))
            return {label: {c: row[c] for c in COUNT_COLUMNS} for label, row in table.items()}
    raise AssertionError(f"no per-value count table in:\n{text}")


def _cells(line: str) -> list[str]:
    if line.startswith("|"):
        return [c.strip() for c in line.strip().strip("|").split("|")]
    return re.split(r"\s{2,}", line.strip())


def _load(url):
    try:
        return optuna.load_study(study_name=NAME, storage=open_storage(url))
    except Exception:  # noqa: BLE001 - not created yet
        return None


@pytest.mark.postgres
def test_summary_status_and_report_agree_after_a_retry_and_seed_reruns(tmp_path, study_file,
                                                                         pg_url):
    path = study_file(per_value=PER_VALUE, sleep=2.0)
    env = {"HPO_STORAGE": pg_url}
    fleet = start_fleet(["run", path, "--workers", "2"], env, tmp_path)
    try:
        study = wait_for(lambda: _load(pg_url), what="the study")
        victim = wait_for(lambda: next(
            (t for t in study.get_trials(states=(TrialState.RUNNING,))
             if t.user_attrs.get("worker_pid") and t.params), None), what="a running trial")
        os.kill(victim.user_attrs["worker_pid"], signal.SIGKILL)  # mid-trial: in its sleep
        first, err = fleet.communicate(timeout=240)
    finally:
        if fleet.poll() is None:
            fleet.kill()
    assert fleet.returncode == 0, err
    trials = _load(pg_url).get_trials()
    assert trials[victim.number].state == TrialState.FAIL
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].user_attrs["slot"] == victim.user_attrs["slot"]
    retried_label = f"optimizer={victim.params['optimizer']}"
    run_counts = counts(first)
    assert run_counts[retried_label]["retried"] == "1"
    assert all(c["finished"] == c["complete"] == str(PER_VALUE) for c in run_counts.values())

    seeds = hpo_cli("seeds", path, "--top", "1", "--repeats", "2", env=env)
    assert seeds.returncode == 0, seeds.stderr
    assert "enqueued 4 seed re-run(s)" in seeds.stderr
    # The re-runs wait: every design slot is still done (this said "4 of 6" before).
    waiting = hpo_cli("status", path, env=env)
    assert waiting.returncode == 0, waiting.stderr
    assert "budget: 6 of 6 trials done (100%)" in waiting.stdout
    assert {c["seed re-runs"] for c in counts(waiting.stdout).values()} == {"0/2"}

    rerun = hpo_cli("run", path, "--workers", "2", env=env, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    status = hpo_cli("status", path, env=env)
    assert status.returncode == 0, status.stderr
    report = hpo_cli("report", path, "--no-dashboard", "--out", tmp_path / "report", env=env)
    assert report.returncode == 0, report.stderr

    summary, shown, reported = counts(rerun.stdout), counts(status.stdout), counts(report.stdout)
    assert summary == shown == reported, (rerun.stdout, status.stdout, report.stdout)
    assert set(summary) == {"optimizer=sgd", "optimizer=adam"}
    for label, c in summary.items():
        # Every slot done, each counted once: not the retried attempt, not the re-runs.
        assert c["finished"] == c["complete"] == str(PER_VALUE), (label, c)
        assert c["failed"] == c["running"] == c["waiting"] == c["pruned"] == "0"
        assert c["retried"] == ("1" if label == retried_label else "0")
        assert c["seed re-runs"] == "2/2"
    assert "budget: 6 of 6 trials done (100%), finished" in status.stdout
    assert "6 of 6 design trials finished (6 complete, 0 pruned, 0 infeasible" in report.stdout
    assert "4 of 4 seed re-runs complete" in report.stdout
    # The report's analysis drew on the design trials only: three per value.
    assert f"| {retried_label} | {PER_VALUE} |" in report.stdout
