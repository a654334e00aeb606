"""Nothing lost, nothing wrong, whatever fails: hpo's fault scenarios at full size, as a table.

Each scenario starts its own throwaway PostgreSQL cluster (initdb + pg_ctl, never the shared
server), runs the real ``hpo`` command, injects its fault for real (SIGKILL, SIGSTOP,
``pg_ctl restart``, ``pg_terminate_backend``, PID namespaces, read-only and full mounts) and
audits the storage afterwards with the same checker the tests use
(tests/integration/faults/check.py):

* requested: the budget; complete: COMPLETE design trials (one per slot when all is well);
* lost: slots without a COMPLETE trial; duplicated: slots held by more than one live trial;
* stuck: trials left RUNNING or WAITING; wrongly failed: FAIL trials whose worker the
  scenario did not kill or stop; wrong value: a COMPLETE value the objective would not give
  for the trial's parameters;
* result: ok, or the scenario's own expectations that did not hold (exit codes, seats given
  up, messages, retries spent...), listed under the table.

The scenarios are those of tests/integration/faults/scenarios.py, where each is described.
Several need root (PID namespaces, bind mounts, tmpfs); without it they are reported as such.

    python bench/faults.py                      # every scenario at full size (~15 minutes)
    python bench/faults.py --quick              # the short versions that make test runs
    python bench/faults.py --only a-sigkill,e-layout
    python bench/faults.py --list

Exit status: 0 when every scenario is ok, 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration" / "faults"))

import scenarios  # noqa: E402
from pg_cluster import _bin  # noqa: E402  (scenarios put tests/ on the path)

COLUMNS = ["scenario", "trials requested", "complete", "lost", "duplicated", "stuck",
           "wrongly failed", "wrong value", "time (s)", "result"]


def machine() -> str:
    postgres = subprocess.run([_bin("postgres"), "--version"], capture_output=True,
                              text=True).stdout.strip()
    return (f"{platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{postgres}")


def table(outcomes: list[scenarios.Outcome]) -> str:
    rows = [COLUMNS, ["---"] * len(COLUMNS)]
    for o in outcomes:
        counts = [str(n) for n in o.audit.row()] if o.audit else ["?"] * 7
        rows.append([f"{o.scenario}: {o.title}", *counts, f"{o.seconds:.0f}",
                     "ok" if o.ok else "FAILED"])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="the short versions (fewer kills, shorter outages)")
    parser.add_argument("--only", metavar="KEYS",
                        help="comma-separated scenario keys (see --list)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    if args.list:
        for key, s in scenarios.SCENARIOS.items():
            print(f"{key:22} {s.title}")
        return 0
    keys = list(scenarios.SCENARIOS)
    if args.only:
        keys = [k.strip() for k in args.only.split(",") if k.strip()]
        unknown = [k for k in keys if k not in scenarios.SCENARIOS]
        if unknown:
            parser.error(f"unknown scenario(s) {', '.join(unknown)}; see --list")
    started = datetime.datetime.now().astimezone()
    print(f"hpo fault scenarios, {'short' if args.quick else 'full'} size, "
          f"{started:%Y-%m-%d %H:%M %Z}", flush=True)
    print(f"machine: {machine()}", flush=True)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="hpo-faults-") as work:
        for key in keys:
            print(f"running {key}...", file=sys.stderr, flush=True)
            outcome = scenarios.run(key, Path(work) / key, full=not args.quick)
            print(outcome.report(), file=sys.stderr, flush=True)
            outcomes.append(outcome)
    print()
    print(table(outcomes))
    failed = [o for o in outcomes if not o.ok]
    for o in failed:
        print()
        print(o.report())
    print(f"\n{len(outcomes) - len(failed)} of {len(outcomes)} scenarios ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
