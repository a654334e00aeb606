"""One trial in several processes: ``--procs-per-trial K`` and ``--gpus-per-trial K``.

The worker that claimed the trial does not train. It hosts the rendezvous store, starts K
*rank* processes, answers rank 0's calls that reach the study (``report``, ``set_attr``,
``record_curves``) over a pipe, and watches them. Every rank runs the objective, as under
``torchrun``: with ``torch.distributed`` initialized (NCCL on CUDA, gloo on CPU), the
``torchrun`` environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``...) that
Lightning and Accelerate read, and its own device, ``ctx.devices[rank]``. Checkpoints are
files: rank 0 writes them, every rank reads them when the trial resumes. The trial's value is
rank 0's.

A rank is a fresh ``python -m hpo.train.distributed`` process that loads the study file, as a
worker does; a study with no file (``hpo.run(Study(...))`` in a notebook) forks its ranks.

Nothing may hang. The worker is the watchdog:

* a rank that dies without an outcome (a signal, an exit) ends the attempt with
  :class:`RankDied`, and the other ranks are stopped at once; the worker records it as a
  dead worker's trial is recorded (failed as infrastructure, retried up to
  ``$HPO_MAX_RETRY`` times, resuming from its checkpoint) and goes on;
* a rank that raises fails the trial with its error: the first error wins, because the others'
  are usually about the peer that went away;
* when rank 0 is done (a value, pruned, an error) the others have ``GRACE_SECONDS`` to end,
  then are killed: rank 0 alone decides pruning, and the others need not notice;
* when the worker is stopped the ranks are killed (the trial goes back to the queue), and when
  the worker dies they die with it (``PR_SET_PDEATHSIG``, and a thread that watches the parent);
* a collective that waits longer than ``$HPO_DIST_TIMEOUT`` seconds fails in the ranks.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from hpo import env
from hpo.context import Config, Context
from hpo.errors import InfrastructureError

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

log = logging.getLogger("hpo.distributed")

GRACE_SECONDS = 10.0  # for the other ranks to end once rank 0 has its outcome
STOP_SECONDS = 3.0  # between SIGTERM and SIGKILL when stopping ranks
CALLS = ("report", "set_attr", "record_curves")  # rank 0's calls the worker makes for it


class RankDied(InfrastructureError):
    """A process of a several-process trial died without an outcome (killed, crashed)."""


@dataclass(frozen=True)
class RankSpec:
    """What one rank needs to run the trial; sent to it over its pipe."""

    rank: int
    world_size: int
    devices: list[str]
    store_port: int
    timeout: float
    parent_pid: int
    study_file: str | None
    config: Config
    seed: int
    trial_number: int
    direction: str
    metric: str
    checkpoint_dir: str

    @property
    def device(self) -> str:
        return self.devices[self.rank]

    def environment(self) -> dict[str, str]:
        """The ``torchrun`` variables, and the device, for this rank's process."""
        variables = {
            "RANK": self.rank, "LOCAL_RANK": self.rank, "GROUP_RANK": 0, "ROLE_RANK": self.rank,
            "WORLD_SIZE": self.world_size, "LOCAL_WORLD_SIZE": self.world_size,
            "ROLE_WORLD_SIZE": self.world_size, "GROUP_WORLD_SIZE": 1,
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": self.store_port,
            "TORCHELASTIC_RUN_ID": f"hpo-trial-{self.trial_number}",
            "HPO_DEVICE": self.device, "HPO_DEVICES": ",".join(self.devices),
        }
        out = {k: str(v) for k, v in variables.items()}
        if sys.platform.startswith("linux") and "GLOO_SOCKET_IFNAME" not in os.environ:
            out["GLOO_SOCKET_IFNAME"] = "lo"  # one machine: never depend on its hostname's DNS
        return out


