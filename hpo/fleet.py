"""Worker processes on this machine: one per GPU (or N on a CPU), supervised.

Each worker is a separate ``hpo worker`` process: the same code path a user starts by hand
on another machine, and a crash in one objective (or one CUDA context) never takes the
others down. A GPU worker is pinned with ``CUDA_VISIBLE_DEVICES`` so its objective sees its
GPU as ``cuda:0``. The storage URL reaches the children through the environment, never the
command line, so a password does not show up in ``ps``.

The supervisor restarts a worker that crashes (with exponential backoff), gives up on one
that keeps crashing right after starting (a broken environment will not fix itself), and on
SIGINT/SIGTERM asks every worker to hand its trial back and stop.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo import env
from hpo.errors import HpoError
from hpo.space import SpaceError
from hpo.store import ENV_VAR, kind
from hpo.store.urls import one_off_connection

if TYPE_CHECKING:
    import optuna

    from hpo.study import Study

log = logging.getLogger("hpo.fleet")
GPUS_ENV = "HPO_GPUS"  # overrides discovery: "0,1" or "0:Tesla T4,1:Tesla T4" (tests, odd hosts)
STARTUP_FAILURES = 3
MAX_BACKOFF = 60.0
STOP_SECONDS = 8.0  # then the rest are killed: SIGTERM is obeyed within 10 s, outage or not
# A supervised worker (``hpo worker --supervised``) exits with this when the study is failing
# (its first trials all failed with an error: hpo.worker.StudyFailing). It is not restarted,
# the other workers are stopped, and the supervisor says why, once. Between the supervisor
# and its workers only: hpo run exits 1.
EXIT_STUDY_FAILING = 3


class FleetStopped(HpoError):
    """The supervisor was asked to stop (SIGINT/SIGTERM)."""

    exit_code = 130
    done: int | None = None  # slots done, as last seen before the stop


def discover_gpus() -> dict[str, str]:
    """GPU index -> name, from ``$HPO_GPUS``, else nvidia-smi, else torch; {} if none."""
    override = env.raw(GPUS_ENV)
    if override is not None:
        gpus = {}
        for item in filter(None, (part.strip() for part in override.split(","))):
            index, _, name = item.partition(":")
            gpus[index.strip()] = name.strip() or f"GPU {index.strip()}"
        return gpus
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
        return {i.strip(): n.strip() for i, n in (line.split(",", 1) for line in out.splitlines()
                                                  if "," in line)}
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        import torch
    except ImportError:
        return {}
    # The workers number GPUs in PCI bus order (see seats); so must this, if CUDA is not yet
    # initialized in this process (the order is read then).
    os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    return {str(i): torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())}


@dataclass
class Seat:
    """One worker's place in the fleet: what it runs on, and how it has been doing."""

    label: str
    env: dict[str, str]
    process: subprocess.Popen | None = None
    started: float = 0.0
    restarts: int = 0
    quick_failures: int = 0
    next_start: float = 0.0
    finished: bool = False
    gave_up: bool = False
    exit_codes: list[int] = field(default_factory=list)


def seats(gpus: str | None, workers: int | None, *, gpus_per_trial: int | None = None,
          procs_per_trial: int | None = None) -> list[Seat]:
    """Seats for ``--gpus all|none|0,2``, ``--workers``, ``--gpus-per-trial K`` and
    ``--procs-per-trial K``; bad input raises SpaceError."""
    procs = {} if procs_per_trial is None else {"HPO_PROCS_PER_TRIAL": str(procs_per_trial)}
    if gpus_per_trial is not None and (gpus is None or gpus == "none"):
        raise SpaceError(f"--gpus-per-trial {gpus_per_trial} needs GPUs (hpo workers --gpus "
                         "all); on a CPU, --procs-per-trial K runs K processes per trial")
    if gpus is None:  # hpo run: N workers that inherit this environment
        return [Seat(f"worker {i}", dict(procs)) for i in range(workers or 1)]
    if gpus == "none":
        # Hide every GPU, so a CPU fleet never grabs one by accident.
        return [Seat(f"cpu worker {i}", {"CUDA_VISIBLE_DEVICES": "", "HPO_DEVICE": "cpu",
                                         "HPO_GPU_NAME": "none", **procs})
                for i in range(workers or 1)]
    if workers is not None:
        raise SpaceError(f"--workers {workers} with --gpus {gpus}: a GPU fleet runs one worker "
                         "per GPU; use --gpus none --workers N for CPU workers")
    found = discover_gpus()
    if gpus == "all":
        if not found:
            raise SpaceError("--gpus all: no GPU found (nvidia-smi and torch see none); "
                             "on a CPU machine use --gpus none --workers N")
        chosen = list(found)
    else:
        chosen = [g.strip() for g in gpus.split(",") if g.strip()]
        if not chosen or not all(g.isdigit() for g in chosen):
            raise SpaceError(f"--gpus {gpus!r}: expected all, none, or GPU indices like 0,2")
        missing = [g for g in chosen if g not in found]
        if missing:
            have = ", ".join(found) if found else "none"
            raise SpaceError(f"--gpus {gpus}: GPU {', '.join(missing)} does not exist; "
                             f"this machine has GPU indices: {have}")
        if len(set(chosen)) != len(chosen):
            raise SpaceError(f"--gpus {gpus}: a GPU is listed twice; one worker per GPU")
    if gpus_per_trial is not None and gpus_per_trial > 1:
        return _multi_gpu_seats(gpus, chosen, found, gpus_per_trial, procs_per_trial)
    # nvidia-smi numbers GPUs in PCI bus order, CUDA (and so CUDA_VISIBLE_DEVICES) by default
    # fastest first: on a machine with mixed GPUs, index 0 would be two different cards.
    return [Seat(f"GPU {g} ({found[g]})", {"CUDA_VISIBLE_DEVICES": g, "HPO_GPU_NAME": found[g],
                                           "CUDA_DEVICE_ORDER": "PCI_BUS_ID", **procs})
            for g in chosen]


