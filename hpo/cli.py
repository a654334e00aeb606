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
from pathlib import Path

from hpo.context import CHECKPOINT_ENV
from hpo.space import SpaceError
from hpo.storage import ENV_VAR, StorageError, redact, resolve_url

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpo",
        description="Hyperparameter studies the Deep Learning Tuning Playbook's way, on Optuna.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("study_file", type=Path, help="a Python file that defines one hpo.Study")
        p.add_argument("--storage", metavar="URL", help=(
            f"postgresql+psycopg2://user@host/db, or a journal file path; default: ${ENV_VAR}, "
            "else ./hpo-journal.log (prefer the environment variable for URLs with a password)"))
        p.add_argument("--trials", type=_positive_int, metavar="N", help=(
            "the study's total budget of finished trials, all workers together "
            "(default: the study's trials_per_value x its number of scientific values)"))
        p.add_argument("--checkpoint-dir", type=Path, metavar="DIR", help=(
            "folder for trial checkpoints, shared by all workers so a retried trial resumes "
            "(default: $HPO_CHECKPOINT_DIR, else ./hpo-checkpoints)"))

    run = sub.add_parser("run", help="run a study with several worker processes on this machine")
    common(run)
    run.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                     help="worker processes to start (default: 1)")

    workers = sub.add_parser("workers", help="one supervised worker per GPU on this machine")
    common(workers)
    workers.add_argument("--gpus", default="all", metavar="all|none|0,2", help=(
        "GPUs to use, one worker each, pinned with CUDA_VISIBLE_DEVICES (default: all); "
        "none: CPU workers"))
    workers.add_argument("--workers", type=_positive_int, metavar="N",
                         help="with --gpus none: CPU worker processes to start (default: 1)")

    worker = sub.add_parser("worker", help="run one worker process until the budget is met")
    common(worker)
    worker.add_argument("--quiet", action="store_true", help="log only warnings")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    url = resolve_url(args.storage)
    if getattr(args, "checkpoint_dir", None):
        # Through the environment, so the worker processes a fleet starts inherit it.
        os.environ[CHECKPOINT_ENV] = str(args.checkpoint_dir.resolve())
    try:
        return {"run": _run, "workers": _run, "worker": _worker}[args.command](args, url)
    except (SpaceError, StorageError) as e:
        print(f"hpo: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("hpo: interrupted; run the same command again to continue", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace, url: str) -> int:
    """``hpo run`` and ``hpo workers``: a supervised fleet on this machine, then a summary."""
    from hpo.analysis.summary import summary_table
    from hpo.budget import progress
    from hpo.fleet import Fleet, FleetStopped, seats
    from hpo.study import load_study_file, open_in_storage

    logging.basicConfig(level=logging.WARNING, format="hpo: %(message)s")
    definition = load_study_file(args.study_file)
    members = seats(getattr(args, "gpus", None), args.workers)  # bad --gpus: exit 2 here
    budget = args.trials or definition.budget
    study = open_in_storage(definition, url, budget=budget)
    print(f"hpo: study {definition.name!r} in {redact(url)}: {budget} trials, "
          f"{len(members)} worker(s) ({', '.join(m.label for m in members)}), "
          f"phase {definition.phase}", file=sys.stderr)
    fleet = Fleet(args.study_file, url, budget, members)
    try:
        done = fleet.run(study)
    except FleetStopped as stopped:
        finished, _ = progress(study, budget)
        print(f"hpo: stopped by {stopped}: {finished} of {budget} trials done, running trials "
              "handed back; run the same command again to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(summary_table(definition, study))
    if not done:
        finished, _ = progress(study, budget)
        print(f"hpo: error: {finished} of {budget} trials done; workers gave up "
              "(see their errors above)", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _worker(args: argparse.Namespace, url: str) -> int:
    from hpo.study import load_study_file
    from hpo.worker import WorkerStopped, run_worker

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    definition = load_study_file(args.study_file)
    try:
        ran = run_worker(definition, url, budget=args.trials, study_file=str(args.study_file))
    except WorkerStopped:
        print("hpo: worker stopped; its trial went back to the queue", file=sys.stderr)
        return EXIT_INTERRUPTED
    logging.getLogger("hpo.worker").info("budget met; this worker ran %d trial(s)", ran)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
