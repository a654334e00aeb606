"""The ``hpo`` command.

Exit status: 0 done, 1 a runtime failure, 2 bad input (then nothing is written to storage),
130 interrupted. Heavy libraries are imported inside the commands, so ``hpo --help`` is fast
and never imports torch.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo import env
from hpo.context import CHECKPOINT_ENV
from hpo.errors import HpoError
from hpo.failures import RETRYABLE
from hpo.launch.slurm import add_options as slurm_options
from hpo.store.urls import ENV_VAR, StorageError, redact, resolve_url
from hpo.worker import MAX_ERRORS

if TYPE_CHECKING:
    import optuna

    from hpo.study import Study

if TYPE_CHECKING:
    import optuna

    from hpo.study import Study

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
PROCS_ENV = "HPO_PROCS_PER_TRIAL"


def _number(parse: Callable[[str], Any], ok: Callable[[Any], bool],
            expected: str) -> Callable[[str], Any]:
    """An argparse type: ``parse`` the text, and refuse what is not ``ok`` in one line."""
    def check(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return check


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_count = _number(int, lambda v: v >= 0, "a whole number >= 0")
_seconds = _number(float, lambda v: 0 < v < float("inf"), "a number of seconds > 0")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    return f"hpo {of('hpo')} (optuna {of('optuna')}, python {sys.version.split()[0]})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpo",
        description="Hyperparameter studies the Deep Learning Tuning Playbook's way, on Optuna.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def located(p: argparse.ArgumentParser) -> None:
        p.add_argument("study_file", type=Path, help="a Python file that defines one hpo.Study")
        p.add_argument("--storage", metavar="URL", help=(
            f"postgresql+psycopg2://user@host/db, or a journal file path; default: ${ENV_VAR}, "
            "else ./hpo-journal.log (prefer the environment variable for URLs with a password)"))
        p.add_argument("--trials", type=_positive_int, metavar="N", help=(
            "the study's total budget of finished trials, all workers together "
            "(default: the study's trials_per_value x its number of scientific values)"))

    def common(p: argparse.ArgumentParser) -> None:
        """The options of the commands that run trials."""
        located(p)
        p.add_argument("--checkpoint-dir", type=Path, metavar="DIR", help=(
            "folder for trial checkpoints, shared by all workers so a retried trial resumes "
            "(default: $HPO_CHECKPOINT_DIR, else ./hpo-checkpoints)"))
        p.add_argument("--trial-timeout", type=_seconds, metavar="SECONDS", help=(
            "stop a trial that runs longer and record it as failed, kind timeout "
            "(default: the study's trial_timeout, else no limit)"))
        p.add_argument("--max-errors", type=_count, default=MAX_ERRORS, metavar="N", help=(
            f"stop the study when its first N finished trials all failed with an error "
            f"(default: {MAX_ERRORS}; 0: never)"))

    def procs_per_trial(p: argparse.ArgumentParser) -> None:
        p.add_argument("--procs-per-trial", type=_positive_int, metavar="K", help=(
            "processes that run each trial together, data-parallel with torch.distributed "
            "(gloo on CPU, NCCL on GPUs); only rank 0 reports (default: 1, or "
            "--gpus-per-trial; $HPO_PROCS_PER_TRIAL)"))

    def until_decided(p: argparse.ArgumentParser) -> None:
        p.add_argument("--until-decided", action="store_true", help=(
            "run in rounds: after each, look at the verdict and add trials only to the "
            "scientific values still in contention (and seed re-runs of their best trials); "
            "stop when a winner is decided or --max-trials are spent (see hpo.decide)"))
        p.add_argument("--max-trials", type=_positive_int, metavar="N", help=(
            "with --until-decided: design trials to spend at most, all values together "
            "(default: the study's trials_per_value x its number of scientific values)"))

    run = sub.add_parser("run", help="run a study with several worker processes on this machine")
    common(run)
    run.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                     help="worker processes to start (default: 1)")
    procs_per_trial(run)
    until_decided(run)

    workers = sub.add_parser("workers", help="one supervised worker per GPU on this machine")
    common(workers)
    workers.add_argument("--gpus", default="all", metavar="all|none|0,2", help=(
        "GPUs to use, one worker each, pinned with CUDA_VISIBLE_DEVICES (default: all); "
        "none: CPU workers"))
    workers.add_argument("--workers", type=_positive_int, metavar="N",
                         help="with --gpus none: CPU worker processes to start (default: 1)")
    workers.add_argument("--gpus-per-trial", type=_positive_int, metavar="K", help=(
        "GPUs per worker, and so per trial (K must divide the GPU count); each trial runs "
        "in K processes with torch.distributed, one per GPU (default: 1)"))
    procs_per_trial(workers)
    until_decided(workers)

    worker = sub.add_parser("worker", help="run one worker process until the budget is met")
    common(worker)
    procs_per_trial(worker)
    worker.add_argument("--quiet", action="store_true", help="log only warnings")
    # hpo run / hpo workers start their workers with it: the supervisor reports how the
    # study ended, and learns from the exit status that the study is failing (fleet.py).
    worker.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)

    slurm = sub.add_parser("slurm", help="submit a Slurm array job: one worker per array task")
    common(slurm)
    slurm_options(slurm)

    status = sub.add_parser("status", help=(
        "progress, ETA, failures, running and stale trials (read-only)"))
    located(status)

    retry = sub.add_parser("retry", help=(
        "queue the slots that failed (error, timeout, infrastructure) again, with the same "
        "parameters and seeds; the next hpo run runs them"))
    retry.add_argument("study_file", type=Path, help="the Python file that defines the hpo.Study")
    retry.add_argument("--storage", metavar="URL", help=(
        f"where the study ran: a journal file path or a database URL; default: ${ENV_VAR}, "
        "else ./hpo-journal.log"))
    retry.add_argument("--kind", action="append", choices=(*RETRYABLE, "all"), help=(
        "which failures to retry, repeatable (default: all, which is every kind but the "
        "infeasible ones: diverged and oom are results, never retried)"))

    studies = sub.add_parser("studies", help=(
        "the studies in a storage: phase, budget progress, failures (read-only)"))
    studies.add_argument("--storage", metavar="URL", help=(
        f"a journal file path or a database URL; default: ${ENV_VAR}, else ./hpo-journal.log"))

    delete = sub.add_parser("delete", help="delete one study and all its trials from storage")
    delete.add_argument("study_file", type=Path, help=(
        "the Python file that defines the hpo.Study (only its name is used)"))
    delete.add_argument("--storage", metavar="URL", help=(
        f"where the study is: a journal file path or a database URL; default: ${ENV_VAR}, "
        "else ./hpo-journal.log"))
    delete.add_argument("--yes", action="store_true", help=(
        "really delete it (without --yes, nothing is deleted)"))

    # Analysis commands read a study already in storage; none of them creates one.
    def stored(p: argparse.ArgumentParser) -> None:
        p.add_argument("study_file", type=Path, help="the Python file that defines the hpo.Study")
        p.add_argument("--storage", metavar="URL", help=(
            f"where the study ran: a journal file path or a database URL; default: ${ENV_VAR}, "
            "else ./hpo-journal.log"))

    report = sub.add_parser("report", help=(
        "the playbook's diagnostics: an HTML report, a summary here, notes and plots in "
        "optuna-dashboard"))
    stored(report)
    report.add_argument("--out", type=Path, default=Path("hpo-report"), metavar="DIR",
                        help="folder for report.html and summary.md (default: ./hpo-report)")
    report.add_argument("--no-dashboard", action="store_true", help=(
        "write nothing to storage: no study note, no dashboard plots"))
    report.add_argument("--artifact-dir", type=Path, metavar="DIR", help=(
        "also store report.html as a study artifact there (default: $HPO_ARTIFACT_DIR if set)"))

    seeds = sub.add_parser("seeds", help=(
        "enqueue seed re-runs of the best trial(s) of each scientific value, to measure "
        "run-to-run variance"))
    stored(seeds)
    seeds.add_argument("--top", type=_positive_int, default=1, metavar="K",
                       help="re-run the K best trials of every scientific value (default: 1)")
    seeds.add_argument("--repeats", type=_positive_int, default=5, metavar="N", help=(
        "seed re-runs wanted per trial; ones already enqueued count (default: 5)"))

    dash = sub.add_parser("dashboard", help="optuna-dashboard on this storage, with hpo's notes")
    dash.add_argument("--storage", metavar="URL", help=(
        f"a journal file path or a database URL; default: ${ENV_VAR}, else ./hpo-journal.log"))
    dash.add_argument("--host", default="127.0.0.1", help=(
        "address to listen on (default: 127.0.0.1, this machine only); the dashboard has no "
        "authentication and can delete studies: widen it with care"))
    dash.add_argument("--port", type=_port, default=8080, help="port (default: 8080)")
    dash.add_argument("--artifact-dir", type=Path, metavar="DIR", help=(
        "the artifact store's folder (default: $HPO_ARTIFACT_DIR, else ./hpo-artifacts)"))

    export = sub.add_parser("export", help=(
        "one row per trial: roles, config, metrics, state, provenance"))
    stored(export)
    export.add_argument("--format", choices=("csv", "json", "parquet"), default="csv",
                        help="csv (default), json, or parquet (needs pyarrow)")
    export.add_argument("--out", type=Path, metavar="FILE",
                        help="output file (default: standard output; parquet needs a file)")

    scan = sub.add_parser("batch-scan", help=(
        "feasible batch sizes and their training throughput, by doubling (playbook: "
        "choosing the batch size)"))
    scan.add_argument("study_file", type=Path, help=(
        "a study file whose objective is hpo.train.objective(model, data): its model, data "
        "and hyperparameters are scanned"))
    scan.add_argument("--device", help="cpu, cuda, cuda:1... (default: $HPO_DEVICE, else "
                      "cuda:0 if a GPU is visible, else cpu)")
    scan.add_argument("--max-memory", metavar="SIZE", help=(
        "stop before a size whose memory exceeds SIZE (512MB, 2GB, 4GiB); on CPU the memory "
        "is estimated, default a quarter of this machine's; on CUDA it is measured, and "
        "running out also stops the scan"))
    scan.add_argument("--start", type=_positive_int, default=8, metavar="B",
                      help="first batch size (default: 8)")
    scan.add_argument("--max-batch-size", type=_positive_int, metavar="B",
                      help="largest batch size to try (default: until memory or data runs out)")
    scan.add_argument("--steps", type=_positive_int, default=20, metavar="N",
                      help="timed training steps per batch size (default: 20)")
    scan.add_argument("--min-speedup", type=float, default=1.7, metavar="X", help=(
        "a doubling scales if examples/s grow at least X times (default: 1.7; perfect is 2)"))
    scan.add_argument("--set", action="append", metavar="NAME=VALUE", help=(
        "override a hyperparameter, e.g. --set optimizer=adam (default: fixed values, the "
        "first scientific value, the middle of each nuisance range); repeatable"))
    scan.add_argument("--threads", type=_positive_int, metavar="N",
                      help="torch CPU threads (default: torch's)")
    scan.add_argument("--plot", type=Path, default=Path("batch-scan.svg"), metavar="FILE",
                      help="SVG plot of throughput by batch size (default: ./batch-scan.svg)")
    scan.set_defaults(storage=None)  # reads no storage; main() resolves one for every command
    return parser


_port = _number(int, lambda v: 1 <= v <= 65535, "a port from 1 to 65535")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        env.validate()  # a bad HPO_* value: one line and exit 2, before anything runs
        url = resolve_url(args.storage)
        if getattr(args, "checkpoint_dir", None):
            # Through the environment, so the worker processes a fleet starts inherit it.
            os.environ[CHECKPOINT_ENV] = str(args.checkpoint_dir.resolve())
        return {"run": _run, "workers": _run, "worker": _worker, "status": _status,
                "retry": _retry, "studies": _studies, "delete": _delete, "report": _report,
                "seeds": _seeds, "dashboard": _dashboard, "export": _export,
                "batch-scan": _batch_scan, "slurm": _slurm}[args.command](args, url)
    except HpoError as e:
        print(f"hpo: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("hpo: interrupted; run the same command again to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`hpo report | head`): not an error. Python would otherwise
        # complain again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _run(args: argparse.Namespace, url: str) -> int:
    """``hpo run`` and ``hpo workers``: a supervised fleet on this machine, then a summary."""
    import optuna

    from hpo.analysis.summary import summary_table
    from hpo.context import check_checkpoint_root
    from hpo.fleet import Fleet, FleetStopped, seats
    from hpo.store import open_study
    from hpo.store.budget import progress
    from hpo.study_file import load_study_file
    from hpo.worker import fail_fast_reason

    logging.basicConfig(level=logging.WARNING, format="hpo: %(message)s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own line says where it runs
    definition = load_study_file(args.study_file)
    members = seats(getattr(args, "gpus", None), args.workers,  # bad --gpus: exit 2 here
                    gpus_per_trial=getattr(args, "gpus_per_trial", None),
                    procs_per_trial=args.procs_per_trial)
    if args.max_trials is not None and not args.until_decided:
        return _usage("--max-trials goes with --until-decided; for a fixed budget use --trials")
    if args.until_decided:
        if args.trials is not None:
            return _usage("--until-decided spends up to --max-trials design trials; --trials "
                          "is the fixed budget of a run that is not until decided")
        from hpo.decide import run_until_decided

        check_checkpoint_root()
        options = ["--max-errors", str(args.max_errors)]
        if args.trial_timeout:
            options += ["--trial-timeout", repr(args.trial_timeout)]
        _warn_headroom(url, len(members) + 1)  # the controller holds one too
        return run_until_decided(definition, url, str(args.study_file), members,
                                 args.max_trials, options)
    budget = args.trials or definition.budget
    check_checkpoint_root()  # before anything is written: every worker would fail on it
    study, queue = open_study(definition, url, budget=budget)
    _refuse_until_decided(definition, study, args.study_file)
    timeout = args.trial_timeout or definition.trial_timeout
    print(f"hpo: study {definition.name!r} in {redact(url)}: {budget} trials, "
          f"{len(members)} worker(s) ({', '.join(m.label for m in members)}), "
          f"phase {definition.phase}"
          + (f", trial timeout {timeout:g}s" if timeout else ""), file=sys.stderr)
    options = ["--max-errors", str(args.max_errors)]
    if args.trial_timeout:
        options += ["--trial-timeout", repr(args.trial_timeout)]
    _warn_headroom(url, len(members))
    fleet = Fleet(args.study_file, url, budget, members, options=options, definition=definition)
    try:
        done = fleet.run(study)
    except FleetStopped as stopped:
        finished = stopped.done if stopped.done is not None else progress(study, budget)[0]
        print(f"hpo: stopped by {stopped}: {finished} of {budget} trials done, running trials "
              "handed back; run the same command again to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(summary_table(definition, study))
    if fleet.failing:
        reason = fail_fast_reason(definition, queue.all_trials(),
                                  args.max_errors, str(args.study_file))
        print(f"hpo: error: {reason or 'the study is failing; see the errors above'}",
              file=sys.stderr)
        return EXIT_FAILURE
    if not done:
        finished, _ = progress(study, budget)
        print(f"hpo: error: {finished} of {budget} trials done; workers gave up "
              "(see their errors above)", file=sys.stderr)
        return EXIT_FAILURE
    return _failed_slots_exit(definition, study, budget, args, url)


def _warn_headroom(url: str, workers: int) -> None:
    from hpo.store.capacity import headroom_warning

    warning = headroom_warning(url, workers)
    if warning:
        print(f"hpo: warning: {warning}", file=sys.stderr)


def _failed_slots_exit(definition: Study, study: optuna.Study, budget: int,
                       args: argparse.Namespace, url: str) -> int:
    """Exit 1, saying how many slots failed and how to retry them, if any did; else 0.

    Infeasible slots (diverged, oom) are results: they do not make a run fail."""
    from hpo.store.queue import queue_for
    from hpo.tables import by_kind_text

    # Counted, never read trial by trial: every unsupervised worker ends here.
    failed = queue_for(study).counts(definition, budget).failed_by(RETRYABLE, in_budget=True)
    if not failed:
        return EXIT_OK
    shown = by_kind_text(failed, RETRYABLE)
    storage = f" --storage {redact(args.storage)}" if args.storage else ""
    print(f"hpo: error: {sum(f.count for f in failed)} of {budget} slots failed: {shown}; "
          "see why with hpo "
          f"status or hpo report, fix the cause, then: hpo retry {args.study_file}{storage} "
          "and run the same command again", file=sys.stderr)
    return EXIT_FAILURE


def _refuse_until_decided(definition: Study, study: optuna.Study, study_file: Path) -> None:
    """A study run --until-decided holds the slots its verdict chose, with gaps, and
    open_study left its layout alone: a fixed budget on it would mean something else."""
    from hpo import attrs
    from hpo.decide import UntilDecidedError

    if attrs.STUDY_UNTIL_DECIDED in study.user_attrs:
        raise UntilDecidedError(
            f"study {definition.name!r} was run with --until-decided (its trials follow the "
            f"verdict); continue it with hpo run {study_file} --until-decided, or bump the "
            "study's name for a fixed budget")


def _status(args: argparse.Namespace, url: str) -> int:
    import optuna

    from hpo.status import status_text
    from hpo.store import open_storage
    from hpo.store.opening import check_same_design
    from hpo.study_file import load_study_file

    definition = load_study_file(args.study_file)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Read-only on every storage: no journal file made, no table created in an empty database.
    storage = open_storage(url, create=False)
    try:
        study = optuna.load_study(study_name=definition.name, storage=storage)
    except KeyError:
        raise StorageError(f"no study named {definition.name!r} in {redact(url)}; start it with "
                           f"hpo run or hpo workers") from None
    check_same_design(definition, study, redact(url))
    print(status_text(definition, study, args.trials))
    return EXIT_OK


def _worker(args: argparse.Namespace, url: str) -> int:
    from hpo.fleet import EXIT_STUDY_FAILING
    from hpo.store import load_stored_study
    from hpo.study_file import load_study_file
    from hpo.worker import StudyFailing, WorkerStopped, run_worker

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    definition = load_study_file(args.study_file)
    if args.procs_per_trial is not None:
        os.environ[PROCS_ENV] = str(args.procs_per_trial)  # read by hpo.env, and the ranks
    try:
        ran = run_worker(definition, url, budget=args.trials, study_file=str(args.study_file),
                         trial_timeout=args.trial_timeout, max_errors=args.max_errors,
                         replace_process=True)
    except WorkerStopped:
        print("hpo: worker stopped; its trial went back to the queue", file=sys.stderr)
        return EXIT_INTERRUPTED
    except StudyFailing:
        if args.supervised:
            return EXIT_STUDY_FAILING  # the supervisor says why, once for all its workers
        raise
    logging.getLogger("hpo.worker").info("budget met; this worker ran %d trial(s)", ran)
    if args.supervised:
        return EXIT_OK  # hpo run / hpo workers judge the whole study's outcome
    study = load_stored_study(definition, url)
    return _failed_slots_exit(definition, study, args.trials or definition.budget, args, url)


def _retry(args: argparse.Namespace, url: str) -> int:
    from hpo.manage import retried_text, retry_failed
    from hpo.study_file import load_study_file

    definition = load_study_file(args.study_file)
    kinds = set(RETRYABLE) if not args.kind or "all" in args.kind else set(args.kind)
    retried = retry_failed(definition, url, kinds)
    storage = f" --storage {redact(args.storage)}" if args.storage else ""
    print(f"hpo: {retried_text(retried)}; run them: hpo run {args.study_file}{storage}",
          file=sys.stderr)
    return EXIT_OK


def _studies(args: argparse.Namespace, url: str) -> int:
    from hpo.manage import studies_table

    print(studies_table(url))
    return EXIT_OK


def _delete(args: argparse.Namespace, url: str) -> int:
    from hpo.manage import delete_study
    from hpo.study_file import load_study_file

    definition = load_study_file(args.study_file)
    print(f"hpo: {delete_study(definition, url, yes=args.yes)}", file=sys.stderr)
    return EXIT_OK


def _usage(message: str) -> int:
    print(f"hpo: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _report(args: argparse.Namespace, url: str) -> int:
    from hpo.analysis import dashboard
    from hpo.analysis.analyze import analyze
    from hpo.analysis.plots import all_figures
    from hpo.analysis.report import summary_markdown, write_report
    from hpo.store import load_stored_study
    from hpo.study_file import load_study_file

    if args.out.exists() and not args.out.is_dir():
        return _usage(f"--out {str(args.out)!r} is a file; give a folder for the report")
    definition = load_study_file(args.study_file)
    study = load_stored_study(definition, url)
    analysis = analyze(definition, study, study_file=str(args.study_file))
    figures = all_figures(analysis)
    path = write_report(analysis, args.out, figures)
    summary = summary_markdown(analysis)
    if not args.no_dashboard:
        dashboard.publish(study, summary, figures)
        if args.artifact_dir or os.environ.get(dashboard.ARTIFACT_ENV):
            dashboard.upload_report(study, path, dashboard.artifact_dir(args.artifact_dir))
    print(summary)
    shown = "" if args.no_dashboard else "; the summary is the study's note in optuna-dashboard"
    print(f"hpo: report written to {path}{shown}", file=sys.stderr)
    return EXIT_OK


def _seeds(args: argparse.Namespace, url: str) -> int:
    from collections import Counter

    from hpo.analysis.seeds import NothingToRerun, enqueue_seed_reruns
    from hpo.store import load_stored_study
    from hpo.study_file import load_study_file

    definition = load_study_file(args.study_file)
    study = load_stored_study(definition, url)
    try:
        added = enqueue_seed_reruns(definition, study, top=args.top, repeats=args.repeats)
    except NothingToRerun as e:
        return _usage(str(e))
    if not added:
        print(f"hpo: the best trial(s) already have {args.repeats} seed re-runs each; nothing "
              "enqueued (ask for more with --repeats)", file=sys.stderr)
        return EXIT_OK
    per_trial = Counter((r.of, r.group) for r in added)
    listed = ", ".join(f"trial #{n} ({g}) x{c}" for (n, g), c in per_trial.items())
    print(f"hpo: enqueued {len(added)} seed re-run(s): {listed}; workers run them like any "
          f"trial, whatever the budget: hpo run {args.study_file} (with the same --storage), "
          "then hpo report", file=sys.stderr)
    return EXIT_OK


def _dashboard(args: argparse.Namespace, url: str) -> int:
    from hpo.analysis.dashboard import artifact_dir, serve

    try:
        serve(url, host=args.host, port=args.port, artifacts=artifact_dir(args.artifact_dir))
    except OSError as e:  # the port is taken, or the host is not an address of this machine
        print(f"hpo: error: cannot listen on {args.host}:{args.port}: {e.strerror or e}; "
              "choose another --port or --host", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _export(args: argparse.Namespace, url: str) -> int:
    from hpo.analysis import export
    from hpo.store import load_stored_study
    from hpo.study_file import load_study_file

    if args.format == "parquet":
        if not export.has_pyarrow():
            return _usage("--format parquet needs pyarrow (pip install pyarrow); "
                          "or use --format csv or json")
        if args.out is None:
            return _usage("--format parquet writes a file: give --out FILE.parquet")
    if args.out is not None and args.out.is_dir():
        return _usage(f"--out {str(args.out)!r} is a folder; give a file name")
    definition = load_study_file(args.study_file)
    study = load_stored_study(definition, url)
    rows = export.trial_rows(definition, study, nested=args.format == "json")
    if args.format == "parquet":
        export.write_parquet(rows, args.out)
    else:
        text = export.to_csv(rows) if args.format == "csv" else export.to_json(rows)
        if args.out is None:
            sys.stdout.write(text)
            return EXIT_OK
        args.out.write_text(text, encoding="utf-8")
    print(f"hpo: {len(rows)} trial(s) written to {args.out}", file=sys.stderr)
    return EXIT_OK


def _batch_scan(args: argparse.Namespace, url: str) -> int:
    """``hpo batch-scan``: see hpo/train/batch_scan.py; bad input is a SpaceError (exit 2)."""
    from hpo.train.batch_scan import run

    return run(args)


def _slurm(args: argparse.Namespace, url: str) -> int:
    """``hpo slurm``: see hpo/launch/slurm.py."""
    from hpo.launch.slurm import run

    return run(args, url)


if __name__ == "__main__":
    sys.exit(main())
