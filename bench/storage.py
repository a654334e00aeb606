"""Benchmark: Optuna's journal file storage vs SQLite (and optionally PostgreSQL) under contention.

Why: hpo's embedded default storage must take several worker processes on one machine at once.
This measures the candidates side by side, in one run, under the same load: W worker processes
(started with 'spawn') run ``study.optimize`` on one shared study, T trials each, with a trivial
objective (3 suggested floats, no sleep) and ``RandomSampler``, so the storage is the bottleneck.
Each trial is its own ``optimize(n_trials=1)`` call inside a try, so a storage error (SQLite's
"database is locked", the SQLAlchemy default 5 s timeout kept as a user gets it) is counted and
the worker goes on. Storages use Optuna's defaults.

Per backend: trials COMPLETE in the study vs W*T expected, storage errors, trials/s (complete
trials over the wall time from the moment all workers are ready until the last one finishes)
and ms/trial (mean latency of one trial as a worker sees it, lock waits included).

Run:
    python bench/storage.py [--quick] [--workers 3] [--trials 60]
    python bench/storage.py --pg postgresql+psycopg2://postgres@127.0.0.1:5432/postgres

``--quick`` is 3 workers x 15 trials (the test suite runs it). With ``--pg``, a fresh database
hpo_bench_<random> is created on that server and dropped afterwards. Files go to a temporary
directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

STUDY_NAME = "bench-storage"
READY_TIMEOUT_S = 300


@dataclass
class Result:
    backend: str
    workers: int
    expected: int
    complete: int = 0
    errors: int = 0
    wall_s: float = 0.0
    trial_s_sum: float = 0.0
    attempts: int = 0
    error_kinds: Counter | None = None

    @property
    def trials_per_s(self) -> float:
        return self.complete / self.wall_s if self.wall_s else 0.0

    @property
    def ms_per_trial(self) -> float:
        return 1000 * self.trial_s_sum / self.attempts if self.attempts else 0.0


def open_storage(backend: str, location: str):
    """Optuna's storage with its defaults: a JournalStorage for 'journal', else the URL itself."""
    import optuna

    if backend == "journal":
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(location))
    return location  # optuna builds RDBStorage(url) with default engine settings


def objective(trial) -> float:
    x = trial.suggest_float("x", -10, 10)
    y = trial.suggest_float("y", -10, 10)
    z = trial.suggest_float("z", 1e-3, 1.0, log=True)
    return x * x + y * y + z


def error_kind(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:90]


def worker(backend: str, location: str, n_trials: int, ready, results) -> None:
    """Load the shared study, wait for the others, run n_trials one at a time, report."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    errors: Counter = Counter()
    study = None
    for _ in range(10):  # loading reads the schema; under contention it can fail too
        try:
            study = optuna.load_study(study_name=STUDY_NAME,
                                      storage=open_storage(backend, location),
                                      sampler=optuna.samplers.RandomSampler())
            break
        except Exception as e:
            errors[error_kind(e)] += 1
    ready.wait(READY_TIMEOUT_S)
    trial_s_sum = 0.0
    for _ in range(n_trials if study is not None else 0):
        start = time.monotonic()
        try:
            study.optimize(objective, n_trials=1)
        except Exception as e:
            errors[error_kind(e)] += 1
        trial_s_sum += time.monotonic() - start
    results.put((errors, trial_s_sum, n_trials if study is not None else 0, time.monotonic()))


def run_backend(backend: str, location: str, n_workers: int, n_trials: int) -> Result:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(study_name=STUDY_NAME, storage=open_storage(backend, location),
                        sampler=optuna.samplers.RandomSampler())
    ctx = multiprocessing.get_context("spawn")
    ready, results = ctx.Barrier(n_workers + 1), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(backend, location, n_trials, ready, results))
             for _ in range(n_workers)]
    for proc in procs:
        proc.start()
    ready.wait(READY_TIMEOUT_S)  # all workers imported optuna and loaded the study
    started = time.monotonic()
    result = Result(backend, n_workers, n_workers * n_trials, error_kinds=Counter())
    finished = []
    for _ in procs:
        errors, trial_s_sum, attempts, finished_at = results.get(timeout=READY_TIMEOUT_S * 4)
        result.error_kinds.update(errors)
        result.trial_s_sum += trial_s_sum
        result.attempts += attempts
        finished.append(finished_at)
    for proc in procs:
        proc.join()
    result.wall_s = max(finished) - started
    result.errors = sum(result.error_kinds.values())
    study = optuna.load_study(study_name=STUDY_NAME, storage=open_storage(backend, location))
    states = Counter(t.state for t in study.get_trials(deepcopy=False))
    result.complete = states[optuna.trial.TrialState.COMPLETE]
    return result


def create_pg_database(server_url: str) -> tuple[str, Callable[[], None]]:
    """A fresh database on the server; returns its URL and a function that drops it."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    name = f"hpo_bench_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(server_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return admin.url.set(database=name).render_as_string(hide_password=False), drop


def print_report(results: list[Result]) -> None:
    header = (f"{'backend':<11}{'workers':>8}{'complete/expected':>19}{'errors':>8}"
              f"{'trials/s':>10}{'ms/trial':>10}{'wall s':>8}")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r.backend:<11}{r.workers:>8}{f'{r.complete}/{r.expected}':>19}{r.errors:>8}"
              f"{r.trials_per_s:>10.1f}{r.ms_per_trial:>10.1f}{r.wall_s:>8.2f}")
    for r in results:
        for kind, count in r.error_kinds.most_common(3):
            print(f"  {r.backend} error x{count}: {kind}")
    journal = results[0]
    for other in results[1:]:
        ratio = journal.trials_per_s / other.trials_per_s if other.trials_per_s else float("inf")
        print(f"journal vs {other.backend}: {ratio:.2f}x trials/s, "
              f"{journal.errors} vs {other.errors} errors")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 workers x 15 trials")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--trials", type=int, default=60, help="trials per worker")
    parser.add_argument("--pg", metavar="URL", help="PostgreSQL server URL; adds a PostgreSQL run")
    args = parser.parse_args(argv)
    workers, trials = (3, 15) if args.quick else (args.workers, args.trials)

    print(f"storage benchmark: {workers} workers x {trials} trials, RandomSampler, "
          f"python {sys.version.split()[0]}")
    results = []
    with tempfile.TemporaryDirectory(prefix="hpo-bench-storage-") as tmp:
        results.append(run_backend("journal", str(Path(tmp, "journal.log")), workers, trials))
        results.append(run_backend("sqlite", f"sqlite:///{Path(tmp, 'study.db')}", workers, trials))
        if args.pg:
            url, drop = create_pg_database(args.pg)
            try:
                results.append(run_backend("postgresql", url, workers, trials))
            finally:
                drop()
    print_report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
