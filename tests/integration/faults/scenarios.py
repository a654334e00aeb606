"""Fault scenarios, run for real: a throwaway PostgreSQL cluster, the real ``hpo`` command, real
signals, real outages. Shared by the tests (tests/integration/faults) and ``bench/faults.py``.

Each scenario is a function of a :class:`Scene`: it starts what it needs through the scene
(clusters, ``hpo`` processes), injects its fault, states what the storage must hold
(:meth:`Scene.expect`) and records every expectation that did not hold as a *problem*.
:func:`run` then audits the storage (:mod:`check`) and tears everything down, also when the
scenario got stuck. A scenario passes when its audit is clean and it has no problems; the
tests assert exactly that, and the bench prints it as a table.

Sizes: the default is the short version that ``make test`` runs; ``full=True`` (the bench,
or ``HPO_FAULTS_FULL=1`` for the tests) is the size the issue states (10 kills, a minute of
terminated backends, ...).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
for _path in (ROOT / "tests", HERE):  # pg_cluster, check; also when imported by bench/
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from check import Audit, accumulated_value, audit, load_trials, synthetic_value  # noqa: E402
from pg_cluster import Cluster, _bin  # noqa: E402

FULL = os.environ.get("HPO_FAULTS_FULL", "") not in ("", "0")
IS_ROOT = os.geteuid() == 0

# Every objective is deterministic in its parameters (check.synthetic_value), so a value
# computed from another trial's parameters, or by a foreign objective, is caught.
SLEEPY_STUDY = '''
import os, time
from hpo import Study, scientific, nuisance, choice, log_uniform, uniform

def objective(config, ctx):
    seconds = float(os.environ.get("FAULT_SLEEP", "0.5"))
    steps = int(os.environ.get("FAULT_STEPS", "2"))
    extra = config["momentum"] if config["optimizer"] == "sgd" else config["beta1"]
    value = abs(config["learning_rate"] - 0.01) + extra * 0.1
    for step in range(steps):
        time.sleep(seconds / steps)
        ctx.report(step, value + step)
    return value

study = Study(
    name={name!r}, goal="Does hpo lose or duplicate work when things fail?", metric="loss",
    space={{
        "optimizer": scientific(choice("sgd", "adam")),
        "learning_rate": nuisance(log_uniform(1e-4, 1.0)),
        "momentum": nuisance(uniform(0.8, 0.99), when={{"optimizer": "sgd"}}),
        "beta1": nuisance(uniform(0.8, 0.99), when={{"optimizer": "adam"}}),
    }},
    objective=objective, trials_per_value={per_value}, seed={seed},
)
'''

# x is added once per step and carried in the checkpoint: a trial that resumed another
# trial's (or another study's) checkpoint ends with the wrong value, and says it resumed.
CHECKPOINT_STUDY = '''
import os, time
from hpo import Study, scientific, nuisance, fixed, choice, uniform

def objective(config, ctx):
    seconds = float(os.environ.get("FAULT_SLEEP", "0.1"))
    pad = "0" * int(os.environ.get("FAULT_PAD", "0"))
    start, acc = 0, 0.0
    saved = ctx.load_checkpoint(map_location="cpu")
    if saved is not None:
        start, acc = saved.step + 1, saved.state["acc"]
        ctx.set_attr("resumed_from_step", saved.step)
    for step in range(start, config["steps"]):
        time.sleep(seconds)
        acc += config["x"]
        ctx.save_checkpoint(step, {{"acc": acc, "pad": pad}})
        ctx.report(step, acc)
    return acc

study = Study(
    name={name!r}, goal="Do checkpoints belong to one study?", metric="loss",
    space={{"arm": scientific(choice("a", "b")), "x": nuisance(uniform(0.0, 1.0)),
            "steps": fixed({steps})}},
    objective=objective, trials_per_value={per_value}, seed={seed},
)
'''
CHECKPOINT_STEPS = 4

# A plain Optuna client joining an hpo study: it takes a WAITING trial and holds it.
FOREIGN_CLIENT = '''
import sys, time, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.load_study(study_name=sys.argv[2], storage=sys.argv[1])
study.optimize(lambda trial: time.sleep(3600) or 0.0, n_trials=1)
'''


class Abort(Exception):
    """The scenario cannot go on (something it waited for never happened)."""


# --- processes ------------------------------------------------------------------------

def _ppids() -> dict[int, int]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            table[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return table


def children(pid: int) -> list[int]:
    return sorted(p for p, parent in _ppids().items() if parent == pid)


def descendants(pid: int) -> list[int]:
    table, found, frontier = _ppids(), [], [pid]
    while frontier:
        kids = [p for p, parent in table.items() if parent in frontier]
        found += kids
        frontier = kids
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _is_ours(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"-m hpo" in command or b"FOREIGN" in command or b"optuna" in command


class Proc:
    """A process the scene started, its output in files (8 workers would fill a pipe)."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, name: str):
        self.name = name
        self.argv = argv
        self._out = open(cwd / f"{name}.out", "w+")  # noqa: SIM115 - closed in close()
        self._err = open(cwd / f"{name}.err", "w+")  # noqa: SIM115
        self.popen = subprocess.Popen(argv, env=env, cwd=cwd, stdout=self._out,
                                      stderr=self._err, start_new_session=True)
        self.pid = self.popen.pid
        self.started = time.monotonic()
        self.ended: float | None = None
        self.seen: set[int] = set()

    def poll(self) -> int | None:
        code = self.popen.poll()
        if code is not None and self.ended is None:
            self.ended = time.monotonic()
        return code

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if still running after ``timeout`` seconds."""
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.poll()

    def workers(self) -> list[int]:
        """Its child processes now (remembered, so they can be cleaned up later)."""
        kids = [p for p in children(self.pid) if alive(p)]
        self.seen.update(kids)
        return kids

    def stderr(self) -> str:
        self._err.flush()
        return Path(self._err.name).read_text(errors="replace")

    def stdout(self) -> str:
        self._out.flush()
        return Path(self._out.name).read_text(errors="replace")

    def tail(self, lines: int = 15) -> str:
        text = self.stderr().replace("\r", "\n")
        kept = [line for line in text.splitlines() if line.strip() and "trials:" not in line]
        return "\n      ".join(kept[-lines:])

    def kill_tree(self) -> None:
        """SIGKILL it and every process it started (workers live in sessions of their own)."""
        pids = set(self.seen)
        if self.poll() is None:
            pids |= set(descendants(self.pid))
            _kill(self.pid)
        for pid in pids:
            if alive(pid) and _is_ours(pid):
                _kill(pid)
        self.wait(10)

    def close(self) -> None:
        self._out.close()
        self._err.close()


def _kill(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


# --- the database -----------------------------------------------------------------------

class FaultCluster(Cluster):
    """tests/pg_cluster.py's throwaway cluster, with the faults: stop and restart in every
    mode, SIGKILL of the postmaster, terminated backends, SQL as an administrator."""

    def ctl(self, *args: str) -> None:
        self._ctl(*args)

    def restart(self, mode: str = "fast") -> None:  # type: ignore[override]
        self._ctl("restart", "-m", mode)

    def stop(self, mode: str = "fast") -> None:  # type: ignore[override]
        self._ctl("stop", "-m", mode)

    def running(self) -> bool:
        result = subprocess.run([*self._as, _bin("pg_ctl"), "-D", str(self.data), "status"],
                                capture_output=True)
        return result.returncode == 0

    def ensure_running(self) -> None:
        if not self.running():
            self.start()

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def kill_postmaster(self) -> None:
        """SIGKILL the postmaster, wait for its orphaned backends to notice, start again."""
        pid = self.postmaster_pid()
        backends = children(pid)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(alive(p) for p in [pid, *backends]):
            time.sleep(0.1)
        for p in backends:  # still attached to the shared memory: the new server would refuse
            if alive(p):
                _kill(p)
        for attempt in range(5):
            try:
                self.start()
                return
            except subprocess.CalledProcessError:
                if attempt == 4:
                    raise
                time.sleep(1)

    def url_for(self, database: str) -> str:
        return self.url.rsplit("/", 1)[0] + "/" + database

    def sql(self, query: str, params: dict[str, Any] | None = None,
            database: str = "postgres") -> list[Any]:
        import sqlalchemy
        from sqlalchemy.pool import NullPool

        engine = sqlalchemy.create_engine(self.url_for(database), poolclass=NullPool,
                                          isolation_level="AUTOCOMMIT",
                                          connect_args={"connect_timeout": 5})
        try:
            with engine.connect() as conn:
                result = conn.execute(sqlalchemy.text(query), params or {})
                return list(result) if result.returns_rows else []
        finally:
            engine.dispose()

    def terminate_clients(self) -> int:
        """pg_terminate_backend on every client backend but this one; how many."""
        rows = self.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
        return int(rows[0][0])


# --- a scene: one scenario's processes, clusters and findings ---------------------------

@dataclass
class Expected:
    url: str
    study: str
    budget: int
    value: Callable[[Any], float] | None
    dead_pids: set[int]
    dead_trials: set[int]


@dataclass
class Outcome:
    scenario: str
    title: str
    audit: Audit | None
    seconds: float
    problems: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.audit is not None and self.audit.clean and not self.problems

    def report(self) -> str:
        lines = [f"{self.scenario} ({self.title}): {'ok' if self.ok else 'FAILED'} in "
                 f"{self.seconds:.0f}s", f"  audit: {self.audit}"]
        lines += [f"  problem: {p}" for p in self.problems]
        lines += [f"  note: {d}" for d in self.details]
        return "\n".join(lines)


class Scene:
    def __init__(self, work: Path, full: bool):
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.full = full
        self.procs: list[Proc] = []
        self.clusters: list[FaultCluster] = []
        self.expected: list[Expected] = []
        self.problems: list[str] = []
        self.details: list[str] = []
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("HPO_", "FAULT_"))},
            # A worker left behind by a failed scenario gives up within a minute.
            "HPO_DB_PATIENCE": "60",
            "HPO_CHECKPOINT_DIR": str(self.work / "checkpoints"),
            "PYTHONUNBUFFERED": "1",
        }

    # what it starts
    def cluster(self) -> FaultCluster:
        cluster = FaultCluster()
        self.clusters.append(cluster)
        cluster.start()
        return cluster

    def hpo(self, *args: Any, env: dict[str, str] | None = None, name: str = "hpo",
            prefix: Iterable[str] = ()) -> Proc:
        argv = [*prefix, sys.executable, "-m", "hpo", *map(str, args)]
        return self.start(argv, env=env, name=name)

    def start(self, argv: list[str], *, env: dict[str, str] | None = None,
              name: str = "proc") -> Proc:
        taken = {p.name for p in self.procs}
        unique, n = name, 1
        while unique in taken:
            n += 1
            unique = f"{name}-{n}"
        full_env = {**self.env, **(env or {})}
        proc = Proc(argv, {k: v for k, v in full_env.items() if v is not None}, self.work,
                    unique)
        self.procs.append(proc)
        return proc

    def study(self, name: str, *, per_value: int = 4, seed: int = 0,
              template: str = SLEEPY_STUDY, filename: str | None = None, **extra: Any) -> Path:
        path = self.work / (filename or f"{re.sub(r'[^A-Za-z0-9]+', '_', name)[:40]}.py")
        path.write_text(template.format(name=name, per_value=per_value, seed=seed, **extra))
        return path

    # what it finds
    def expect(self, url: str, study: str, budget: int, *,
               value: Callable[[Any], float] | None = synthetic_value,
               dead_pids: set[int] | None = None, dead_trials: set[int] | None = None) -> None:
        # The very sets the scenario fills in as it kills: not copies.
        self.expected.append(Expected(url, study, budget, value,
                                      set() if dead_pids is None else dead_pids,
                                      set() if dead_trials is None else dead_trials))

    def problem(self, message: str) -> None:
        self.problems.append(message)

    def note(self, message: str) -> None:
        self.details.append(message)

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str,
                 every: float = 0.2) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = predicate()
            except Exception:  # noqa: BLE001 - the database is restarting, the study not there
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise Abort(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(every)

    def exit_code(self, proc: Proc, expected: int, timeout: float, what: str) -> int | None:
        """Wait for ``proc``; a problem if it runs past ``timeout`` or exits otherwise."""
        code = proc.wait(timeout)
        if code is None:
            self.problem(f"{what} still running after {timeout:.0f}s; its last lines:\n"
                         f"      {proc.tail()}")
            proc.kill_tree()
        elif code != expected:
            self.problem(f"{what} exited with {code}, expected {expected}; its last lines:\n"
                         f"      {proc.tail()}")
        return code

    def no_seat_given_up(self, fleet: Proc) -> None:
        lost = [line for line in fleet.stderr().splitlines() if "giving up on" in line]
        if lost:
            self.problem(f"the supervisor gave up {len(lost)} seat(s): {lost[0].strip()}")

    def no_traceback(self, proc: Proc, what: str) -> None:
        text = proc.stderr()
        if "Traceback" in text:
            last = [line for line in text.splitlines() if line.strip()][-1]
            self.problem(f"{what} printed a traceback ({last.strip()[:200]})")


def count_states(url: str, study: str) -> Counter:
    """Trials by state, read through Optuna ({} while the storage cannot be read)."""
    try:
        return Counter(t.state for t in load_trials(url, study))
    except Exception:  # noqa: BLE001 - down, restarting, not created yet
        return Counter()


def running_trials(url: str, study: str) -> list[Any]:
    try:
        return [t for t in load_trials(url, study) if t.state == "RUNNING"]
    except Exception:  # noqa: BLE001
        return []


def hpo_status(scene: Scene, path: Path, url: str) -> str:
    proc = scene.hpo("status", path, env={"HPO_STORAGE": url}, name="status")
    if proc.wait(60) is None:
        proc.kill_tree()
    return proc.stdout() + proc.stderr()


def sized(scene: Scene, quick: Any, full: Any) -> Any:
    return full if scene.full else quick


# --- (a) SIGKILLed workers --------------------------------------------------------------

def sigkill_workers(s: Scene) -> None:
    """A random worker of 8 SIGKILLed every few seconds, 10 times (4 in the short version)."""
    kills, every, budget = sized(s, (4, 2.0, 160), (10, 3.0, 600))
    c = s.cluster()
    name = "faults-sigkill-v1"
    path = s.study(name, per_value=budget // 2)
    killed: set[int] = set()
    s.expect(c.url, name, budget, dead_pids=killed)
    fleet = s.hpo("run", path, "--workers", 8, "--trials", budget,
                  env={"HPO_STORAGE": c.url, "FAULT_SLEEP": "0.5"}, name="fleet")
    s.wait_for(lambda: count_states(c.url, name)["COMPLETE"] >= 8, 180, "the first trials")
    rng = random.Random(7)
    while len(killed) < kills and fleet.poll() is None:
        time.sleep(every)
        workers = fleet.workers()
        if workers:
            victim = rng.choice(workers)
            _kill(victim)
            killed.add(victim)
    s.note(f"{len(killed)} workers SIGKILLed, one every {every:.0f}s: pids "
           f"{', '.join(map(str, sorted(killed)))}")
    if len(killed) < kills:
        s.problem(f"the run ended after {len(killed)} of {kills} kills: the fault was not "
                  "fully injected (enlarge the budget)")
    s.exit_code(fleet, 0, 300, "hpo run")
    s.no_seat_given_up(fleet)


# --- (b) PostgreSQL restarted and killed ------------------------------------------------

def restart_database(s: Scene) -> None:
    """pg_ctl restart -m fast twice, -m immediate once, SIGKILL of the postmaster + start."""
    workers, budget, spacing = sized(s, (4, 64, 8), (8, 320, 40))
    c = s.cluster()
    name = "faults-restart-v1"
    path = s.study(name, per_value=budget // 2)
    s.expect(c.url, name, budget)
    fleet = s.hpo("run", path, "--workers", workers, "--trials", budget,
                  env={"HPO_STORAGE": c.url, "FAULT_SLEEP": "0.5"}, name="fleet")
    faults = [("pg_ctl restart -m fast", lambda: c.restart("fast")),
              ("pg_ctl restart -m fast", lambda: c.restart("fast")),
              ("pg_ctl restart -m immediate", lambda: c.restart("immediate")),
              ("SIGKILL of the postmaster, then pg_ctl start", c.kill_postmaster)]
    target = 0
    for label, fault in faults:
        target += spacing
        s.wait_for(lambda t=target: fleet.poll() is not None
                   or count_states(c.url, name)["COMPLETE"] >= t, 240, f"{target} trials")
        if fleet.poll() is not None:
            s.problem(f"the run ended before '{label}': the fault was not injected")
            break
        started = time.monotonic()
        fault()
        s.note(f"{label} at {target} complete trials ({time.monotonic() - started:.1f}s)")
    s.exit_code(fleet, 0, 300, "hpo run")
    s.no_seat_given_up(fleet)
    if "connection is back" not in fleet.stderr():
        s.note("no worker said 'connection is back'")


# --- (c) an outage longer than the heartbeat grace --------------------------------------

def outage(s: Scene) -> None:
    """The database down for 2x the heartbeat grace (HPO_HEARTBEAT_GRACE=4, 8 s) while
    trials run and other workers wait idle (they reap on every pass): nothing reaped, no
    retry spent, every worker survives. The full version has a second outage, with every
    worker busy.

    8 s, not 10: a reconnect backoff of 0.5, 1, 2, 4, 8 s retries 7.5 s after its first
    failure, then 15.5 s. Down 8 s, the calls that failed in its first half second come
    back 15.5 s later, the others at 7.5 s, seven seconds apart: longer than the grace, so
    the first workers back see the others' heartbeats stale. Down 10 s, everyone is back
    together at 15.5 s and a lease judged too early can still pass."""
    down, budget = 8.0, sized(s, 4, 8)
    c = s.cluster()
    name = "faults-outage-v1"
    path = s.study(name, per_value=budget // 2)
    s.expect(c.url, name, budget)
    # 6 workers: the full version's first wave keeps all 6 busy, its second (and the short
    # version's only) wave 2 or 4 busy and the others idle, polling and reaping.
    env = {"HPO_STORAGE": c.url, "HPO_HEARTBEAT_INTERVAL": "1", "HPO_HEARTBEAT_GRACE": "4",
           "FAULT_SLEEP": "4", "FAULT_STEPS": "8"}
    fleet = s.hpo("run", path, "--workers", 6, "--trials", budget, env=env, name="fleet")
    waves = [6, budget - 6] if s.full else [budget]
    for i, busy in enumerate(waves):
        s.wait_for(lambda b=busy: (lambda r: len(r) >= b and all(
            len(t.intermediate_values) >= 2 for t in r))(running_trials(c.url, name)),
            180, f"{busy} trials running before outage {i + 1}")
        before = fleet.workers()
        c.stop("fast")
        time.sleep(down)
        c.start()
        s.note(f"outage {i + 1}: database down {down:.0f}s (grace 4s) while {busy} trials ran "
               f"and {6 - busy} workers were idle")
        finished = sum(waves[:i + 1])
        s.wait_for(lambda d=finished: fleet.poll() is not None
                   or count_states(c.url, name)["COMPLETE"] >= d, 120,
                   f"the trials running during outage {i + 1} to finish")
        gone = [p for p in before if not alive(p)]
        if gone:
            s.problem(f"outage {i + 1}: {len(gone)} of {len(before)} workers did not survive")
    s.exit_code(fleet, 0, 300, "hpo run")
    crashed = [line for line in fleet.stderr().splitlines() if "exited with code" in line]
    if crashed:
        s.problem(f"{len(crashed)} worker exit(s) during the run: {crashed[0].strip()}")
    trials = load_trials(c.url, name)
    retries = [t.number for t in trials if "failed_trial" in t.system_attrs]
    if retries or len(trials) != budget:
        s.problem(f"{len(trials) - budget} retries spent by the outage (trials "
                  f"#{', #'.join(map(str, retries[:10]))})")


# --- (d) backends terminated every 2 s --------------------------------------------------

def terminate_backends(s: Scene) -> None:
    """pg_terminate_backend of every hpo backend every 2 s, for a minute (20 s short),
    from the moment the fleet starts: no seat given up, the run finishes with exit 0."""
    duration, workers = sized(s, (20.0, 4), (60.0, 8))
    budget = int(workers * duration)  # 1 s trials: the run lasts at least `duration`
    c = s.cluster()
    name = "faults-terminate-v1"
    path = s.study(name, per_value=budget // 2)
    s.expect(c.url, name, budget)
    fleet = s.hpo("run", path, "--workers", workers, "--trials", budget,
                  env={"HPO_STORAGE": c.url, "FAULT_SLEEP": "1.0"}, name="fleet")
    started, rounds, terminated = time.monotonic(), 0, 0
    while time.monotonic() - started < duration and fleet.poll() is None:
        try:
            terminated += c.terminate_clients()
            rounds += 1
        except Exception as e:  # noqa: BLE001 - keep going; say so
            s.note(f"a terminate round failed: {e}")
        time.sleep(2.0)
    elapsed = time.monotonic() - started
    s.note(f"{terminated} backends terminated in {rounds} rounds over {elapsed:.0f}s")
    if s.exit_code(fleet, 0, 300, "hpo run") == 0 and elapsed < duration - 2.5:
        s.problem(f"the run ended after {elapsed:.0f}s of the {duration:.0f}s of terminations")
    s.no_seat_given_up(fleet)


# --- (e) the lost layout lock -----------------------------------------------------------

_LOCK_HOLDERS = """
SELECT DISTINCT h.pid, a.state, left(a.query, 60) FROM pg_locks h
JOIN pg_locks w ON w.locktype = 'advisory' AND NOT w.granted AND h.classid = w.classid
               AND h.objid = w.objid AND h.objsubid = w.objsubid
