"""hpo slurm on a real single-node Slurm cluster (munged, slurmctld, slurmd started here).

A 4-task array of CPU workers finishes a study exactly; an array task cancelled while its
trial runs hands that trial back and another task completes it; a task requeued mid-trial
(as on preemption) hands it back and comes back; a GPU request is checked by sbatch itself.
The storage URL carries a password (PostgreSQL here trusts local connections and ignores
it) that must never show in a script, a command line or ``ps``.

Slurm's daemons need root: the tests skip, saying so, when not run as root; CI runs as root
and installs Debian's slurm-wlm and munge (.ci/run; the fixture does too if they are
missing). The tests that need no cluster (bad input, what reaches sbatch) run everywhere.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from conftest import SYNTHETIC_STUDY, hpo_cli
from slurm_cluster import SlurmCluster, ensure_installed

from hpo import attrs

SECRET = "s3cret-slurm-pw"
NAME = "slurm-v1"


@pytest.fixture(scope="module")
def slurm():
    if os.geteuid() != 0:
        pytest.skip("the Slurm tests start munged, slurmctld and slurmd, which need root "
                    "(CI runs as root)")
    ensure_installed()
    cluster = SlurmCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def with_password(url: str) -> str:
    """The URL with a password that a trust-auth server ignores."""
    scheme, _, rest = url.partition("://")
    user, at, host = rest.partition("@")
    if not at or ":" in user:
        pytest.skip("HPO_TEST_PG must name a user without a password for this test")
    return f"{scheme}://{user}:{SECRET}@{host}"


def write_study(tmp_path: Path, per_value: int, sleep: float, stuck_task: int | None = None
                ) -> Path:
    """The synthetic study; each attempt records which array task ran it. On ``stuck_task``
    a trial would take two minutes (until the task is requeued): it is surely still running
    when the test stops the task."""
    text = SYNTHETIC_STUDY.format(name=NAME, per_value=per_value, seed=0, phase="explore",
                                  sleep=sleep)
    text = text.replace("import time\n", "import os\nimport time\n").replace(
        '    time.sleep(config["sleep"])',
        '    task = int(os.environ["SLURM_ARRAY_TASK_ID"])\n'
        '    restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0"))\n'
        '    ctx.set_attr("slurm_task", [task, restarts])\n'
        f'    stuck = task == {stuck_task} and restarts == 0\n'
        '    time.sleep(120 if stuck else config["sleep"])')
    path = tmp_path / "study.py"
    path.write_text(text)
    return path


def submit(slurm: SlurmCluster, tmp_path: Path, study: Path, url: str, *args) -> str:
    result = hpo_cli("slurm", study, *args, env={"HPO_STORAGE": url, **slurm.env},
                     cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stderr + result.stdout
    return re.search(r"submitted array job (\d+)", result.stderr).group(1)


def trials(url: str) -> list[optuna.trial.FrozenTrial]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=NAME, storage=url).get_trials(deepcopy=False)


def assert_every_slot_complete_once(url: str, budget: int) -> list[optuna.trial.FrozenTrial]:
    found = trials(url)
    states = collections.Counter(t.state.name for t in found)
    assert states == {"COMPLETE": budget}, states
    slots = collections.Counter(t.user_attrs[attrs.SLOT] for t in found)
    assert slots == {slot: 1 for slot in range(budget)}, slots
    return found


def no_secret_in_any_command_line() -> None:
    commands = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert SECRET not in commands


def test_a_4_task_array_finishes_the_study_exactly(slurm, pg_url, tmp_path):
    url = with_password(pg_url)
    job = submit(slurm, tmp_path, write_study(tmp_path, per_value=4, sleep=1.5), url,
                 "--array", "4")
    script = (tmp_path / f"hpo-{NAME}.sbatch").read_text()
    assert SECRET not in script and "#SBATCH --array=0-3" in script
    deadline = time.monotonic() + 60
    while not any(t.state.name == "RUNNING" for t in trials(url)):
        assert slurm.queued(job) and time.monotonic() < deadline, "no trial started"
        time.sleep(0.5)
    no_secret_in_any_command_line()
    slurm.wait_finished(job, timeout=90)

    assert slurm.task_states(job) == {task: ("COMPLETED", "0:0") for task in range(4)}
    found = assert_every_slot_complete_once(url, budget=8)
    # The node has this machine's CPUs (2 here), one per task: tasks ran side by side.
    assert len({t.user_attrs["slurm_task"][0] for t in found}) >= 2


def test_a_task_cancelled_mid_trial_hands_its_trial_back(slurm, pg_url, tmp_path):
    url = with_password(pg_url)
    victim = 0  # Slurm starts the lowest array tasks first
    job = submit(slurm, tmp_path, write_study(tmp_path, per_value=3, sleep=2, stuck_task=victim),
                 url, "--array", "4")
    number = wait_for_a_trial_of(url, victim)
    # Plain scancel: SIGTERM to the batch shell, which is the worker (exec), SIGKILL 30 s on.
    slurm.run("scancel", f"{job}_{victim}")
    no_secret_in_any_command_line()
    slurm.wait_finished(job, timeout=120)

    states = slurm.task_states(job)
    assert states.pop(victim)[0] == "CANCELLED"
    assert set(states.values()) == {("COMPLETED", "0:0")}, states
    found = assert_every_slot_complete_once(url, budget=6)
    handed_back = next(t for t in found if t.number == number)
    assert handed_back.user_attrs["slurm_task"][0] != victim  # completed by another task
    log = (tmp_path / f"hpo-{NAME}-{job}_{victim}.out").read_text()
    assert f"trial {number} handed back: worker stopped" in log, log


def test_a_requeued_task_hands_its_trial_back_and_comes_back(slurm, pg_url, tmp_path):
    """What Slurm does to a preempted task (PreemptMode=REQUEUE) or one whose node failed:
    it stops it and queues it again; --requeue is what allows it."""
    victim = 0
    job = submit(slurm, tmp_path, write_study(tmp_path, per_value=2, sleep=2, stuck_task=victim),
                 pg_url, "--array", "2")
    number = wait_for_a_trial_of(pg_url, victim)
    slurm.run("scontrol", "requeue", f"{job}_{victim}")
    deadline = time.monotonic() + 60
    while f"{victim} PENDING" not in slurm.queued(job):
        assert time.monotonic() < deadline, slurm.queued(job)
        time.sleep(0.5)
    # A requeued job waits two minutes before it may start again; not in a test.
    slurm.run("scontrol", "update", f"JobId={job}_{victim}", "StartTime=now")
    slurm.wait_finished(job, timeout=120)

    assert slurm.task_states(job) == {0: ("COMPLETED", "0:0"), 1: ("COMPLETED", "0:0")}
    found = assert_every_slot_complete_once(pg_url, budget=4)
    assert next(t for t in found if t.number == number).user_attrs["slurm_task"] != [victim, 0]
    log = (tmp_path / f"hpo-{NAME}-{job}_{victim}.out").read_text()
    # One log for both runs of the task (--open-mode=append): handed back, then back to work.
    assert log.index(f"trial {number} handed back") < log.index("budget met"), log


def wait_for_a_trial_of(url: str, task: int) -> int:
    """The number of the first trial that array task ``task`` runs."""
    deadline = time.monotonic() + 60
    while True:
        running = [t for t in trials(url) if t.state.name == "RUNNING"
                   and t.user_attrs.get("slurm_task", [None])[0] == task]
        if running:
            return running[0].number
        assert time.monotonic() < deadline, f"array task {task} started no trial"
        time.sleep(0.5)


def test_sbatch_accepts_a_gpu_request_and_refuses_one_the_cluster_cannot_meet(slurm, tmp_path):
    study = write_study(tmp_path, per_value=1, sleep=0)
    env = {"HPO_STORAGE": str(tmp_path / "journal.log"), **slurm.env}
    dry = hpo_cli("slurm", study, "--array", "2", "--gpus-per-task", "1", "--time", "10",
                  "--dry-run", env=env, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    (tmp_path / "gpu.sbatch").write_text(dry.stdout)
    checked = slurm.run("sbatch", "--test-only", str(tmp_path / "gpu.sbatch"), check=False)
    assert checked.returncode == 0 and "to start at" in checked.stderr, checked.stderr

    # The node has one GPU: sbatch refuses two, and hpo says so in one line, exit 1.
    refused = hpo_cli("slurm", study, "--array", "2", "--gpus-per-task", "2", env=env,
                      cwd=tmp_path)
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 1, refused.stderr
    assert lines[-1].startswith("hpo: error: sbatch refused hpo-slurm-v1.sbatch: "), lines
    assert slurm.run("squeue", "-h").stdout.strip() == ""


# --- no cluster needed --------------------------------------------------------------------

def fake_sbatch(tmp_path: Path) -> dict[str, str]:
    """A stand-in sbatch on PATH that records its arguments and the storage it was given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {tmp_path}/sbatch-args\n'
        f'printf "%s" "$HPO_STORAGE" > {tmp_path}/sbatch-storage\n'
        "echo 4242\n")
    (bin_dir / "sbatch").chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_the_storage_reaches_sbatch_in_its_environment_only(tmp_path, study_file):
    journal = tmp_path / "journal.log"
    env = {"HPO_STORAGE": "", **fake_sbatch(tmp_path)}
    result = hpo_cli("slurm", study_file(name=NAME), "--array", "3", "--storage", "journal.log",
                     "--trials", "5", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "submitted array job 4242: 3 worker(s)" in result.stderr
    args = (tmp_path / "sbatch-args").read_text().split()
    assert args == ["--parsable", "--export=ALL", f"hpo-{NAME}.sbatch"]
    # A relative journal path is made absolute: it names one file whatever the job's folder.
    assert (tmp_path / "sbatch-storage").read_text() == str(journal)
    assert journal.exists()  # the study was created before the job was submitted
    script = (tmp_path / f"hpo-{NAME}.sbatch").read_text()
    assert "journal.log" not in script and "--trials 5" in script


def test_a_checkpoint_folder_that_cannot_be_written_is_refused_before_anything(tmp_path,
                                                                               study_file):
    env = {"HPO_STORAGE": str(tmp_path / "journal.log"), **fake_sbatch(tmp_path)}
    result = hpo_cli("slurm", study_file(), "--array", "2", "--checkpoint-dir", "study.py/ckpt",
                     env=env, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("hpo: error: checkpoint folder "), lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "study.py"]


@pytest.mark.parametrize("args, message", [
    (["--array", "0"], "--array 0: give the number of array tasks (workers), 1 or more"),
    (["--array", "2", "--time", "4h"], "--time '4h': expected MM, MM:SS, HH:MM:SS"),
    (["--array", "2", "--time", "1:30"], "--time '1:30': give at least 2 minutes"),
    (["--array", "2", "--gpus-per-task", "-1"], "--gpus-per-task -1: give 0"),
    (["--array", "2", "--partition", "gpu\n#SBATCH --uid=0"], "--partition 'gpu\\n#SBATCH"),
    (["--array", "2"], "sbatch is not on PATH: run hpo slurm on a Slurm login node"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, study_file, args, message):
    env = {"PATH": str(tmp_path / "nowhere"), "HPO_STORAGE": str(tmp_path / "journal.log")}
    result = hpo_cli("slurm", study_file(), *args, env=env, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"hpo: error: {message}"), lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.py"]


def test_dry_run_prints_the_script_and_touches_nothing(tmp_path, study_file):
    env = {"PATH": str(tmp_path / "nowhere"), "HPO_STORAGE": f"postgresql://u:{SECRET}@db/x"}
    result = hpo_cli("slurm", study_file(name=NAME), "--array", "8", "--dry-run", env=env,
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("#!/bin/bash\n") and "#SBATCH --array=0-7" in result.stdout
    assert SECRET not in result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.py"]
