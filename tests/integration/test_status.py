"""``hpo status`` on a live run: progress, per-value states, running and stale trials."""

from __future__ import annotations

import os
import signal
import socket

import pytest
from conftest import hpo_cli
from optuna.trial import TrialState
from test_fleet import _try_load, start_fleet, wait_for, write_study


@pytest.mark.postgres
def test_status_shows_running_trials_heartbeats_and_stale_ones(tmp_path, pg_url):
    path = write_study(tmp_path, steps=300)
    env = {"HPO_STORAGE": pg_url, "STEP_SECONDS": "0.1", "HPO_HEARTBEAT_INTERVAL": "1",
           "HPO_CHECKPOINT_DIR": str(tmp_path / "c")}
    fleet = start_fleet(["run", path, "--workers", "2", "--trials", "6"], env, tmp_path)
    try:
        study = wait_for(lambda: _try_load(pg_url), what="the study")
        def two_running():
            running = [t for t in study.get_trials(states=(TrialState.RUNNING,))
                       if t.user_attrs.get("worker_pid") and t.intermediate_values]
            return running if len(running) == 2 else None
        running = wait_for(two_running, what="two running trials")
        result = hpo_cli("status", path, env={"HPO_STORAGE": pg_url})
        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert "budget: 0 of 6 trials done (0%), ETA unknown until a trial finishes" in out
        assert "arm=a" in out and "arm=b" in out
        lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("#")}
        for t in running:
            line = lines[f"#{t.number}"]
            assert socket.gethostname() in line and str(t.user_attrs["worker_pid"]) in line
            assert "s ago" in line and "STALE" not in line  # a fresh heartbeat
        # Kill the fleet outright: its trials stay RUNNING, and status calls them stale.
        fleet.kill()
        for t in running:
            os.kill(t.user_attrs["worker_pid"], signal.SIGKILL)
        wait_for(lambda: all(_gone(t.user_attrs["worker_pid"]) for t in running), what="exit")
        out = hpo_cli("status", path, env={"HPO_STORAGE": pg_url}).stdout
        assert "STALE" in out
        assert "stale: 2 trial(s) whose worker is gone" in out
    finally:
        if fleet.poll() is None:
            fleet.kill()


def _gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_status_of_a_missing_study_is_exit_2_and_writes_nothing(tmp_path, study_file):
    result = hpo_cli("status", study_file(), "--storage", tmp_path / "none.log")
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    assert not (tmp_path / "none.log").exists()