JOIN pg_stat_activity a ON a.pid = h.pid
WHERE h.locktype = 'advisory' AND h.granted
"""
_INSERTING = """
SELECT pid, state, left(query, 60) FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND state = 'active'
  AND query ILIKE 'insert%'
"""
_HOLDING_WORKERS = """
SELECT count(DISTINCT a.value_json) FROM trials t JOIN studies s ON s.study_id = t.study_id
JOIN trial_user_attributes a ON a.trial_id = t.trial_id AND a.key = 'worker_pid'
WHERE s.study_name = :name AND t.state = 'RUNNING'
"""


def lost_layout_lock(s: Scene) -> None:
    """Two workers lay out a 4,000-slot budget at once while the backend laying it out is
    terminated mid-layout; then a run of --trials 400 (100 short): 4,000 slots, each once."""
    layout, budget = 4000, sized(s, 100, 400)
    c = s.cluster()
    name = "faults-layout-v1"
    path = s.study(name, per_value=layout // 2)
    s.expect(c.url, name, budget)
    # The layout workers' trials never finish (they are stopped once they hold one), so the
    # only trials that complete are the run's.
    env = {"HPO_STORAGE": c.url, "FAULT_SLEEP": "3600", "FAULT_STEPS": "1"}
    layers = [s.hpo("worker", path, "--trials", layout, env=env, name=f"layout{i}")
              for i in range(2)]
    victims: list[str] = []
    last = 0.0
    patience = sized(s, 90, 180)
    deadline = time.monotonic() + patience
    while True:
        if time.monotonic() > deadline:
            s.problem(f"the two workers had not laid out 4,000 slots and taken a trial each "
                      f"after {patience}s")
            break
        if all(p.poll() is not None for p in layers):
            break
        try:
            if c.sql(_HOLDING_WORKERS, {"name": name})[0][0] >= 2:
                break  # both are past the layout, each holding a trial
        except Exception:  # noqa: BLE001 - no tables yet
            pass
        if len(victims) < 2 and time.monotonic() - last > 0.5:
            try:
                exists = c.sql("SELECT 1 FROM studies WHERE study_name = :n", {"n": name})
            except Exception:  # noqa: BLE001 - no tables yet
                exists = []
            if exists:
                rows = c.sql(_LOCK_HOLDERS) or c.sql(_INSERTING)
                for pid, state, query in rows:
                    c.sql("SELECT pg_terminate_backend(:p)", {"p": pid})
                    victims.append(f"pid {pid} ({state}: {query.strip()!r})")
                    last = time.monotonic()
        time.sleep(0.02)
    s.note(f"terminated mid-layout: {'; '.join(victims) or 'nothing'}")
    if not victims:
        s.problem("no backend was terminated mid-layout: the fault was not injected")
    for p in layers:
        if p.poll() is None:
            p.popen.send_signal(signal.SIGTERM)
    for i, p in enumerate(layers):
        s.exit_code(p, 130, 20, f"layout worker {i} (stopped with SIGTERM)")
    run = s.hpo("run", path, "--workers", 4, "--trials", budget,
                env={"HPO_STORAGE": c.url, "FAULT_SLEEP": "0.05", "FAULT_STEPS": "1"},
                name="run")
    s.exit_code(run, 0, 300, f"hpo run --trials {budget}")
    slots = c.sql("SELECT count(*), count(DISTINCT a.value_json) FROM trials t "
                  "JOIN studies s ON s.study_id = t.study_id JOIN trial_user_attributes a "
                  "ON a.trial_id = t.trial_id AND a.key = 'slot' WHERE s.study_name = :n",
                  {"n": name})[0]
    s.note(f"storage holds {slots[0]} trials with a slot, {slots[1]} distinct slots")
    if slots[1] != layout:
        s.problem(f"{slots[1]} distinct slots in storage, expected {layout}")


# --- (f) a worker SIGSTOPped past the grace ---------------------------------------------

def sigstop_worker(s: Scene) -> None:
    """A worker SIGSTOPped until its trial is reaped and retried elsewhere, then SIGCONT:
    its late result makes no duplicate, and it goes on (one warning, no crash)."""
    budget = sized(s, 6, 24)
    c = s.cluster()
    name = "faults-sigstop-v1"
    path = s.study(name, per_value=budget // 2)
    stopped_trial: set[int] = set()
    s.expect(c.url, name, budget, dead_trials=stopped_trial)
    env = {"HPO_STORAGE": c.url, "HPO_HEARTBEAT_INTERVAL": "1", "HPO_HEARTBEAT_GRACE": "4",
           "FAULT_SLEEP": "3.0", "FAULT_STEPS": "6"}
    workers = [s.hpo("worker", path, "--trials", budget, env=env, name=f"worker{i}")
               for i in range(3)]
    victim = workers[0]

    def victims_trial() -> Any:
        return next((t for t in running_trials(c.url, name)
                     if t.user_attrs.get("worker_pid") == victim.pid
                     and t.intermediate_values), None)

    trial = s.wait_for(victims_trial, 120, "a trial of the worker to stop")
    slot = trial.user_attrs["slot"]
    stopped_trial.add(trial.number)
    os.kill(victim.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        s.wait_for(lambda: all(t.number != trial.number for t in running_trials(c.url, name)),
                   60, f"trial #{trial.number} of the stopped worker to be reaped")
        s.wait_for(lambda: any(t.user_attrs.get("slot") == slot and t.number != trial.number
                               and t.state in ("RUNNING", "COMPLETE")
                               for t in load_trials(c.url, name)), 60,
                   f"slot {slot} to be retried by another worker")
    finally:
        os.kill(victim.pid, signal.SIGCONT)
    s.note(f"worker pid {victim.pid} stopped {time.monotonic() - stopped:.1f}s (grace 4s) "
           f"holding trial #{trial.number} (slot {slot})")
    for i, w in enumerate(workers):
        s.exit_code(w, 0, 240, f"worker {i}{' (the stopped one)' if w is victim else ''}")
    s.no_traceback(victim, "the stopped worker")
    said = [line for line in victim.stderr().splitlines()
            if "WARNING" in line and re.search(rf"\btrial #?{trial.number}\b", line)]
    if len(said) != 1:
        s.problem(f"the stopped worker wrote {len(said)} warning lines about trial "
                  f"#{trial.number}, expected one: {said[:3]}")
    done = [t for t in load_trials(c.url, name)
            if t.user_attrs.get("slot") == slot and t.state == "COMPLETE"]
    if any(t.user_attrs.get("worker_pid") == victim.pid for t in done):
        s.problem(f"slot {slot} was completed by the stopped worker's late result")


# --- (g) workers in a PID namespace -----------------------------------------------------

def pid_namespace(s: Scene, storage: str = "journal", mount_proc: bool = True) -> None:
    """Workers in a PID namespace (a container) SIGKILLed with its init; their pids exist
    on the host. hpo status flags their trials, and a run on the host finishes."""
    budget = 12
    if storage == "journal":
        url, grace = str(s.work / "journal.log"), "600"
    else:
        url, grace = s.cluster().url, "600"  # only the pid judgement can free them in time
    name = "faults-pidns-v1"
    path = s.study(name, per_value=budget // 2)
    held: set[int] = set()
    s.expect(url, name, budget, dead_trials=held)
    env = {"HPO_STORAGE": url, "HPO_HEARTBEAT_INTERVAL": "1", "HPO_HEARTBEAT_GRACE": grace}
    prefix = ["unshare", "--pid", "--fork", *(["--mount-proc"] if mount_proc else [])]
    inside = s.hpo("run", path, "--workers", 3, "--trials", budget,
                   env={**env, "FAULT_SLEEP": "600"}, name="namespace", prefix=prefix)
    trials = s.wait_for(lambda: (lambda r: r if len(r) >= 3 and all(
        t.user_attrs.get("worker_pid") for t in r) else None)(running_trials(url, name)),
        120, "3 trials running in the namespace")
    held.update(t.number for t in trials)
    pids = sorted(t.user_attrs["worker_pid"] for t in trials)
    on_host = [p for p in pids if alive(p)]
    s.note(f"namespace pids {pids}; of them alive on the host: {on_host or 'none'}")
    init = children(inside.pid)
    if len(init) != 1:
        raise Abort(f"expected one namespace init under unshare, found {init}")
    _kill(init[0])
    if inside.wait(30) is None:
        raise Abort("the namespace did not end when its init was killed")
    status = hpo_status(s, path, url)
    stale = next((line for line in status.splitlines() if line.startswith("stale")), "")
    unflagged = [n for n in sorted(held) if f"#{n}" not in stale]
    if unflagged:
        s.problem(f"hpo status does not flag the dead trials #"
                  f"{', #'.join(map(str, unflagged))} as stale ({stale or 'no stale line'})")
    run = s.hpo("run", path, "--workers", 2, "--trials", budget,
                env={**env, "FAULT_SLEEP": "0.2"}, name="host-run")
    s.exit_code(run, 0, sized(s, 60, 120), "hpo run on the host")


# --- (h) a plain Optuna client ----------------------------------------------------------

def foreign_client(s: Scene) -> None:
    """A plain Optuna study.optimize joins the study, takes a slot and is SIGKILLed holding
    it: hpo status names it, it is reaped after the grace, hpo completes the slot."""
    budget = 32
    c = s.cluster()
    name = "faults-foreign-v1"
    path = s.study(name, per_value=budget // 2)
    foreign_trial: set[int] = set()
    s.expect(c.url, name, budget, dead_trials=foreign_trial)
    fleet = s.hpo("run", path, "--workers", 2, "--trials", budget,
                  env={"HPO_STORAGE": c.url, "HPO_HEARTBEAT_INTERVAL": "1",
                       "HPO_HEARTBEAT_GRACE": "8", "FAULT_SLEEP": "0.5"}, name="fleet")
    s.wait_for(lambda: sum(count_states(c.url, name).values()) >= budget, 120, "the layout")
    foreign = s.start([sys.executable, "-c", FOREIGN_CLIENT, c.url, name], name="foreign")
    trial = s.wait_for(lambda: next((t for t in running_trials(c.url, name)
                                     if "worker_pid" not in t.user_attrs), None),
                       60, "the foreign client's trial")
    foreign_trial.add(trial.number)
    slot = trial.user_attrs.get("slot")
    s.note(f"the foreign client holds trial #{trial.number} (slot {slot})")
    if slot is None:
        s.problem("the foreign client got no laid-out slot: the scenario tests nothing")
    status = hpo_status(s, path, c.url)
    named = [line for line in status.splitlines() if f"#{trial.number}" in line
             and re.search(r"foreign|not an hpo worker|no provenance", line, re.IGNORECASE)]
    if not named:
        s.problem(f"hpo status does not name trial #{trial.number} as foreign:\n      "
                  + "\n      ".join(status.splitlines()[-8:]))
    _kill(foreign.pid)
    foreign.wait(10)
    s.exit_code(fleet, 0, 90, "hpo run")
    done = [t for t in load_trials(c.url, name)
            if t.user_attrs.get("slot") == slot and t.state == "COMPLETE"]
    if slot is not None and not any("worker_pid" in t.user_attrs for t in done):
        s.problem(f"slot {slot} was not completed by an hpo worker")


# --- (i) checkpoints ----------------------------------------------------------------------

def _run_then_kill(s: Scene, path: Path, url: str, name: str, *, complete: int) -> set[int]:
    """Run a checkpointing study until ``complete`` trials are done and another has
    checkpointed twice, then SIGKILL the worker; the trials it held."""
    fleet = s.hpo("worker", path, "--trials", 4,
                  env={"HPO_STORAGE": url, "FAULT_SLEEP": "0.4"}, name="first-run")
    s.wait_for(lambda: count_states(url, name)["COMPLETE"] >= complete and any(
        len(t.intermediate_values) >= 2 for t in running_trials(url, name)), 120,
        f"{name!r}: {complete} trials done and one checkpointed")
    fleet.workers()
    held = {t.number for t in running_trials(url, name)}
    fleet.kill_tree()
    return held


def _resumed(url: str, name: str) -> list[int]:
    return [t.number for t in load_trials(url, name) if "resumed_from_step" in t.user_attrs]


def _checkpoints(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*.pt")) if folder.is_dir() else 0


def checkpoint_new_storage(s: Scene, storage: str = "journal") -> None:
    """A study started over under the same name, in a new journal file (the old one deleted)
    or a new database, trains from scratch: it never resumes the old run's checkpoints."""
    name = "faults-ckpt-v1"
    path = s.study(name, per_value=2, template=CHECKPOINT_STUDY, steps=CHECKPOINT_STEPS)
    value = accumulated_value(CHECKPOINT_STEPS)
    if storage == "journal":
        url = new_url = str(s.work / "hpo-journal.log")
    else:
        c = s.cluster()
        url = c.url
        c.sql("CREATE DATABASE fresh")
        new_url = c.url_for("fresh")
    _run_then_kill(s, path, url, name, complete=1)
    left = _checkpoints(s.work / "checkpoints")
    s.note(f"the first run, SIGKILLed, left {left} checkpoint file(s)")
    if not left:
        s.problem("the first run left no checkpoint: the scenario tests nothing")
    if storage == "journal":
        for leftover in s.work.glob("hpo-journal.log*"):
            leftover.unlink()
    s.expect(new_url, name, 4, value=value)
    run = s.hpo("worker", path, "--trials", 4,
                env={"HPO_STORAGE": new_url, "FAULT_SLEEP": "0.01"}, name="second-run")
    s.exit_code(run, 0, 120, "hpo worker in the new storage")
    resumed = _resumed(new_url, name)
    if resumed:
        s.problem(f"trials #{', #'.join(map(str, resumed))} of the new study resumed the old "
                  "study's checkpoints")


