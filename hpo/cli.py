"""The ``hpo`` command.

Exit status: 0 done, 1 a runtime failure, 2 bad input (then nothing is written to storage),
130 interrupted. Heavy libraries are imported inside the commands, so ``hpo --help`` is fast
and never imports torch.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

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

    run = sub.add_parser("run", help="run a study with several worker processes on this machine")
    common(run)
    run.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                     help="worker processes to start (default: 1)")

    worker = sub.add_parser("worker", help="run one worker process until the budget is met")
    common(worker)
    worker.add_argument("--quiet", action="store_true", help="log only warnings")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    url = resolve_url(args.storage)
    try:
        return {"run": _run, "worker": _worker}[args.command](args, url)
    except (SpaceError, StorageError) as e:
        print(f"hpo: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("hpo: interrupted; run the same command again to continue", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace, url: str) -> int:
    from hpo import fleet
    from hpo.analysis.summary import summary_table
    from hpo.budget import progress
    from hpo.study import load_study_file, open_in_storage

    definition = load_study_file(args.study_file)
    budget = args.trials or definition.budget
    study = open_in_storage(definition, url, budget=budget)
    print(f"hpo: study {definition.name!r} in {redact(url)}: {budget} trials, "
          f"{args.workers} worker(s), phase {definition.phase}", file=sys.stderr)
    workers = fleet.spawn(args.study_file, url, budget, args.workers)
    try:
        codes = fleet.supervise(workers, study, budget)
    except KeyboardInterrupt:
        fleet.stop(workers)
        raise
    print(summary_table(definition, study))
    done, _ = progress(study, budget)
    if done < budget:
        failed = [c for c in codes if c != 0]
        print(f"hpo: error: {done} of {budget} trials done; {len(failed)} worker(s) exited "
              f"with an error (see above)", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _worker(args: argparse.Namespace, url: str) -> int:
    from hpo.study import load_study_file
    from hpo.worker import WorkerStopped, run_worker

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    definition = load_study_file(args.study_file)
    try:
        ran = run_worker(definition, url, budget=args.trials)
    except WorkerStopped:
        print("hpo: worker stopped; its trial went back to the queue", file=sys.stderr)
        return EXIT_INTERRUPTED
    logging.getLogger("hpo.worker").info("budget met; this worker ran %d trial(s)", ran)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
