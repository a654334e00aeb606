"""hpo.deadline in this process: asking an objective to stop, and the watchdog behind it."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from hpo.deadline import Deadline
from hpo.failures import TrialTimeout


def test_a_sleeping_objective_is_stopped_at_its_limit():
    stuck = []
    started = time.monotonic()
    with pytest.raises(TrialTimeout, match="time limit of 0.3s"):
        with Deadline(0.3, grace=5, on_stuck=lambda: stuck.append(1)):
            time.sleep(30)
    assert time.monotonic() - started < 3
    assert stuck == []  # it yielded: nothing for the watchdog to do


def test_an_objective_that_finishes_in_time_is_left_alone():
    previous = signal.signal(signal.SIGALRM, signal.SIG_DFL)  # as in a worker process
    try:
        with Deadline(5, grace=5, on_stuck=lambda: None) as deadline:
            time.sleep(0.05)
        assert not deadline.expired
        # A late signal, after the trial ended, is ignored: never SIGALRM's default (exit).
        signal.pthread_kill(threading.main_thread().ident, signal.SIGALRM)
        time.sleep(0.05)
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_a_handler_of_the_programs_own_is_put_back():
    def mine(signum, frame):
        pass

    previous = signal.signal(signal.SIGALRM, mine)
    try:
        with Deadline(5, grace=5, on_stuck=lambda: None):
            assert signal.getsignal(signal.SIGALRM) is not mine
        assert signal.getsignal(signal.SIGALRM) is mine
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_an_objective_that_swallows_the_timeout_is_handed_to_the_watchdog():
    stuck = threading.Event()
    deadline = Deadline(0.2, grace=0.3, on_stuck=stuck.set)
    deadline.__enter__()
    asked = 0
    until = time.monotonic() + 10
    try:
        while not stuck.is_set() and time.monotonic() < until:
            try:
                time.sleep(0.05)
            except TrialTimeout:
                asked += 1  # an objective with a bare except around its step
    finally:
        # No __exit__: the watchdog owns this trial's end now (it blocks whoever else
        # would record it); in a worker, on_stuck has replaced the process by then.
        deadline._armed = False
    assert stuck.is_set() and asked == 1


def test_no_limit_is_no_watchdog():
    with Deadline(None, grace=1, on_stuck=lambda: pytest.fail("no limit")) as deadline:
        pass
    assert deadline.expired is False