def checkpoint_names_apart(s: Scene) -> None:
    """Studies named col/x and col_x, one checkpoint folder: neither resumes the other's
    checkpoints, and col/x still resumes its own."""
    c = s.cluster()
    value = accumulated_value(CHECKPOINT_STEPS)
    first = s.study("col/x", per_value=2, seed=1, template=CHECKPOINT_STUDY,
                    steps=CHECKPOINT_STEPS, filename="col_slash_x.py")
    second = s.study("col_x", per_value=2, seed=2, template=CHECKPOINT_STUDY,
                     steps=CHECKPOINT_STEPS, filename="col_underscore_x.py")
    held = _run_then_kill(s, first, c.url, "col/x", complete=0)
    s.expect(c.url, "col_x", 4, value=value)
    s.expect(c.url, "col/x", 4, value=value, dead_trials=held)
    run = s.hpo("worker", second, "--trials", 4,
                env={"HPO_STORAGE": c.url, "FAULT_SLEEP": "0.01"}, name="col_x")
    s.exit_code(run, 0, 120, "hpo worker of col_x")
    if resumed := _resumed(c.url, "col_x"):
        s.problem(f"col_x trials #{', #'.join(map(str, resumed))} resumed col/x's checkpoints")
    again = s.hpo("worker", first, "--trials", 4,
                  env={"HPO_STORAGE": c.url, "FAULT_SLEEP": "0.01"}, name="col-x-again")
    s.exit_code(again, 0, 120, "hpo worker of col/x, continued")
    if not _resumed(c.url, "col/x"):
        s.problem("col/x's retried trial did not resume its own checkpoint (a check that "
                  "never resumes would pass the crossover test)")