def run(objective: Callable[[Config, Context], Any], config: Config, ctx: Context, *,
        study_file: str | None = None, world_size: int | None = None) -> Any:
    """Call the objective: here when the trial has one process, else in ``world_size`` ranks.

    Returns rank 0's value; raises ``optuna.TrialPruned`` if rank 0 was pruned, the first
    rank's error if one raised, and :class:`RankDied` if a rank died.
    """
    world = env.procs_per_trial() if world_size is None else world_size
    if world == 1:
        return objective(config, ctx)
    return _Group(objective, config, ctx, world, study_file).run()


# --- the worker's side ----------------------------------------------------------------------


@dataclass
class _Rank:
    rank: int
    conn: Connection
    process: subprocess.Popen | BaseProcess
    outcome: tuple[Any, ...] | None = None
    closed: bool = False

    @property
    def pid(self) -> int:
        return int(cast(int, self.process.pid))

    def exit_code(self) -> int | None:
        if isinstance(self.process, subprocess.Popen):
            return self.process.poll()
        return self.process.exitcode

    def signal(self, signum: int) -> None:
        if self.exit_code() is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def join(self, timeout: float) -> None:
        if isinstance(self.process, subprocess.Popen):
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        else:
            self.process.join(timeout)


@dataclass
class _Group:
    objective: Callable[[Config, Context], Any]
    config: Config
    ctx: Context
    world_size: int
    study_file: str | None
    ranks: list[_Rank] = field(default_factory=list)
    failures: list[tuple[int, BaseException, str]] = field(default_factory=list)

    def run(self) -> Any:
        from datetime import timedelta

        import torch.distributed as dist

        timeout = env.dist_timeout()
        devices = self._devices()
        # Port 0: the system picks a free one, so trials on one machine never collide.
        store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False,
                              timeout=timedelta(seconds=timeout))
        try:
            for rank in range(self.world_size):
                self.ranks.append(self._start(RankSpec(
                    rank=rank, world_size=self.world_size, devices=devices,
                    store_port=store.port, timeout=timeout, parent_pid=os.getpid(),
                    study_file=self.study_file, config=self.config, seed=self.ctx.seed,
                    trial_number=self.ctx.trial_number, direction=self.ctx.direction,
                    metric=self.ctx.metric, checkpoint_dir=str(self.ctx.checkpoint_dir),
                )))
            return self._supervise()
        finally:
            self._stop()
            del store

    def _devices(self) -> list[str]:
        devices = self.ctx.devices
        if len(devices) == self.world_size:
            return devices
        if len(devices) == 1 and devices[0].startswith("cuda"):
            # One GPU per rank, as torchrun's LOCAL_RANK picks them: a Slurm task given K
            # GPUs runs `hpo worker --procs-per-trial K` without naming them.
            return [f"cuda:{rank}" for rank in range(self.world_size)]
        if len(devices) == 1:
            return devices * self.world_size  # K processes on the CPU
        raise InfrastructureError(
            f"{self.world_size} processes per trial but {len(devices)} devices "
            f"({', '.join(devices)}): give one device per process, or one for all")

    def _start(self, spec: RankSpec) -> _Rank:
        mine, theirs = multiprocessing.Pipe(duplex=True)
        process: subprocess.Popen | BaseProcess
        if spec.study_file is not None:
            process = subprocess.Popen(
                [sys.executable, "-m", "hpo.train.distributed", "--fd", str(theirs.fileno())],
                env={**os.environ, **spec.environment()}, pass_fds=(theirs.fileno(),),
                # Its own session: a Ctrl-C reaches the worker, which stops its ranks.
                start_new_session=True)
        else:
            forking = multiprocessing.get_context("fork")
            process = forking.Process(target=_forked_rank, args=(theirs, spec, self.objective),
                                      name=f"hpo-rank-{spec.rank}")
            process.start()
        theirs.close()  # ours is closed when the process is gone: its end reads EOF then
        mine.send(spec)
        return _Rank(spec.rank, mine, process)

    def _supervise(self) -> Any:
        import optuna

        by_conn = {id(r.conn): r for r in self.ranks}
        main = self.ranks[0]
        decide_at = None  # after an error, a moment to see whether a peer's death caused it
        while True:
            open_conns = [r.conn for r in self.ranks if not r.closed]
            if open_conns:
                for conn in sorted(wait(open_conns, timeout=0.2),
                                   key=lambda c: by_conn[id(c)].rank):
                    self._receive(by_conn[id(conn)])
            else:
                time.sleep(0.2)
            if main.outcome is not None and main.outcome[0] != "failed" and not self.failures:
                self._let_the_others_end()
                if main.outcome[0] == "pruned":
                    raise optuna.TrialPruned(main.outcome[1])
                return main.outcome[1]
            dead = [r for r in self.ranks if self._ended(r) and r.outcome is None]
            if not dead and not self.failures:
                continue
            if not dead and decide_at is None:
                decide_at = time.monotonic() + 1.0
            if not dead and time.monotonic() < cast(float, decide_at):
                continue
            if dead:
                first = dead[0]
                raise RankDied(
                    f"rank {first.rank} of {self.world_size} (pid {first.pid}) died: "
                    f"{_how(cast(int, first.exit_code()))}; the trial's other processes were "
                    "stopped")
            rank, error, remote = self.failures[0]
            raise error from _RemoteTraceback(f"in rank {rank} of {self.world_size}:\n{remote}")

    def _ended(self, rank: _Rank) -> bool:
        """Whether the rank's process is gone, after reading what it sent before it went."""
        if rank.exit_code() is None:
            return False
        while not rank.closed and rank.conn.poll():
            self._receive(rank)
        return True

    def _receive(self, rank: _Rank) -> None:
        try:
            message = rank.conn.recv()
        except (EOFError, OSError):
            rank.closed = True  # the process ended: its exit code says how
            return
        if message[0] == "call" and rank.rank == 0 and message[1] in CALLS:
            rank.conn.send(self._call(message[1], message[2]))
        elif message[0] == "outcome":
            rank.outcome = message[1]
            if message[1][0] == "failed" and (rank.rank == 0 or self.ranks[0].outcome is None):
                self.failures.append((rank.rank, message[1][1], message[1][2]))
        else:
            log.warning("rank %d sent an unexpected message %r", rank.rank, message[:2])

    def _call(self, name: str, args: tuple[Any, ...]) -> tuple[str, Any]:
        try:
            getattr(self.ctx, name)(*args)
        except Exception as e:  # noqa: BLE001 - re-raised in rank 0, where the call was made
            return ("raise", _picklable(e))
        return ("ok", None)

    def _let_the_others_end(self) -> None:
        deadline = time.monotonic() + GRACE_SECONDS
        for r in self.ranks[1:]:
            r.join(max(0.0, deadline - time.monotonic()))

    def _stop(self) -> None:
        """SIGTERM every rank still running, SIGKILL what is left after STOP_SECONDS."""
        for r in self.ranks:
            r.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for r in self.ranks:
            r.join(max(0.0, deadline - time.monotonic()))
        for r in self.ranks:
            if r.exit_code() is None:
                log.warning("rank %d (pid %d) did not stop; killing it", r.rank, r.pid)
                r.signal(signal.SIGKILL)
                r.join(STOP_SECONDS)
            r.conn.close()


