"""Per-trial coordination overhead: hpo workers against plain Optuna, on the same PostgreSQL.

Both sides run the same trivial objective (two floats, no work), with the same number of
worker processes, on a study that already holds 100 and then 10,000 finished trials. What
is left is what coordination costs: taking a trial, sampling, heartbeats, provenance,
recording the result.

* plain Optuna: ``study.optimize(objective, n_trials=T)`` in each process, RandomSampler;
* hpo: ``hpo worker`` processes on an hpo study of the same space (explore phase), whose
  global budget is the prefilled trials plus W x T.

``--phase exploit`` compares the Bayesian phase instead: Optuna's default TPESampler against
hpo's exploit phase (TPE within each scientific value), so the sampler's own work is counted
on both sides. ``--ahead N`` lays out N more slots than the run takes, as a study with a large
budget has, to show that a long queue of WAITING trials costs nothing per trial.

Time per trial is measured from the trials' own start and end times in storage (first
start to last finish, divided by trials), so process start-up and imports are not counted.
Both sides must finish exactly W x T new trials, or the run stops: speed that loses or
duplicates trials does not count.

    python bench/coordination.py                 # 4 workers x 250 trials, prefill 100 and 10,000
    python bench/coordination.py --quick         # small, for the test suite
    python bench/coordination.py --pg postgresql+psycopg2://postgres@127.0.0.1:5432
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
import sqlalchemy
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STUDY_FILE = '''
from hpo import Study, nuisance, uniform

def objective(config, ctx):
    return config["x"] + config["y"]

study = Study(name="coordination", goal="How much does coordination cost?", metric="loss",
              space={"x": nuisance(uniform(0.0, 1.0)), "y": nuisance(uniform(0.0, 1.0))},
              objective=objective, trials_per_value=1)
'''
DISTRIBUTIONS = {"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)}


def plain_objective(trial: optuna.Trial) -> float:
    return trial.suggest_float("x", 0.0, 1.0) + trial.suggest_float("y", 0.0, 1.0)


def plain_worker(url: str, trials: int, phase: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = (optuna.samplers.TPESampler() if phase == "exploit"
               else optuna.samplers.RandomSampler())
    study = optuna.load_study(study_name="coordination", storage=url, sampler=sampler)
    study.optimize(plain_objective, n_trials=trials)


def prefill(study: optuna.Study, count: int, slots: bool) -> None:
    study.add_trials([
        create_trial(state=TrialState.COMPLETE, value=0.5, params={"x": 0.25, "y": 0.25},
                     distributions=DISTRIBUTIONS, user_attrs={"slot": i} if slots else {})
        for i in range(count)
    ])


def seconds_per_trial(url: str, skip: int, expected: int) -> float:
    study = optuna.load_study(study_name="coordination", storage=url)
    new = [t for t in study.get_trials(deepcopy=False) if t.number >= skip
           and t.state == TrialState.COMPLETE and t.datetime_start and t.datetime_complete]
    if len(new) != expected:
        raise SystemExit(f"expected {expected} new finished trials, found {len(new)}")
    span = max(t.datetime_complete for t in new) - min(t.datetime_start for t in new)
    return span.total_seconds() / len(new)


def run_plain(url: str, prefilled: int, workers: int, trials: int, phase: str) -> float:
    study = optuna.create_study(study_name="coordination", storage=url)
    prefill(study, prefilled, slots=False)
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=plain_worker, args=(url, trials, phase))
             for _ in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"plain Optuna worker failed with exit code {p.exitcode}")
    return seconds_per_trial(url, prefilled, workers * trials)


def run_hpo(url: str, prefilled: int, workers: int, trials: int, folder: Path, phase: str,
            ahead: int) -> float:
    from hpo.store import open_study
    from hpo.study_file import load_study_file

    path = folder / "coordination_study.py"
    path.write_text(STUDY_FILE.replace("trials_per_value=1",
                                       f"trials_per_value=1, phase={phase!r}"))
    study, _ = open_study(load_study_file(path), url, budget=0)
    prefill(study, prefilled, slots=True)
    budget = prefilled + workers * trials
    if ahead:
        open_study(load_study_file(path), url, budget=budget + ahead)
    env = {**os.environ, "HPO_STORAGE": url}
    procs = [subprocess.Popen([sys.executable, "-m", "hpo", "worker", str(path), "--quiet",
                               "--trials", str(budget)], env=env, cwd=folder)
             for _ in range(workers)]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"hpo worker failed with exit code {p.returncode}")
    return seconds_per_trial(url, prefilled, workers * trials)


def fresh_database(server: str) -> str:
    name = f"hpo_bench_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(f"{server}/postgres", poolclass=NullPool,
                                     isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name


def drop_database(server: str, name: str) -> None:
    admin = sqlalchemy.create_engine(f"{server}/postgres", poolclass=NullPool,
                                     isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql+psycopg2://postgres@127.0.0.1:5432",
                        help="PostgreSQL server URL without a database name")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=250, help="new trials per worker")
    parser.add_argument("--prefill", type=int, nargs="+", default=[100, 10_000])
    parser.add_argument("--phase", choices=("explore", "exploit"), default="explore",
                        help="explore: RandomSampler vs hpo's design; exploit: TPE vs hpo's TPE")
    parser.add_argument("--ahead", type=int, default=0, metavar="N",
                        help="slots laid out beyond what the run takes (a large budget)")
    parser.add_argument("--quick", action="store_true", help="2 workers x 10 trials, prefill 20")
    args = parser.parse_args()
    if args.quick:
        args.workers, args.trials, args.prefill = 2, 10, [20]
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    baseline = "TPESampler" if args.phase == "exploit" else "RandomSampler"
    print(f"coordination benchmark, {args.phase} phase (optuna: {baseline}): {args.workers} "
          f"workers x {args.trials} new trials each"
          f"{f', {args.ahead} more slots laid out' if args.ahead else ''}, same PostgreSQL, "
          f"trivial objective, python {sys.version.split()[0]}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for prefilled in args.prefill:
            result = {}
            for side in ("optuna", "hpo"):
                name = fresh_database(args.pg)
                url = f"{args.pg}/{name}"
                started = time.monotonic()
                try:
                    if side == "optuna":
                        result[side] = run_plain(url, prefilled, args.workers, args.trials,
                                                 args.phase)
                    else:
                        result[side] = run_hpo(url, prefilled, args.workers, args.trials,
                                               Path(tmp), args.phase, args.ahead)
                finally:
                    drop_database(args.pg, name)
                print(f"  {side:6} prefill {prefilled:>6}: {1000 * result[side]:7.1f} ms/trial "
                      f"({time.monotonic() - started:.0f}s with setup)", flush=True)
            rows.append((prefilled, result["optuna"], result["hpo"]))

    print()
    print(f"{'trials in study':>15}  {'optuna ms/trial':>15}  {'hpo ms/trial':>12}  "
          f"{'hpo / optuna':>12}")
    for prefilled, plain, ours in rows:
        print(f"{prefilled:>15}  {1000 * plain:>15.1f}  {1000 * ours:>12.1f}  "
              f"{ours / plain:>11.2f}x")
    if len(rows) > 1:
        growth_plain = rows[-1][1] / rows[0][1]
        growth_ours = rows[-1][2] / rows[0][2]
        print(f"growth from {rows[0][0]} to {rows[-1][0]} trials: optuna {growth_plain:.2f}x, "
              f"hpo {growth_ours:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