def checkpoint_odd_names(s: Scene) -> None:
    """A 300-character study name works; a study named '..' writes nothing outside the
    checkpoint folder."""
    value = accumulated_value(CHECKPOINT_STEPS)
    box = s.work / "box"
    folder = box / "checkpoints"
    folder.mkdir(parents=True)
    long_name = ("a-study-name-that-goes-on-" * 12)[:299] + "z"
    for i, name in enumerate([long_name, ".."]):
        journal = str(s.work / f"journal-{i}.log")
        path = s.study(name, per_value=1, template=CHECKPOINT_STUDY, steps=CHECKPOINT_STEPS,
                       filename=f"odd_{i}.py")
        s.expect(journal, name, 2, value=value)
        run = s.hpo("worker", path, "--trials", 2, "--checkpoint-dir", folder,
                    env={"HPO_STORAGE": journal, "FAULT_SLEEP": "0.01"}, name=f"odd-{i}")
        s.exit_code(run, 0, 120, f"hpo worker of a study named {name[:20]!r}... "
                                 f"({len(name)} characters)")
    outside = sorted(p.name for p in box.iterdir() if p != folder)
    if outside:
        s.problem(f"checkpoints written outside the checkpoint folder: {outside}")


def _in_mount_namespace(setup: str) -> list[str]:
    """A prefix running the command after ``setup`` in a mount namespace of its own."""
    return ["unshare", "-m", "sh", "-c", f'{setup} && exec "$0" "$@"']


