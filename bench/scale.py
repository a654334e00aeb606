"""Scale: studies of 1,000 to 100,000 trials, and 32 to 128 workers on one PostgreSQL.

**Reads.** For each size, a study is laid out with ``open_study(definition, url, budget=N)``
(timed: that is the layout every ``hpo run`` does) and then filled in bulk with SQL, not run:
most slots COMPLETE with a value, provenance attributes and three reported steps, some
FAIL (errors and divergences), some PRUNED, a few retried after a dead worker, a few
RUNNING with fresh heartbeats, seed re-runs, and the last 2% still WAITING. Then, on that
study, side by side in one process:

* Optuna's own read, ``optuna.load_study(...).get_trials()``, the yardstick;
* ``hpo status``, ``hpo report --no-dashboard`` and ``hpo export`` (the CLI's ``main``,
  in-process, so interpreter start-up and imports are not counted on either side);
* a worker's start-up: everything ``hpo worker`` does before its first trial runs (open
  the study, lay out nothing new, look at leases, claim a trial), then the trial is handed
  back.

Each is printed in seconds and as a ratio to Optuna's read. The goals (issue "Scale out"):
status and a worker's start-up <= 0.05x, report <= 0.5x, at 100,000 trials.

**Fleets.** For each worker count, ``hpo run --workers W`` on a fresh database of a private
PostgreSQL (``max_connections`` raised for the run), a study whose objective sleeps one
second, and a budget of ``W x per-worker`` trials; then the same through PgBouncer in
transaction pooling with a small pool. Printed per run: seconds from the launch until every
worker had run a trial (from the trials' own start times and ``worker_pid`` provenance),
trials/s against the ideal (W / trial seconds), the peak of server connections to the
study's database (``pg_stat_activity``, polled), errors (exit code, tracebacks, failed
trials), and lost or duplicated trials (slots with no complete trial, or more than one).

    python bench/scale.py                     # 1,000 10,000 100,000 trials; 32 64 128 workers
    python bench/scale.py --quick             # small, for the test suite (about a minute)
    python bench/scale.py --sizes 10000 --workers 64 --no-bouncer
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import optuna
import sqlalchemy
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the private cluster and PgBouncer of the test suite

from pg_cluster import Cluster  # noqa: E402
from pgbouncer import Bouncer  # noqa: E402

from hpo import attrs  # noqa: E402

READ_STUDY = '''
from hpo import Study, scientific, nuisance, fixed, choice, log_uniform, uniform

def objective(config, ctx):
    raise RuntimeError("this study is filled in by bench/scale.py, never run")

study = Study(
    name="scale",
    goal="Which optimizer is better on a synthetic function?",
    metric="loss", direction="minimize",
    space={
        "optimizer": scientific(choice("sgd", "adam")),
        "learning_rate": nuisance(log_uniform(1e-4, 1.0)),
        "momentum": nuisance(uniform(0.8, 0.99), when={"optimizer": "sgd"}),
        "beta1": nuisance(uniform(0.8, 0.99), when={"optimizer": "adam"}),
        "batch_size": fixed(128),
    },
    objective=objective, trials_per_value=8,
)
'''

FLEET_STUDY = '''
import time
from hpo import Study, scientific, nuisance, choice, uniform

def objective(config, ctx):
    time.sleep({seconds})
    return config["x"] if config["arm"] == "a" else 1 - config["x"]

study = Study(name="fleet", goal="Do many workers share one PostgreSQL?", metric="loss",
              space={{"arm": scientific(choice("a", "b")), "x": nuisance(uniform(0.0, 1.0))}},
              objective=objective, trials_per_value=1)
'''

# What a real worker writes on every trial it runs (hpo.provenance), so the reads carry the
# attributes real trials carry.
PROVENANCE = {attrs.HOST: "bench-host", attrs.GPU: "none", attrs.CUDA_VISIBLE_DEVICES: "(unset)",
              "python": "3.11.2", "torch_version": "2.13.0", "optuna_version": optuna.__version__,
              "git_commit": "0" * 40, "git_dirty": False}
RUNNING = 8  # slots left RUNNING, with a fresh heartbeat, in each read study


# --- databases -------------------------------------------------------------------------------

def fresh_database(server: str) -> str:
    name = f"hpo_scale_{uuid.uuid4().hex[:10]}"
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


# --- reads -----------------------------------------------------------------------------------

def build(url: str, path: Path, n: int) -> float:
    """Lay out an n-slot study (timed) and fill it in bulk; returns the layout's seconds."""
    from scipy.stats import qmc  # noqa: F401 - imported once, not counted in the layout

    from hpo.analysis.seeds import enqueue_seed_reruns
    from hpo.store import open_study
    from hpo.study_file import load_study_file

    definition = load_study_file(path)
    start = time.perf_counter()
    study, queue = open_study(definition, url, budget=n)
    layout = time.perf_counter() - start
    study_id = queue.study_id
    started = n - max(1, n // 50)   # the last 2% wait
    done = started - RUNNING        # before them, a few run
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    t0 = dt.datetime.now() - dt.timedelta(seconds=n)
    with engine.begin() as conn:
        sql = conn.execute
        text = sqlalchemy.text
        sql(text("""
            UPDATE trials t SET
              state = CAST(CASE WHEN h.slot >= :started THEN 'WAITING'
                                WHEN h.slot >= :done THEN 'RUNNING'
                                WHEN h.slot % 25 = 7 THEN 'FAIL'
                                WHEN h.slot % 100 IN (13, 64) THEN 'PRUNED'
                                ELSE 'COMPLETE' END AS trialstate),
              datetime_start = CASE WHEN h.slot < :started
                                    THEN :t0 + h.slot * interval '1 second' END,
              datetime_complete = CASE WHEN h.slot < :done
                                       THEN :t0 + h.slot * interval '1 second'
                                            + interval '8 seconds' END
            FROM hpo_slots h WHERE h.trial_id = t.trial_id AND h.study_id = :s"""),
            {"s": study_id, "started": started, "done": done, "t0": t0})
        # A value from the point: a valley in the learning rate, a little from the rest.
        sql(text("""
            INSERT INTO trial_values (trial_id, objective, value, value_type)
            SELECT t.trial_id, 0, abs(ln(lr.param_value / 0.01)) * 0.1
                   + coalesce(m.param_value, b.param_value) * 0.1 + o.param_value * 0.02,
                   'FINITE'
            FROM trials t
            JOIN trial_params lr ON lr.trial_id = t.trial_id
                                AND lr.param_name = 'learning_rate'
            JOIN trial_params o ON o.trial_id = t.trial_id AND o.param_name = 'optimizer'
            LEFT JOIN trial_params m ON m.trial_id = t.trial_id AND m.param_name = 'momentum'
            LEFT JOIN trial_params b ON b.trial_id = t.trial_id AND b.param_name = 'beta1'
            WHERE t.study_id = :s AND t.state = 'COMPLETE'"""), {"s": study_id})
        # Provenance on every trial that ran; an error on the failures (every other one a
        # divergence); three reported steps on complete trials, one on pruned ones.
        keys = [*PROVENANCE, attrs.WORKER_PID, attrs.WORKER_STARTED]
        sql(text("""
            INSERT INTO trial_user_attributes (trial_id, key, value_json)
            SELECT t.trial_id, u.key,
                   CASE WHEN u.key IN (:pid, :pid_started)
                        THEN CAST(100000 + t.number % 64 AS text) ELSE u.value_json END
            FROM trials t, unnest(CAST(:keys AS varchar[]), CAST(:values AS text[]))
                 AS u(key, value_json)
            WHERE t.study_id = :s AND t.state <> 'WAITING'"""),
            {"s": study_id, "keys": keys, "pid": attrs.WORKER_PID,
             "pid_started": attrs.WORKER_STARTED,
             "values": [json.dumps(v) for v in PROVENANCE.values()] + ["0", "0"]})
        sql(text("""
            INSERT INTO trial_user_attributes (trial_id, key, value_json)
            SELECT t.trial_id, e.key, e.value_json FROM trials t
            JOIN hpo_slots h ON h.trial_id = t.trial_id,
            LATERAL (VALUES (:error, CASE WHEN h.slot % 100 < 50
                                          THEN '"diverged: loss is nan"'
                                          ELSE '"RuntimeError: CUDA error: illegal address"'
                                     END),
                            (:diverged, CASE WHEN h.slot % 100 < 50 THEN 'true' END))
                    AS e(key, value_json)
            WHERE t.study_id = :s AND t.state = 'FAIL' AND e.value_json IS NOT NULL"""),
            {"s": study_id, "error": attrs.ERROR, "diverged": attrs.DIVERGED})
        sql(text("""
            INSERT INTO trial_intermediate_values
                (trial_id, step, intermediate_value, intermediate_value_type)
            SELECT t.trial_id, s.step, v.value + 1.0 / (s.step + 1), 'FINITE'
            FROM trials t JOIN trial_values v ON v.trial_id = t.trial_id,
                 generate_series(0, 2) AS s(step)
            WHERE t.study_id = :s AND t.state = 'COMPLETE'"""), {"s": study_id})
        sql(text("""
            INSERT INTO trial_intermediate_values
                (trial_id, step, intermediate_value, intermediate_value_type)
            SELECT t.trial_id, 0, 1.5, 'FINITE' FROM trials t
            WHERE t.study_id = :s AND t.state = 'PRUNED'"""), {"s": study_id})
        sql(text("""
            INSERT INTO trial_heartbeats (trial_id, heartbeat)
            SELECT trial_id, CURRENT_TIMESTAMP FROM trials
            WHERE study_id = :s AND state = 'RUNNING'"""), {"s": study_id})
    # A few slots whose worker died: their attempt failed and was retried (the queue's own
    # retry), and the retry completed.
    retried = range(3, done, max(1, n // 20) | 1)  # odd steps: both scientific values
    with engine.begin() as conn:
        ids = dict(conn.execute(sqlalchemy.text(
            "SELECT slot, trial_id FROM hpo_slots WHERE study_id = :s AND slot = ANY(:slots)"),
            {"s": study_id, "slots": list(retried)}).all())
    for slot in retried:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(
                "UPDATE trials SET state = 'FAIL' WHERE trial_id = :t; "
                "DELETE FROM trial_values WHERE trial_id = :t; "
                "INSERT INTO trial_user_attributes (trial_id, key, value_json) "
                "VALUES (:t, :k, '\"worker died (bench-host pid 100001)\"') "
                "ON CONFLICT (trial_id, key) DO UPDATE SET value_json = EXCLUDED.value_json"),
                {"t": ids[slot], "k": attrs.ERROR})
        queue.add_retry(queue.storage.get_trial(ids[slot]))
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("""
            WITH retry AS (
                UPDATE trials t SET state = 'COMPLETE', datetime_start = :t1,
                                    datetime_complete = :t1 + interval '8 seconds'
                FROM hpo_slots h WHERE h.trial_id = t.trial_id AND h.study_id = :s
                  AND h.attempt = 1 RETURNING t.trial_id)
            INSERT INTO trial_values (trial_id, objective, value, value_type)
            SELECT trial_id, 0, 0.5, 'FINITE' FROM retry"""),
            {"s": study_id, "t1": dt.datetime.now()})
    # Seed re-runs of each value's best trial: two done, one still waiting.
    enqueue_seed_reruns(definition, study, top=1, repeats=3)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("""
            WITH reruns AS (
                SELECT t.trial_id, row_number() OVER (ORDER BY t.number) AS i FROM trials t
                JOIN trial_user_attributes a ON a.trial_id = t.trial_id AND a.key = :rerun
                WHERE t.study_id = :s),
            ran AS (
                UPDATE trials t SET state = 'COMPLETE', datetime_start = :t1,
                                    datetime_complete = :t1 + interval '8 seconds'
                FROM reruns r WHERE r.trial_id = t.trial_id AND r.i % 3 <> 0
                RETURNING t.trial_id)
            INSERT INTO trial_values (trial_id, objective, value, value_type)
            SELECT trial_id, 0, 0.05, 'FINITE' FROM ran"""),
            {"s": study_id, "rerun": attrs.SEED_RERUN_OF, "t1": dt.datetime.now()})
        conn.execute(sqlalchemy.text("ANALYZE"))
    engine.dispose()
    return layout


