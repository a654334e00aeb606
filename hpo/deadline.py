"""A trial's time limit: stop the objective, and replace the worker if it will not stop.

A hung objective (a dead data loader, a deadlocked collective, an endless loop) holds its
worker forever while the heartbeat says all is well. Past the limit, in two steps:

1. **Ask**: SIGALRM, sent to the main thread (where the objective runs), raises
   :class:`~hpo.failures.TrialTimeout` at the objective's next Python bytecode, which also
   interrupts a ``time.sleep`` or a blocking read. The worker records the trial as
   ``timeout`` and goes on to the next one, in the same process, like after any failure.
2. **Replace**: an objective that does not yield within the grace period
   (``$HPO_TIMEOUT_GRACE``) is stuck in C code, or swallowed the exception. A watchdog thread
   then records the trial as ``timeout`` itself and replaces the worker process with a fresh
   one (``exec`` of the same command line: same pid, so a supervisor's handle on it, or a
   shell's, stays valid, and nothing of the stuck objective survives, GPU memory included).

Why not only one of them: a thread cannot be killed in Python, and killing the process
first would throw away a worker (and a CUDA context, seconds to rebuild) for what is
usually a ``sleep`` or a slow step that stops at once when asked. Why not run every
objective in a child process: the trial's storage handle, the heartbeat and the GPU memory
would all have to cross a process boundary on every trial, and a checkpointing objective
would pay for it on every step; the timeout is rare, the trial is not.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from hpo.failures import TrialTimeout

# Code that must not be interrupted halfway: a lock or a transaction could be left behind
# (a journal file's lock stalls every worker for 30 s until Optuna force-releases it).
_STORAGE_CODE = (f"{os.sep}optuna{os.sep}", f"{os.sep}sqlalchemy{os.sep}", f"{os.sep}psycopg2")
RETRY_SECONDS = 0.05  # how soon a signal that arrived inside storage code is delivered again


def in_storage_code(frame: FrameType | None) -> bool:
    """Whether the interrupted frame, or one of its callers, is inside a storage library."""
    while frame is not None:
        if any(part in frame.f_code.co_filename for part in _STORAGE_CODE):
            return True
        frame = frame.f_back
    return False


class Deadline:
    """``with Deadline(seconds, on_stuck=...):`` around the objective; see the module docstring.

    ``on_stuck`` runs in the watchdog thread once the objective has ignored the timeout for
    ``grace`` seconds; it must record the trial and replace (or end) the process. Whoever
    ends the trial first (the objective returning, or the watchdog) owns recording it: the
    other never writes.
    """

    def __init__(self, seconds: float | None, *, grace: float,
                 on_stuck: Callable[[], Any]):
        self.seconds = seconds
        self.grace = grace
        self._on_stuck = on_stuck
        self._ended = threading.Event()
        self._owner = threading.Lock()  # held by whoever records the trial's end
        self._armed = False  # SIGALRM raises only while the objective runs
        self._thread: threading.Thread | None = None
        self._previous: Any = None
        self.expired = False

    def __enter__(self) -> Deadline:
        if self.seconds is None:
            return self
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("a trial timeout needs the objective in the main thread")
        global _current
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        self._previous = None if previous is _on_alarm else previous
        _current = self
        self._armed = True
        main = threading.main_thread().ident
        assert main is not None  # it is running: this is it
        self._main = main
        self._thread = threading.Thread(target=self._watch, name="hpo-deadline", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.seconds is None:
            return
        self._armed = False
        owner = self._owner.acquire(blocking=False)
        self._ended.set()
        if not owner:
            # The watchdog is recording the timeout and replacing this process; the result
            # this objective produced after all must not be written as well.
            threading.Event().wait()
        assert self._thread is not None
        self._thread.join()
        if self._previous not in (None, signal.SIG_DFL):
            signal.signal(signal.SIGALRM, self._previous)  # the program's own alarm handler

    def _watch(self) -> None:
        assert self.seconds is not None
        if self._ended.wait(self.seconds):
            return
        self.expired = True
        self._signal_main()
        if self._ended.wait(self.grace):
            return
        if not self._owner.acquire(blocking=False):
            return  # the objective ended just now and its worker is recording it
        self._on_stuck()

    def _signal_main(self) -> None:
        # To the main thread itself: a process-wide signal could be taken by another
        # thread, and the main thread's sleep or read would not be interrupted.
        if self._armed:
            signal.pthread_kill(self._main, signal.SIGALRM)

    def _alarm(self, frame: FrameType | None) -> None:
        if not self._armed:
            return  # a late signal: the trial has ended
        if in_storage_code(frame):
            # Inside a storage call: ask again in a moment, once it has returned.
            threading.Timer(RETRY_SECONDS, self._signal_main).start()
            return
        self._armed = False
        raise TrialTimeout(f"the trial ran past its time limit of {self.seconds:g}s")


# Where SIGALRM had its default action, the handler stays installed after the trial: a
# signal still on its way when a trial ended (the retry of one that arrived in storage code)
# must find a handler that ignores it, never the default action, which ends the process. A
# handler of the program's own is put back.
_current: Deadline | None = None


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    if _current is not None:
        _current._alarm(frame)