def checkpoint_read_only(s: Scene) -> None:
    """A read-only checkpoint folder (a read-only bind mount): exit 2 with one line before
    any trial runs, for hpo worker and hpo run."""
    folder = s.work / "read-only"
    folder.mkdir()
    setup = f"mount --bind {folder} {folder} && mount -o remount,bind,ro {folder}"
    for command in (["worker"], ["run", "--workers", "2"]):
        journal = str(s.work / f"journal-{command[0]}.log")
        name = f"faults-ro-{command[0]}-v1"
        path = s.study(name, per_value=2, template=CHECKPOINT_STUDY, steps=CHECKPOINT_STEPS)
        # A budget of 0 for the audit: nothing may have run, completed or failed.
        s.expect(journal, name, 0)
        proc = s.hpo(command[0], path, *command[1:], "--trials", 4, "--checkpoint-dir", folder,
                     env={"HPO_STORAGE": journal}, name=f"ro-{command[0]}",
                     prefix=_in_mount_namespace(setup))
        code = s.exit_code(proc, 2, 120, f"hpo {command[0]} with a read-only checkpoint folder")
        errors = [line for line in proc.stderr().splitlines() if line.strip()]
        if code == 2 and (len(errors) != 1 or str(folder) not in errors[0]):
            s.problem(f"hpo {command[0]}: expected one line naming {folder}, got: "
                      f"{errors[:4]}")
        if Path(journal).exists():
            started = count_states(journal, name)
            started.pop("WAITING", None)
            if started:
                s.problem(f"hpo {command[0]}: trials ran although the folder is read-only: "
                          f"{dict(started)}")
    s.note("hpo worker and hpo run, each against a read-only bind mount")


