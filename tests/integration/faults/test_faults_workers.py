"""Workers that die, stop, live in a container, or are not hpo at all (issue 11, items 2-4, 9).

Each test runs one scenario of scenarios.py for real (its docstring says what it does) and
fails with the scenario's whole report: the audit of the storage (check.py) and every
expectation that did not hold. ``HPO_FAULTS_FULL=1`` runs the full sizes.
"""

from __future__ import annotations

import pytest
from scenarios import check

pytestmark = pytest.mark.timeout(900)


def test_sigkilled_workers_lose_nothing_and_no_seat_is_given_up(tmp_path):
    """(a) A random worker of 8 SIGKILLed every few seconds (4 times; 10 in full)."""
    check("a-sigkill", tmp_path)


def test_sigstopped_worker_past_the_grace_is_retried_and_its_late_result_dropped(tmp_path):
    """(f) Stopped until its trial is reaped and retried elsewhere, then SIGCONT: no
    duplicate, no crash, one warning."""
    check("f-sigstop", tmp_path)


def test_workers_killed_in_a_pid_namespace_do_not_hang_the_next_run(tmp_path):
    """(g) Their pids exist on the host: judged by pid and process start time, the next
    run on the host finishes, and hpo status flags them."""
    check("g-pidns", tmp_path)


def test_pid_namespace_without_its_own_proc(tmp_path):
    """(g) The same, the namespace seeing the host's /proc (no --mount-proc)."""
    check("g-pidns-nomount", tmp_path)


def test_pid_namespace_on_postgresql(tmp_path):
    """(g) The same on PostgreSQL, with a grace period too long to be what frees them."""
    check("g-pidns-pg", tmp_path)


def test_foreign_optuna_client_killed_holding_a_slot(tmp_path):
    """(h) A plain study.optimize takes a laid-out slot and is SIGKILLed: hpo status names
    it, it is reaped after the grace, and hpo completes the slot."""
    check("h-foreign", tmp_path)
