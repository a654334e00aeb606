"""The database restarted, down, killing connections, refusing statements (issue 11,
items 2, 7 and 8).

Each test runs one scenario of scenarios.py for real against a throwaway PostgreSQL cluster
of its own and fails with the scenario's whole report. ``HPO_FAULTS_FULL=1`` runs the full
sizes.
"""

from __future__ import annotations

import pytest
from scenarios import check

pytestmark = pytest.mark.timeout(900)


def test_restarts_and_a_killed_postmaster_lose_nothing(tmp_path):
    """(b) pg_ctl restart -m fast twice, -m immediate once, SIGKILL of the postmaster."""
    check("b-restarts", tmp_path)


def test_outage_of_twice_the_grace_reaps_nothing_and_spends_no_retry(tmp_path):
    """(c) Down 8 s with a 4 s grace: no trial reaped, no retry spent, all workers live."""
    check("c-outage", tmp_path)


def test_terminated_backends_every_two_seconds_give_up_no_seat(tmp_path):
    """(d) pg_terminate_backend of every backend every 2 s (20 s; a minute in full)."""
    check("d-terminate", tmp_path)


def test_lock_timeout_fails_at_once_with_the_database_message(tmp_path):
    """(j) Not a connection loss: not retried for HPO_DB_PATIENCE."""
    check("j-lock-timeout", tmp_path)


def test_statement_timeout_fails_at_once_with_the_database_message(tmp_path):
    """(j) The same with a statement_timeout."""
    check("j-statement-timeout", tmp_path)


def test_start_up_with_the_database_down_retries_then_exits_1(tmp_path):
    """(k) Retries with backoff, exits 1 (not 2) when HPO_DB_PATIENCE runs out, and waits
    for a database that comes back in time."""
    check("k-startup", tmp_path)


def test_supervisor_obeys_sigterm_within_10s_while_the_database_is_down(tmp_path):
    """(k) At start-up and in an outage mid-run."""
    check("k-sigterm", tmp_path)