def checkpoint_full_disk(s: Scene) -> None:
    """A checkpoint folder on a full disk (a 256 KiB tmpfs, checkpoints of 150 KB): the
    trials are handed back, none FAIL, no .partial file is left; a run on a good folder then
    completes them."""
    folder = s.work / "tiny"
    folder.mkdir()
    name = "faults-full-disk-v1"
    path = s.study(name, per_value=3, template=CHECKPOINT_STUDY, steps=CHECKPOINT_STEPS)
    journal = str(s.work / "journal.log")
    s.expect(journal, name, 6, value=accumulated_value(CHECKPOINT_STEPS))
    script = (f"mount -t tmpfs -o size=256k tmpfs {folder} && \"$0\" \"$@\"; code=$?; "
              f"echo partial files:; find {folder} -name '*.partial'; exit $code")
    proc = s.hpo("run", path, "--workers", 2, "--trials", 6, "--checkpoint-dir", folder,
                 env={"HPO_STORAGE": journal, "FAULT_SLEEP": "0.1", "FAULT_PAD": "150000"},
                 name="full-disk", prefix=["unshare", "-m", "sh", "-c", script])
    s.exit_code(proc, 1, 180, "hpo run on a full disk")
    out = proc.stdout()
    partial = out.split("partial files:", 1)[-1].split()
    if "partial files:" not in out:
        s.problem("the mount namespace script did not list the .partial files")
    elif partial:
        s.problem(f".partial files left on the full disk: {partial}")
    if "no space left" not in proc.stderr().lower():
        s.problem("hpo run did not give the reason ('No space left on device')")
    states = count_states(journal, name)
    s.note(f"after the full-disk run: {dict(states)}")
    if states["FAIL"]:
        s.problem(f"{states['FAIL']} trial(s) FAIL on a full disk instead of handed back")
    run = s.hpo("run", path, "--workers", 2, "--trials", 6,
                env={"HPO_STORAGE": journal, "FAULT_SLEEP": "0.01"}, name="good-disk")
    s.exit_code(run, 0, 120, "hpo run on a good folder afterwards")