def timed(call) -> tuple[float, object]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def cli(*args: str) -> str:
    """``hpo ARGS`` in this process; its standard output (it must exit 0)."""
    from hpo.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    if code != 0:
        raise SystemExit(f"hpo {' '.join(args)} exited {code}: {err.getvalue()}")
    return out.getvalue()


def worker_start(path: Path, url: str, budget: int) -> int:
    """What ``hpo worker`` does before its first trial runs; the trial is handed back."""
    from hpo.context import check_checkpoint_root
    from hpo.provenance import collect
    from hpo.store import open_study
    from hpo.store.leases import Reaper
    from hpo.study_file import load_study_file

    definition = load_study_file(path)
    check_checkpoint_root()
    study, queue = open_study(definition, url, budget=budget)
    owner = collect(str(path))
    Reaper(queue, max_retry=3).reap()
    trial = queue.claim(budget, owner)
    if trial is None:
        raise SystemExit("worker start-up: nothing to claim")
    queue.hand_back(trial)
    return trial.number


@dataclass
class Reads:
    trials: int
    layout: float
    optuna: float
    status: float
    report: float
    export: float
    start: float


def reads(server: str, n: int, folder: Path, repeats: int = 1) -> Reads:
    """Build an n-slot study and time each read on it: the fastest of ``repeats`` tries, on
    both sides alike (the machine is shared; the fastest is the least disturbed)."""
    path = folder / "scale_study.py"
    path.write_text(READ_STUDY)
    name = fresh_database(server)
    url = f"{server}/{name}"
    try:
        layout = build(url, path, n)
        engine = sqlalchemy.create_engine(url, poolclass=NullPool)
        with engine.connect() as conn:
            total = conn.execute(sqlalchemy.text("SELECT count(*) FROM trials")).scalar_one()
        engine.dispose()
        def best(call):
            runs = [timed(call) for _ in range(repeats)]
            return min(t for t, _ in runs), runs[-1][1]

        optuna_s, trials = best(lambda: optuna.load_study(
            study_name="scale", storage=url).get_trials(deepcopy=False))
        assert len(trials) == total, (len(trials), total)
        status_s, status = best(lambda: cli("status", str(path), "--storage", url))
        report_s, report = best(lambda: cli("report", str(path), "--storage", url,
                                            "--no-dashboard", "--out", str(folder / "report")))
        export_s, _ = best(lambda: cli("export", str(path), "--storage", url,
                                       "--out", str(folder / "export.csv")))
        start_s, _ = best(lambda: worker_start(path, url, n))
        if count_table(str(status)) != count_table(str(report)):
            raise SystemExit(f"status and report disagree:\n{status}\n{report}")
        return Reads(total, layout, optuna_s, status_s, report_s, export_s, start_s)
    finally:
        drop_database(server, name)