def _multi_gpu_seats(gpus: str, chosen: list[str], found: dict[str, str], per_trial: int,
                     procs: int | None) -> list[Seat]:
    """One worker per group of ``per_trial`` GPUs, in order: 0,1 then 2,3..."""
    if len(chosen) % per_trial:
        divisors = [str(k) for k in range(1, len(chosen) + 1) if len(chosen) % k == 0]
        raise SpaceError(f"--gpus-per-trial {per_trial} does not divide the {len(chosen)} "
                         f"GPU(s) of --gpus {gpus} ({','.join(chosen)}); use one of "
                         f"{', '.join(divisors)}")
    if procs not in (None, 1, per_trial):
        raise SpaceError(f"--procs-per-trial {procs} with --gpus-per-trial {per_trial}: a "
                         f"trial runs one process per GPU ({per_trial}) or one process that "
                         "sees them all (1)")
    out = []
    for start in range(0, len(chosen), per_trial):
        group = chosen[start:start + per_trial]
        names = [found[g] for g in group]
        name = f"{len(names)} x {names[0]}" if len(set(names)) == 1 else ", ".join(names)
        out.append(Seat(f"GPUs {','.join(group)} ({name})", {
            "CUDA_VISIBLE_DEVICES": ",".join(group), "HPO_GPU_NAME": name,
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
            "HPO_DEVICES": ",".join(f"cuda:{i}" for i in range(per_trial)),
            "HPO_PROCS_PER_TRIAL": str(per_trial if procs is None else procs)}))
    return out