# --- (j) errors that are not connection losses ------------------------------------------

def lock_timeout(s: Scene, setting: str = "lock_timeout") -> None:
    """A lock_timeout (or statement_timeout) of 300 ms on the role, and another session
    that takes the trials table mid-run and holds it for 40 s: the worker fails at once with
    the database's message instead of retrying (HPO_DB_PATIENCE at its default, 600 s);
    once the lock is gone, a worker completes the study."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    c = s.cluster()
    name = "faults-timeout-v1"
    path = s.study(name, per_value=3)
    hit: set[int] = set()
    s.expect(c.url, name, 6, dead_trials=hit)
    env = {"HPO_STORAGE": c.url, "FAULT_SLEEP": "2.0", "FAULT_STEPS": "4",
           "HPO_DB_PATIENCE": None}
    c.sql(f"ALTER ROLE postgres SET {setting} = '300ms'")
    engine = sqlalchemy.create_engine(c.url, poolclass=NullPool)
    holder = engine.connect()
    code, elapsed, worker = None, 0.0, None
    try:
        holder.execute(sqlalchemy.text("SET lock_timeout = 0"))
        holder.execute(sqlalchemy.text("SET statement_timeout = 0"))
        holder.commit()
        worker = s.hpo("worker", path, "--trials", 6, env=env, name="worker")
        s.wait_for(lambda: any(t.intermediate_values for t in running_trials(c.url, name)),
                   120, "a running trial")
        hit.update(t.number for t in running_trials(c.url, name))
        holder.execute(sqlalchemy.text("LOCK TABLE trials IN ACCESS EXCLUSIVE MODE"))
        locked = time.monotonic()
        code = worker.wait(20)
        elapsed = time.monotonic() - locked
        if code is None:
            time.sleep(max(0.0, 40 - elapsed))
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()
        c.sql(f"ALTER ROLE postgres RESET {setting}")
    message = setting.replace("_", " ")  # "canceling statement due to lock timeout"
    s.note(f"{setting} = 300ms, the trials table locked mid-run for up to 40s: worker exit "
           f"{code} after {elapsed:.1f}s")
    if worker is None:
        return
    if code is None:
        s.problem(f"the worker was still retrying the {message} 20s into the lock")
        s.exit_code(worker, 0, 120, "the worker, once the lock was released")
    elif code == 0:
        s.problem("the worker exited 0 within 20s of the lock, its budget not done")
    if message not in worker.stderr():
        s.problem(f"the worker did not show the database's message ({message!r}): "
                  f"{worker.tail(3)}")
    s.exit_code(s.hpo("worker", path, "--trials", 6, env={**env, "FAULT_SLEEP": "0.05"},
                      name="after"), 0, 120, "a worker once the lock is released")


# --- (k) start-up while the database is down --------------------------------------------

def startup_db_down(s: Scene) -> None:
    """hpo worker against a database that is down: retries with backoff and exits 1 (not 2)
    when HPO_DB_PATIENCE (8 s) runs out; one that comes back in time is waited for."""
    c = s.cluster()
    name = "faults-startup-v1"
    path = s.study(name, per_value=2)
    s.expect(c.url, name, 4)
    c.stop()
    started = time.monotonic()
    worker = s.hpo("worker", path, "--trials", 4,
                   env={"HPO_STORAGE": c.url, "HPO_DB_PATIENCE": "8"}, name="patience")
    code = worker.wait(60)
    elapsed = time.monotonic() - started
    s.note(f"database down, HPO_DB_PATIENCE=8: exit {code} after {elapsed:.1f}s")
    if code != 1:
        s.problem(f"exit {code} with the database down, expected 1 (2 means bad input): "
                  f"{worker.tail(3)}")
    if elapsed < 6:
        s.problem(f"gave up after {elapsed:.1f}s: it did not retry for HPO_DB_PATIENCE")
    if elapsed > 40:
        s.problem(f"took {elapsed:.0f}s to give up with HPO_DB_PATIENCE=8")
    if code is None:
        worker.kill_tree()
    worker = s.hpo("worker", path, "--trials", 4,
                   env={"HPO_STORAGE": c.url, "FAULT_SLEEP": "0.05"}, name="comes-back")
    time.sleep(4)
    c.start()
    s.exit_code(worker, 0, 120, "a worker started while the database was down for 4s")


def supervisor_sigterm_db_down(s: Scene) -> None:
    """hpo run obeys SIGTERM within 10 s while the database is down: at start-up (exit 130,
    or ended by the signal: nothing has started), and in an outage mid-run (exit 130, no
    worker left behind); a run afterwards completes the study."""
    c = s.cluster()
    name = "faults-sigterm-v1"
    path = s.study(name, per_value=6)
    stopped: set[int] = set()
    s.expect(c.url, name, 12, dead_pids=stopped)
    env = {"HPO_STORAGE": c.url, "FAULT_SLEEP": "1.0", "HPO_DB_PATIENCE": None}
    for when in ("at start-up", "mid-run"):
        if when == "at start-up":
            c.stop()
            fleet = s.hpo("run", path, "--workers", 2, "--trials", 12, env=env, name="fleet")
        else:
            c.start()
            fleet = s.hpo("run", path, "--workers", 2, "--trials", 12, env=env, name="fleet")
            s.wait_for(lambda: count_states(c.url, name)["COMPLETE"] >= 2
                       and count_states(c.url, name)["RUNNING"] >= 1, 120, "progress")
            stopped.update(fleet.workers())
            c.stop()
        time.sleep(4)
        fleet.workers()
        sent = time.monotonic()
        fleet.popen.send_signal(signal.SIGTERM)
        code = fleet.wait(30)
        took = time.monotonic() - sent
        s.note(f"SIGTERM {when} with the database down: exit {code} after {took:.1f}s")
        if code is None or took > 10.5:
            s.problem(f"hpo run took {took:.0f}s to obey SIGTERM {when} with the database "
                      f"down (at most 10s)")
        elif when == "at start-up" and code == -signal.SIGTERM:
            pass  # nothing started yet: ending by the signal itself is obeying it
        elif code != 130:
            s.problem(f"hpo run exited {code} on SIGTERM {when}, expected 130: "
                      f"{fleet.tail(2)}")
        left = [p for p in fleet.seen if alive(p)]
        if left:
            s.problem(f"worker pids {left} still running after the supervisor exited")
        fleet.kill_tree()
    c.start()
    s.exit_code(s.hpo("run", path, "--workers", 2, "--trials", 12,
                      env={**env, "FAULT_SLEEP": "0.05"}, name="after"), 0, 120,
                "hpo run once the database is back")


# --- the catalogue ------------------------------------------------------------------------

@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    function: Callable[..., None]
    options: dict[str, Any] = field(default_factory=dict)
    root: bool = False  # needs namespaces / mounts
    full_only: bool = False  # make test skips it; HPO_FAULTS_FULL=1 and the bench run it


SCENARIOS = {s.key: s for s in (
    Scenario("a-sigkill", "10 SIGKILLs of 8 workers", sigkill_workers),
    Scenario("b-restarts", "2 fast + 1 immediate restart + kill -9 of the postmaster",
             restart_database),
    Scenario("c-outage", "outage of 2x the heartbeat grace", outage),
    Scenario("d-terminate", "pg_terminate_backend every 2 s for a minute", terminate_backends),
    Scenario("e-layout", "lost layout lock, 4,000-slot budget", lost_layout_lock),
    Scenario("f-sigstop", "worker SIGSTOPped past the grace, then SIGCONT", sigstop_worker),
    Scenario("g-pidns", "workers in a PID namespace killed, then a run (journal)",
             pid_namespace, {"storage": "journal", "mount_proc": True}, root=True),
    Scenario("g-pidns-nomount", "same, namespace without --mount-proc (journal)",
             pid_namespace, {"storage": "journal", "mount_proc": False}, root=True),
    Scenario("g-pidns-pg", "same, on PostgreSQL with a 600 s grace", pid_namespace,
             {"storage": "postgresql", "mount_proc": True}, root=True, full_only=True),
    Scenario("h-foreign", "plain Optuna client SIGKILLed holding a slot", foreign_client),
    Scenario("i-new-journal", "same name, new journal file: from scratch",
             checkpoint_new_storage, {"storage": "journal"}),
    Scenario("i-new-database", "same name, new database: from scratch",
             checkpoint_new_storage, {"storage": "postgresql"}),
    Scenario("i-names", "col/x and col_x: no crossover", checkpoint_names_apart),
    Scenario("i-odd-names", "300-character name; a study named '..'", checkpoint_odd_names),
    Scenario("i-read-only", "read-only checkpoint folder: exit 2", checkpoint_read_only,
             root=True),
    Scenario("i-full-disk", "full checkpoint disk: handed back", checkpoint_full_disk,
             root=True),
    Scenario("j-lock-timeout", "lock_timeout mid-run: fails at once, no retrying",
             lock_timeout, {"setting": "lock_timeout"}),
    Scenario("j-statement-timeout", "statement_timeout mid-run: fails at once",
             lock_timeout, {"setting": "statement_timeout"}, full_only=True),
    Scenario("k-startup", "start-up with the database down", startup_db_down),
    Scenario("k-sigterm", "SIGTERM to hpo run while the database is down",
             supervisor_sigterm_db_down),
)}


def run(key: str, work: Path, *, full: bool = FULL) -> Outcome:
    """Run one scenario in ``work`` and audit the storage; everything started is torn down."""
    scenario = SCENARIOS[key]
    scene = Scene(work, full)
    started = time.monotonic()
    try:
        if scenario.root and not IS_ROOT:
            raise Abort("needs root (unshare, mount)")
        scenario.function(scene, **scenario.options)
    except Abort as e:
        scene.problem(str(e))
        for proc in scene.procs:
            scene.note(f"{proc.name} (exit {proc.poll()}), last lines:\n      {proc.tail(8)}")
    except Exception as e:  # noqa: BLE001 - a scenario that breaks is a finding, with its trace
        import traceback

        scene.problem(f"the scenario itself failed: {type(e).__name__}: {e}\n"
                      + traceback.format_exc(limit=-4))
    finally:
        for proc in scene.procs:
            proc.kill_tree()
    seconds = time.monotonic() - started
    total: Audit | None = None
    try:
        for cluster in scene.clusters:
            cluster.ensure_running()
        audits = [(e.study, audit(e.url, e.study, e.budget, value=e.value,
                                  dead_pids=e.dead_pids, dead_trials=e.dead_trials))
                  for e in scene.expected]
        if len(audits) == 1:
            total = audits[0][1]
        elif audits:
            total = Audit(requested=0)
            for study, one in audits:
                total = total.merge(one, study)
    except Exception as e:  # noqa: BLE001 - no audit: say why
        scene.problem(f"the audit failed: {type(e).__name__}: {e}")
        total = None
    finally:
        for proc in scene.procs:
            proc.close()
        for cluster in scene.clusters:
            cluster.destroy()
        # Checkpoints and the study files: small, but a run of the bench should leave none.
        shutil.rmtree(scene.work / "checkpoints", ignore_errors=True)
    return Outcome(key, scenario.title, total, seconds, scene.problems, scene.details)


def check(key: str, work: Path) -> Outcome:
    """For the tests: run the scenario and fail with its whole report unless it is ok."""
    import pytest

    scenario = SCENARIOS[key]
    if scenario.full_only and not FULL:
        pytest.skip(f"{key} runs in the full version only (HPO_FAULTS_FULL=1, bench/faults.py)")
    if scenario.root and not IS_ROOT:
        pytest.skip(f"{key} needs root (unshare, mount)")
    outcome = run(key, work, full=FULL)
    assert outcome.ok, outcome.report()
    return outcome
