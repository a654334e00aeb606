"""The fleet on real storages: dead workers, lost databases, GPU pinning, clean stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import optuna
import pytest
from conftest import hpo_cli
from optuna.trial import TrialState
from pg_cluster import Cluster

from hpo import env
from hpo.store import open_storage
from hpo.store.leases import Reaper
from hpo.store.queue import queue_for

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Each step sleeps, checkpoints, then reports: a trial killed after reporting step s has a
# checkpoint at step >= s, so its retry must start from there, not from zero.
RESUMABLE = '''
import os, time
from hpo import Study, scientific, nuisance, fixed, choice, uniform

def objective(config, ctx):
    start = 0
    checkpoint = ctx.load_checkpoint(map_location="cpu")
    if checkpoint is not None:
        start = checkpoint.step + 1
        ctx.set_attr("resumed_from_step", checkpoint.step)
    for step in range(start, config["steps"]):
        time.sleep(float(os.environ.get("STEP_SECONDS", "0.05")))
        ctx.save_checkpoint(step, {{"x": config["x"]}})
        ctx.report(step, config["x"] + step)
    return config["x"]

study = Study(name="resumable-v1", goal="Do dead workers lose work?", metric="loss",
              space={{"arm": scientific(choice("a", "b")), "x": nuisance(uniform(0.0, 1.0)),
                      "steps": fixed({steps})}},
              objective=objective, trials_per_value=50)
'''


def write_study(tmp_path, steps=10):
    path = tmp_path / "resumable.py"
    path.write_text(RESUMABLE.format(steps=steps))
    return path


def load(url, name="resumable-v1"):
    return optuna.load_study(study_name=name, storage=open_storage(url))


def start_fleet(args, env, cwd):
    return subprocess.Popen([sys.executable, "-m", "hpo", *map(str, args)], cwd=cwd,
                            env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(predicate, timeout=120, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def assert_exact(study, budget):
    trials = study.get_trials()
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == budget, Counter(t.state.name for t in trials)
    assert sorted(t.user_attrs["slot"] for t in complete) == list(range(budget))
    assert len({t.number for t in trials}) == len(trials)


@pytest.mark.postgres
def test_sigkilled_workers_trials_are_retried_with_same_params_and_resume(tmp_path, pg_url):
    budget, kills = 16, 5
    fleet = start_fleet(["run", write_study(tmp_path), "--workers", "4", "--trials", budget,
                         "--checkpoint-dir", tmp_path / "ckpt"],
                        {"HPO_STORAGE": pg_url, "STEP_SECONDS": "0.15"}, tmp_path)
    killed = {}  # trial number -> (params, last reported step)
    try:
        study = wait_for(lambda: _try_load(pg_url), what="the study")
        for _ in range(kills):
            def victim():
                for t in study.get_trials(states=(TrialState.RUNNING,)):
                    pid = t.user_attrs.get("worker_pid")
                    if t.number not in killed and pid and len(t.intermediate_values) >= 3:
                        return t
                return None
            t = wait_for(victim, what="a running trial past step 3")
            os.kill(t.user_attrs["worker_pid"], signal.SIGKILL)
            time.sleep(0.5)
            # The trial read as running may have finished just before the kill landed (the
            # worker then died on its next trial): only a trial the kill cut counts.
            if study.get_trials()[t.number].state != TrialState.COMPLETE:
                killed[t.number] = (t.params, max(t.intermediate_values))
        out, err = fleet.communicate(timeout=240)
    finally:
        if fleet.poll() is None:
            fleet.kill()
    assert fleet.returncode == 0, err
    assert len(killed) >= kills - 2, killed  # almost every kill cuts a running trial
    trials = {t.number: t for t in load(pg_url).get_trials()}
    for number, (params, last_step) in killed.items():
        dead = trials[number]
        assert dead.state == TrialState.FAIL and "worker died" in dead.user_attrs["error"]
        retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == number]
        assert retries, f"trial {number} was not retried"
        final = retries[-1]
        assert final.params == params and final.state == TrialState.COMPLETE
        assert final.user_attrs["slot"] == dead.user_attrs["slot"]
        assert final.user_attrs["resumed_from_step"] >= last_step  # not from zero
    assert_exact(load(pg_url), budget)


def _try_load(url):
    try:
        study = load(url)
    except Exception:  # noqa: BLE001 - not created yet
        return None
    return study


@pytest.mark.postgres
def test_machine_that_vanishes_is_detected_by_heartbeat(tmp_path, pg_url):
    """A worker on 'another machine' (so its pid means nothing here) dies; a worker here
    fails its trial once the heartbeat is older than the grace period, and retries it."""
    path = write_study(tmp_path, steps=40)
    env = {"HPO_STORAGE": pg_url, "HPO_HEARTBEAT_INTERVAL": "1", "HPO_HEARTBEAT_GRACE": "3",
           "STEP_SECONDS": "0.1", "HPO_CHECKPOINT_DIR": str(tmp_path / "ckpt")}
    remote = start_fleet(["worker", path, "--trials", "2"], {**env, "HPO_HOST": "gpu-box-7"},
                         tmp_path)
    study = wait_for(lambda: _try_load(pg_url), what="the study")
    t = wait_for(lambda: next((t for t in study.get_trials(states=(TrialState.RUNNING,))
                               if len(t.intermediate_values) >= 2), None), what="a trial")
    remote.kill()
    remote.wait()
    result = hpo_cli("worker", path, "--trials", "2", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    trials = {x.number: x for x in load(pg_url).get_trials()}
    assert trials[t.number].state == TrialState.FAIL
    assert "gpu-box-7" in trials[t.number].user_attrs["error"]
    retry = next(x for x in trials.values() if x.system_attrs.get("failed_trial") == t.number)
    assert retry.params == t.params and retry.state == TrialState.COMPLETE
    assert retry.user_attrs["host"] != "gpu-box-7"
    assert_exact(load(pg_url), 2)


def test_retry_limit_ends_in_fail_that_counts_the_deaths(tmp_path):
    storage = str(tmp_path / "j.log")
    study = optuna.create_study(storage=open_storage(storage))
    study.enqueue_trial({}, user_attrs={"slot": 0})
    for _ in range(3):
        trial = study.ask()
        # A worker on this host whose process is gone (pid 2**22 + n is never a live pid here).
        trial.set_user_attr("host", env.host())
        trial.set_user_attr("worker_pid", 2**22 + 7)
        assert Reaper(queue_for(study), max_retry=2).reap() == 1
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "FAIL", "FAIL"]
    assert "died 3 times" in trials[-1].user_attrs["error"]
    assert "not retried again" in trials[-1].user_attrs["error"]


@pytest.mark.postgres
def test_database_restarted_twice_during_a_run(tmp_path):
    cluster = Cluster()
    try:
        cluster.start()
        budget = 24
        fleet = start_fleet(["run", write_study(tmp_path, steps=6), "--workers", "4", "--trials",
                             budget], {"HPO_STORAGE": cluster.url, "STEP_SECONDS": "0.1"}, tmp_path)
        study = wait_for(lambda: _try_load(cluster.url), what="the study")
        for restart in range(2):
            wait_for(lambda target=4 + restart * 8:
                     sum(t.state == TrialState.COMPLETE for t in study.get_trials()) >= target,
                     what="progress")
            cluster.restart()
        out, err = fleet.communicate(timeout=300)
        assert fleet.returncode == 0, err
        assert "lost the database connection" in err and "connection is back" in err
        assert_exact(load(cluster.url), budget)
    finally:
        cluster.destroy()


@pytest.mark.postgres
def test_sixteen_workers_with_instant_trials(tmp_path, study_file, pg_url):
    result = hpo_cli("run", study_file(per_value=100), "--workers", "16", "--trials", "160",
                     env={"HPO_STORAGE": pg_url}, cwd=tmp_path, timeout=400)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "error" not in result.stderr.lower()
    study = optuna.load_study(study_name="synthetic-v1", storage=open_storage(pg_url))
    complete = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert len(complete) == 160 == len(study.get_trials())
    assert sorted(t.user_attrs["slot"] for t in complete) == list(range(160))
    assert len({t.user_attrs["worker_pid"] for t in complete}) > 1


def test_sigterm_to_the_fleet_hands_trials_back_for_the_next_fleet(tmp_path):
    storage = tmp_path / "j.log"
    path = write_study(tmp_path, steps=400)
    fleet = start_fleet(["run", path, "--workers", "3", "--trials", "6", "--storage", storage],
                        {"STEP_SECONDS": "0.1", "HPO_CHECKPOINT_DIR": str(tmp_path / "c")},
                        tmp_path)
    study = wait_for(lambda: _try_load(str(storage)), what="the study")
    def running_pids():
        pids = {t.user_attrs.get("worker_pid")
                for t in study.get_trials(states=(TrialState.RUNNING,)) if t.intermediate_values}
        return pids if len(pids) == 3 and None not in pids else None
    pids = wait_for(running_pids, what="3 running trials")
    stopped_at = time.monotonic()
    fleet.send_signal(signal.SIGTERM)
    out, err = fleet.communicate(timeout=30)
    assert time.monotonic() - stopped_at < 10
    assert fleet.returncode == 130, err
    assert "handed back" in err
    for pid in pids:  # every worker is gone
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    states = Counter(t.state.name for t in load(str(storage)).get_trials())
    assert states == {"WAITING": 6}  # three handed back, three never started; none failed
    again = hpo_cli("run", path, "--workers", "2", "--trials", "6", "--storage", storage,
                    env={"STEP_SECONDS": "0", "HPO_CHECKPOINT_DIR": str(tmp_path / "c")})
    assert again.returncode == 0, again.stderr
    assert_exact(load(str(storage)), 6)


def test_gpu_workers_are_pinned_one_per_selected_gpu(tmp_path, study_file):
    storage, pins = tmp_path / "j.log", tmp_path / "pins"
    pins.mkdir()
    path = study_file(per_value=4)
    # Every process that loads the study file says what it was given; the fleet's children
    # are those with a GPU name. Which worker runs which trial is up to the scheduler.
    path.write_text(path.read_text() + (
        "\nimport os, pathlib\n"
        "if os.environ.get('HPO_GPU_NAME'):\n"
        f"    pathlib.Path({str(pins)!r}, str(os.getpid())).write_text("
        "os.environ['CUDA_VISIBLE_DEVICES'] + '|' + os.environ['HPO_GPU_NAME'])\n"))
    env = {"HPO_GPUS": "0:Fake A100,1:Fake A100,2:Fake H100"}
    result = hpo_cli("workers", path, "--gpus", "0,2", "--storage", storage, env=env)
    assert result.returncode == 0, result.stderr
    assert sorted(p.read_text() for p in pins.iterdir()) == ["0|Fake A100", "2|Fake H100"]
    study = optuna.load_study(study_name="synthetic-v1", storage=open_storage(str(storage)))
    seen = {(t.user_attrs["cuda_visible_devices"], t.user_attrs["gpu"]) for t in study.get_trials()}
    assert seen and seen <= {("0", "Fake A100"), ("2", "Fake H100")}


def test_gpu_seats_count_gpus_in_nvidia_smi_order(monkeypatch):
    """CUDA numbers GPUs fastest first unless told otherwise; nvidia-smi by PCI bus."""
    from hpo.fleet import seats

    monkeypatch.setenv("HPO_GPUS", "0:Fake T4,1:Fake A100")
    (seat,) = seats("1", None)
    assert seat.label == "GPU 1 (Fake A100)"
    assert seat.env == {"CUDA_VISIBLE_DEVICES": "1", "HPO_GPU_NAME": "Fake A100",
                        "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


@pytest.mark.parametrize("args, gpus, message", [
    (["--gpus", "5"], "0:A,1:B",
     "--gpus 5: GPU 5 does not exist; this machine has GPU indices: 0, 1"),
    (["--gpus", "all"], "", "--gpus all: no GPU found"),
    (["--gpus", "0,x"], "0:A", "expected all, none, or GPU indices like 0,2"),
    (["--gpus", "0", "--workers", "2"], "0:A", "use --gpus none --workers N"),
])
def test_bad_gpu_selection_is_one_line_exit_2_nothing_written(tmp_path, study_file, args, gpus,
                                                              message):
    storage = tmp_path / "j.log"
    result = hpo_cli("workers", study_file(), *args, "--storage", storage, env={"HPO_GPUS": gpus})
    assert result.returncode == 2
    assert result.stderr.strip() == f"hpo: error: {message}" or message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not storage.exists()


def test_supervisor_gives_up_on_a_worker_that_crashes_at_start_and_others_finish(tmp_path,
                                                                                 study_file):
    path = study_file(per_value=3)
    # The study file refuses to load in the worker pinned to the broken GPU.
    path.write_text("import os\nif os.environ.get('HPO_GPU_NAME') == 'Broken':\n"
                    "    raise RuntimeError('CUDA driver is broken on this GPU')\n"
                    + path.read_text())
    journal = tmp_path / "j.log"
    result = hpo_cli("workers", path, "--gpus", "all", "--storage", journal,
                     env={"HPO_GPUS": "0:Good,1:Broken"})
    assert result.returncode == 0, result.stderr
    assert "giving up on GPU 1 (Broken): it crashed 3 times" in result.stderr
    assert "restarting it in" in result.stderr
    study = optuna.load_study(study_name="synthetic-v1", storage=open_storage(str(journal)))
    assert {t.user_attrs["gpu"] for t in study.get_trials()} == {"Good"}
    assert sum(t.state == TrialState.COMPLETE for t in study.get_trials()) == 6