class _Polled:
    """A value read from storage every second in a thread of its own: the supervisor's loop
    never waits on the database, so it stays responsive (restarts, SIGTERM) through an
    outage while the read waits for the database to come back."""

    def __init__(self, read: Callable[[], Any], initial: Any = 0):
        self.value = initial
        self._read = read
        self._stop = threading.Event()
        threading.Thread(target=self._run, name="hpo-progress", daemon=True).start()

    def _run(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        while not self._stop.is_set():
            try:
                self.value = self._read()
            except Exception as e:  # noqa: BLE001 - the next poll tries again
                log.debug("progress read failed: %s", e)
            self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()


class Fleet:
    """Start, watch, restart and stop the workers for one study."""

    def __init__(self, study_file: Path, url: str, budget: int, members: list[Seat], *,
                 quiet: bool = True, options: Sequence[str] = (),
                 definition: Study | None = None):
        self._command = [sys.executable, "-m", "hpo", "worker", str(study_file),
                         "--trials", str(budget), "--supervised", *options,
                         *(["--quiet"] if quiet else [])]
        self._env = {**os.environ, ENV_VAR: url}
        self._budget = budget
        self._definition = definition  # for the progress bar's counts
        self.seats = members
        self.failing = False  # a worker found the study failing (EXIT_STUDY_FAILING)

    def _start(self, seat: Seat) -> None:
        # A session of its own: a Ctrl-C in the terminal reaches only the supervisor, which
        # then stops each worker exactly once.
        seat.process = subprocess.Popen(self._command, env={**self._env, **seat.env},
                                        start_new_session=True)
        seat.started = time.monotonic()

    def _check(self, seat: Seat, now: float) -> None:
        if seat.finished or seat.gave_up:
            return
        if seat.process is None:
            if now >= seat.next_start:
                self._start(seat)
            return
        code = seat.process.poll()
        if code is None:
            return
        seat.process = None
        seat.exit_codes.append(code)
        if code == 0:
            seat.finished = True
            return
        if code == EXIT_STUDY_FAILING:
            seat.finished = True
            self.failing = True
            return
        startup = env.startup_seconds()
        # A worker that keeps failing right after it starts has a broken environment; one
        # killed from outside (a negative code: a signal) or stopped by a database outage
        # has not, and must not lose its seat for it.
        quick = now - seat.started < startup and code > 0 and self._storage_reachable()
        seat.quick_failures = seat.quick_failures + 1 if quick else 0
        if seat.quick_failures >= STARTUP_FAILURES:
            seat.gave_up = True
            log.error("giving up on %s: it crashed %d times within %.0fs of starting (last exit "
                      "code %d); its error is above", seat.label, seat.quick_failures,
                      startup, code)
            return
        delay = min(MAX_BACKOFF, 2.0 ** seat.restarts)
        seat.restarts += 1
        seat.next_start = now + delay
        log.warning("worker on %s exited with code %d; restarting it in %.0fs", seat.label, code,
                    delay)

    def _storage_reachable(self) -> bool:
        url = self._env[ENV_VAR]
        if kind(url) != "postgresql":
            return True
        import sqlalchemy

        try:
            with one_off_connection(url, timeout=3) as conn:
                conn.execute(sqlalchemy.text("SELECT 1"))
            return True
        except sqlalchemy.exc.SQLAlchemyError:
            return False

    def run(self, study: optuna.Study) -> bool:
        """Supervise until every seat is finished or given up; True if the budget is done."""
        from tqdm import tqdm

        from hpo.store.budget import progress

        def stop_on(signum: int, frame: object) -> None:
            raise FleetStopped(signal.Signals(signum).name)

        previous = {s: signal.signal(s, stop_on) for s in (signal.SIGINT, signal.SIGTERM)}
        # The total grows as an --until-decided controller lays out its rounds.
        total = progress(study, self._budget)[1]
        bar = tqdm(total=total, unit="trial", desc="trials", file=sys.stderr,
                   dynamic_ncols=True, mininterval=1.0)
        shown = _Polled(lambda: self._progress(study), initial=(0, "", total))
        try:
            while not all(s.finished or s.gave_up for s in self.seats):
                now = time.monotonic()
                for seat in self.seats:
                    self._check(seat, now)
                if self.failing:
                    # Its first trials all failed with an error: stop the others now, their
                    # trials handed back, rather than let each find out after its trial.
                    self.stop()
                    break
                bar.n, postfix, bar.total = shown.value
                bar.set_postfix_str(postfix, refresh=False)
                bar.refresh()
                time.sleep(0.5)
            # The workers are done: the last word is read now, not from the last poll.
            bar.n, postfix, bar.total = self._progress(study)
            bar.set_postfix_str(postfix, refresh=False)
            bar.refresh()
        except FleetStopped as stopped:
            self.stop()
            # What the last poll saw: the database may be down, and reading it now would
            # keep a stopped supervisor waiting for it.
            stopped.done = shown.value[0]
            raise
        finally:
            shown.stop()
            bar.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
        done, total = progress(study, self._budget)
        return not self.failing and done >= total

    def _progress(self, study: optuna.Study) -> tuple[int, str, int]:
        """Slots done, and how they ended with the best value so far, for the bar: one
        aggregate read on PostgreSQL (TrialQueue.outcomes), however large the study; and the
        total (the slots an --until-decided controller has laid out so far)."""
        from hpo.store.budget import planned_budget, until_decided
        from hpo.store.queue import queue_for

        outcomes = queue_for(study).outcomes(self._budget)
        c = outcomes.counts
        text = (f"{c.complete} complete, {c.pruned} pruned, {c.infeasible} infeasible, "
                f"{c.failed} failed")
        if self._definition is not None:
            best = outcomes.low if self._definition.direction == "minimize" else outcomes.high
            if best is not None:
                text += f", best {self._definition.metric} {best:.4g}"
        total = self._budget if until_decided(study) is None else planned_budget(study)
        return c.finished, text, total

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Ask every worker to hand its trial back and exit; kill what is left after timeout."""
        running = [s.process for s in self.seats if s.process is not None]
        for p in running:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in running:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not stop within %.0fs; killing it (its trial "
                          "will be reaped and retried)", p.pid, timeout)
                p.kill()
                p.wait()