class _RemoteTraceback(Exception):
    """A rank's traceback, as the cause of the error re-raised in the worker."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


def _how(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code} before it had an outcome"


def _picklable(error: BaseException) -> BaseException:
    import pickle

    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001 - any exception type with an odd constructor
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


# --- a rank's side --------------------------------------------------------------------------


class RankContext(Context):
    """The context of one rank: rank 0's calls that reach the study go to the worker."""

    def __init__(self, spec: RankSpec, conn: Connection):
        # No Optuna trial here: every method that would read one is overridden below.
        super().__init__(
            cast(Any, None), seed=spec.seed, device=spec.device,
            checkpoint_root=spec.checkpoint_dir, study_name=f"trial-{spec.trial_number}",
            devices=spec.devices, rank=spec.rank, world_size=spec.world_size,
            metric=spec.metric)
        self._spec = spec
        self._conn = conn
        self._lock = threading.Lock()

    @property
    def trial_number(self) -> int:
        return self._spec.trial_number

    @property
    def direction(self) -> str:
        return self._spec.direction

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self._spec.checkpoint_dir)

    def report(self, step: int, value: float) -> None:
        if self.rank != 0:
            return super().report(step, value)
        self._call("report", step, float(value))

    def set_attr(self, name: str, value: Any) -> None:
        if self.rank != 0:
            return super().set_attr(name, value)
        self._call("set_attr", name, value)

    def record_curves(self, curves: Mapping[str, Any]) -> None:
        if self.rank == 0:
            self._call("record_curves", {k: list(v) for k, v in curves.items()})

    def _call(self, name: str, *args: Any) -> None:
        with self._lock:
            try:
                self._conn.send(("call", name, args))
                kind, payload = self._conn.recv()
            except (EOFError, OSError):
                raise InfrastructureError("the worker running this trial went away") from None
        if kind == "raise":
            raise payload