def count_table(text: str) -> list[list[str]]:
    """The per-value count table's rows (plain or markdown), cells only."""
    import re

    rows, inside = [], False
    for line in text.splitlines():
        cells = ([c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|")
                 else re.split(r"\s{2,}", line.strip()))
        if cells[:2] == ["scientific value", "finished"]:
            inside = True
        elif inside and (not line.strip() or not cells[0] or set(cells[0]) <= {"-"}):
            if rows and not line.strip():
                break
            continue
        if inside:
            rows.append(cells[:len(rows[0]) if rows else None])
    return rows


# --- fleets ----------------------------------------------------------------------------------

@dataclass
class Fleet:
    workers: int
    via: str
    budget: int
    all_ran: float | None  # seconds from launch until the last worker's first trial began
    ran: int               # workers (pids) that completed a trial
    rate: float            # trials/s, first start to last finish
    steady: float | None   # trials/s once every worker runs, until the queue is empty
    ideal: float
    peak: int              # server connections to the study's database
    errors: str
    lost: int
    duplicated: int
    wall: float


class Peak:
    """The most connections to one database, polled from pg_stat_activity in a thread."""

    def __init__(self, admin_url: str, database: str):
        self._engine = sqlalchemy.create_engine(admin_url, poolclass=NullPool)
        self._database = database
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self._engine.connect() as conn:
            while not self._stop.wait(0.2):
                n = conn.execute(sqlalchemy.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = :d"),
                    {"d": self._database}).scalar_one()
                conn.rollback()
                self.peak = max(self.peak, int(n))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self._engine.dispose()
        return self.peak


def fleet(server: str, worker_server: str, via: str, workers: int, per_worker: int,
          seconds: float, folder: Path) -> Fleet:
    """``hpo run --workers W`` through ``worker_server`` (the cluster or PgBouncer)."""
    name = fresh_database(server)
    path = folder / f"fleet_{via}_{workers}.py"
    path.write_text(FLEET_STUDY.format(seconds=seconds))
    budget = workers * per_worker
    log = folder / f"fleet_{via}_{workers}.log"
    peak = Peak(f"{server}/postgres", name)
    launched_at, start = dt.datetime.now(), time.perf_counter()
    try:
        with open(log, "w") as err:
            code = subprocess.run(
                [sys.executable, "-m", "hpo", "run", str(path), "--workers", str(workers),
                 "--trials", str(budget)], cwd=folder, stdout=subprocess.DEVNULL, stderr=err,
                env={**os.environ, "HPO_STORAGE": f"{worker_server}/{name}"},
                timeout=1800).returncode
        wall = time.perf_counter() - start
        connections = peak.stop()
        engine = sqlalchemy.create_engine(f"{server}/{name}", poolclass=NullPool)
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text("""
                SELECT h.slot, t.state, t.datetime_start, t.datetime_complete,
                       (SELECT value_json FROM trial_user_attributes a
                        WHERE a.trial_id = t.trial_id AND a.key = :pid)
                FROM trials t LEFT JOIN hpo_slots h ON h.trial_id = t.trial_id"""),
                {"pid": attrs.WORKER_PID}).all()
        engine.dispose()
    finally:
        peak.stop()
        drop_database(server, name)
    complete = [r for r in rows if r[1] == "COMPLETE"]
    per_slot = Counter(r[0] for r in complete)
    lost = sum(1 for s in range(budget) if per_slot[s] == 0)
    duplicated = sum(c - 1 for c in per_slot.values() if c > 1) + sum(
        1 for r in complete if r[0] is None or r[0] >= budget)
    first: dict[str, dt.datetime] = {}
    for r in complete:
        if r[4] is not None:
            first[r[4]] = min(first.get(r[4], r[2]), r[2])
    everyone = sorted(first.values())[workers - 1] if len(first) >= workers else None
    all_ran = (everyone - launched_at).total_seconds() if everyone else None
    span = (max(r[3] for r in complete) - min(r[2] for r in complete)).total_seconds() \
        if complete else float("nan")
    steady = None
    if everyone is not None:  # from then until the last trial was taken: all W at work
        last = max(r[2] for r in complete)
        window = (last - everyone).total_seconds()
        if window >= 2:
            steady = sum(1 for r in complete if everyone <= r[3] <= last) / window
    text = log.read_text()
    failed = sum(1 for r in rows if r[1] == "FAIL")
    errors = (f"exit {code}, {text.count('Traceback')} tracebacks, {failed} failed trials"
              if code or "Traceback" in text or failed else "none")
    return Fleet(workers, via, budget, all_ran, len(first), len(complete) / span if span else 0,
                 steady, workers / seconds, connections, errors, lost, duplicated, wall)