def _forked_rank(conn: Connection, spec: RankSpec,
                 objective: Callable[[Config, Context], Any]) -> None:
    os.environ.update(spec.environment())
    _run_rank(conn, objective)


def _run_rank(conn: Connection, objective: Callable[[Config, Context], Any] | None) -> None:
    """Receive the spec, join the process group, run the objective, send the outcome, exit."""
    outcome: tuple[Any, ...]
    try:
        spec: RankSpec = conn.recv()
        _die_with_parent(spec.parent_pid)
        import optuna
    except BaseException:  # noqa: BLE001 - the worker sees the exit without an outcome
        os._exit(3)
    try:
        if objective is None:
            from hpo.study_file import load_study_file

            assert spec.study_file is not None
            objective = load_study_file(spec.study_file).objective
        _join_process_group(spec)
        value = objective(spec.config, RankContext(spec, conn))
        outcome = ("done", _plain(value))
    except optuna.TrialPruned as e:
        outcome = ("pruned", str(e))
    except BaseException as e:  # noqa: BLE001 - every error is the trial's, sent to the worker
        outcome = ("failed", _picklable(e), traceback.format_exc(limit=-12))
    try:
        conn.send(("outcome", outcome))
    except (OSError, ValueError):
        pass
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        # No clean-up: the process group may be broken (a peer gone), and a destroy or an
        # atexit handler could then wait on it. The worker stops the others.
        os._exit(0)


def _join_process_group(spec: RankSpec) -> None:
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    timeout = timedelta(seconds=spec.timeout)
    cuda = spec.device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(torch.device(spec.device))
    store = dist.TCPStore("127.0.0.1", spec.store_port, is_master=False, timeout=timeout)
    dist.init_process_group("nccl" if cuda else "gloo", store=store, rank=spec.rank,
                            world_size=spec.world_size, timeout=timeout)


def _plain(value: Any) -> Any:
    """A value the worker can read without the rank's libraries: a float when it is one."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return repr(value)


def _die_with_parent(parent_pid: int) -> None:
    """Die when the worker dies: the kernel's parent-death signal, and a watching thread."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:
        os._exit(3)  # the worker died before the signal was asked for

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="hpo-parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    """``python -m hpo.train.distributed --fd N``: one rank, started by a worker."""
    parser = argparse.ArgumentParser(prog="python -m hpo.train.distributed")
    parser.add_argument("--fd", type=int, required=True, help="the worker's pipe")
    args = parser.parse_args(argv)
    _run_rank(Connection(args.fd), None)


if __name__ == "__main__":
    main()