# --- output ----------------------------------------------------------------------------------

def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in rows]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(lines)


def reads_table(results: list[Reads]) -> str:
    def ratio(x: float, r: Reads) -> str:
        return f"{x:.2f} s ({x / r.optuna:.3f}x)"

    rows = [["trials", "layout", "Optuna get_trials", "hpo status", "hpo report", "hpo export",
             "worker start-up"]]
    rows += [[f"{r.trials:,}", f"{r.layout:.1f} s", f"{r.optuna:.2f} s", ratio(r.status, r),
              ratio(r.report, r), ratio(r.export, r), ratio(r.start, r)] for r in results]
    return table(rows)


def goals(results: list[Reads]) -> list[str]:
    largest = max(results, key=lambda r: r.trials)
    if largest.trials < 100_000:
        return [f"the goals are set at 100,000 trials; the largest study here has "
                f"{largest.trials:,}, so none is judged"]
    out = []
    for what, value, goal in (("hpo status", largest.status, 0.05),
                              ("worker start-up", largest.start, 0.05),
                              ("hpo report", largest.report, 0.5)):
        x = value / largest.optuna
        out.append(f"{what} at {largest.trials:,} trials: {x:.3f}x Optuna's read "
                   f"(goal <= {goal}x): {'met' if x <= goal else 'NOT met'}")
    return out


def fleets_table(results: list[Fleet]) -> str:
    rows = [["workers", "storage", "budget", "all ran a trial after", "trials/s (of ideal)",
             "once all ran", "peak connections", "errors", "lost", "duplicated", "wall"]]
    rows += [[str(f.workers), f.via, str(f.budget),
              f"{f.all_ran:.1f} s" if f.all_ran is not None
              else f"never: {f.ran} of {f.workers} ran one",
              f"{f.rate:.1f} ({f.rate / f.ideal:.0%} of {f.ideal:.0f})",
              f"{f.steady:.1f} ({f.steady / f.ideal:.0%})" if f.steady is not None else "-",
              str(f.peak), f.errors, str(f.lost), str(f.duplicated), f"{f.wall:.0f} s"]
             for f in results]
    return table(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
    parser.add_argument("--sizes", type=int, nargs="*", help="study sizes (trials)")
    parser.add_argument("--workers", type=int, nargs="*", help="fleet sizes (workers)")
    parser.add_argument("--per-worker", type=int, help=(
        "trials per worker in a fleet's budget (default: 3 with --quick, else 10 or W/4 if "
        "more, so that work is left when the last of W workers has started)"))
    parser.add_argument("--trial-seconds", type=float, default=1.0)
    parser.add_argument("--pool", type=int, help="PgBouncer's server connections (default 8; "
                        "4 with --quick)")
    parser.add_argument("--no-bouncer", action="store_true", help="no PgBouncer fleets")
    args = parser.parse_args()
    sizes = args.sizes if args.sizes is not None else ([300, 1000] if args.quick
                                                       else [1000, 10000, 100000])
    counts = args.workers if args.workers is not None else ([8] if args.quick
                                                            else [32, 64, 128])
    pool = args.pool or (4 if args.quick else 8)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cluster = Cluster(settings={"max_connections": max([*counts, 0]) * 2 + 50})
    cluster.start()
    server = cluster.url.rsplit("/", 1)[0]
    folder = Path(tempfile.mkdtemp(prefix="hpo-scale-"))
    os.environ.setdefault("HPO_CHECKPOINT_DIR", str(folder / "checkpoints"))
    try:
        print(f"hpo scale benchmark: {os.cpu_count()} CPU(s), PostgreSQL "
              f"{_server_version(server)}, Optuna {optuna.__version__}", flush=True)
        if sizes:
            # Every command once on a small study first: each imports its own modules (the
            # report plotly) on its first call, and that is no cost of reading a study.
            reads(server, 50, folder)
            results = []
            for n in sizes:
                results.append(reads(server, n, folder, repeats=3 if n <= 10_000 else 1))
                print(f"  {n:,} trials read", file=sys.stderr, flush=True)
            print("\nreads (seconds, and the ratio to Optuna's get_trials on the same study; the "
                  "fastest of 3 up to 10,000 trials, 1 run beyond):")
            print(reads_table(results))
            for line in goals(results):
                print(f"- {line}")
        fleets = []
        for workers in counts:
            per_worker = args.per_worker or (3 if args.quick else max(10, workers // 4))
            fleets.append(fleet(server, server, "PostgreSQL", workers, per_worker,
                                args.trial_seconds, folder))
            print(f"  {workers} workers run", file=sys.stderr, flush=True)
            if not args.no_bouncer:
                bouncer = Bouncer(cluster, pool_size=pool, max_client_conn=workers * 2 + 20)
                bouncer.start()
                try:
                    fleets.append(fleet(server, bouncer.url.rsplit("/", 1)[0],
                                        f"PgBouncer pool {pool}", workers, per_worker,
                                        args.trial_seconds, folder))
                finally:
                    bouncer.destroy()
                print(f"  {workers} workers run through PgBouncer", file=sys.stderr, flush=True)
        if fleets:
            print(f"\nfleets (hpo run --workers W, a {args.trial_seconds:g}-second objective; "
                  "trials/s from the first start to the last finish, and while every worker "
                  "was at work):")
            print(fleets_table(fleets))
    finally:
        cluster.destroy()


def _server_version(server: str) -> str:
    engine = sqlalchemy.create_engine(f"{server}/postgres", poolclass=NullPool)
    with engine.connect() as conn:
        version = conn.execute(sqlalchemy.text("SHOW server_version")).scalar_one()
    engine.dispose()
    return str(version).split()[0]


if __name__ == "__main__":
    main()
