"""Trials on GPUs through the integrations and across GPUs: Lightning and Transformers on
CUDA, ``hpo workers --gpus-per-trial 2`` pinning two GPUs per worker with one NCCL process
each, the example studies as one 2-GPU trial each, and a killed rank under NCCL (where a
collective waits for a dead peer instead of failing) stopped by the worker's watchdog.

Skipped where no CUDA GPU is visible; the 2-GPU tests also where fewer than two are. On a
GPU machine: ``pytest tests/gpu``. Every test takes seconds to a minute.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import optuna
import pytest
import torch
from conftest import ROOT, hpo_cli
from optuna.trial import TrialState

from hpo.context import Context
from hpo.store import open_storage

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="needs a CUDA GPU; run on a GPU machine: pytest tests/gpu"),
]
two_gpus = pytest.mark.skipif(torch.cuda.device_count() < 2,
                              reason="needs two CUDA GPUs for a trial that spans two")

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(autouse=True)
def _no_gpu_overrides(monkeypatch):
    """The real GPUs, as nvidia-smi finds them: nothing from the environment."""
    for name in ("HPO_GPUS", "HPO_DEVICE", "HPO_DEVICES", "HPO_GPU_NAME", "HPO_PROCS_PER_TRIAL",
                 "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)


def trials(storage: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=open_storage(str(storage))).trials


# --- the integrations on one GPU ----------------------------------------------------------------


def test_lightning_trains_on_the_trials_gpu(tmp_path):
    from hpo.integrations import lightning as hpo_lightning
    from hpo.study_file import load_study_file

    definition = load_study_file(ROOT / "studies" / "lightning_digits.py")
    trial = optuna.create_study().ask()
    ctx = Context(trial, seed=0, device="cuda:0", checkpoint_root=tmp_path, metric="val_error")
    trainer = hpo_lightning.trainer(ctx, max_epochs=2)
    assert trainer.strategy.root_device == torch.device("cuda:0")
    module = definition.objective.__globals__["DigitsMLP"](
        {"depth": 1, "width": 64, "learning_rate": 0.1, "momentum": 0.9})
    data = definition.objective.__globals__["DigitsData"](64)
    value = hpo_lightning.fit(ctx, trainer, module, datamodule=data)
    assert next(module.parameters()).device.type == "cuda"
    assert value < 0.5 and len(trial.user_attrs["curves"]["step"]) == 2


def test_transformers_trains_on_the_trials_gpu(tmp_path):
    from hpo.study_file import load_study_file

    os.environ["HF_HUB_OFFLINE"] = "1"
    definition = load_study_file(ROOT / "studies" / "transformers_sentiment.py")
    trial = optuna.create_study().ask()
    ctx = Context(trial, seed=0, device="cuda:0", checkpoint_root=tmp_path,
                  metric="eval_error")
    from hpo.integrations import transformers as hpo_transformers

    assert hpo_transformers.training_args(ctx).use_cpu is False
    value = definition.objective({"layers": 1, "learning_rate": 3e-3, "warmup_fraction": 0.1,
                                  **definition.space.fixed}, ctx)
    assert value < 0.3, trial.user_attrs["curves"]


# --- two GPUs per trial -------------------------------------------------------------------------

# Every rank reports what it sees to rank 0, which records it; then some NCCL traffic.
SPMD_STUDY = '''
import os, time
import torch
import torch.distributed as dist
from hpo import Study, choice, fixed, nuisance, scientific, uniform


def objective(config, ctx):
    me = {"rank": ctx.rank, "device": ctx.device, "devices": ctx.devices,
          "visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
          "count": torch.cuda.device_count(), "backend": dist.get_backend(),
          "uuid": str(torch.cuda.get_device_properties(ctx.device).uuid),
          "pid": os.getpid()}
    everyone = [None] * ctx.world_size
    dist.all_gather_object(everyone, me)
    ctx.set_attr("ranks", everyone)
    x = torch.ones(1024, device=ctx.device)
    for step in range(config["steps"]):
        dist.all_reduce(x)
        x /= ctx.world_size
        ctx.report(step, float(x[0]) + config["x"])
        time.sleep(config["sleep"])
    return config["x"]


study = Study(name="gpu-spmd-v1", goal="Does a trial span two GPUs?", metric="loss",
              space={"arm": scientific(choice("a", "b")), "x": nuisance(uniform(0.0, 1.0)),
                     "steps": fixed(STEPS), "sleep": fixed(SLEEP)},
              objective=objective, trials_per_value=1)
'''


def spmd_study(tmp_path, *, steps=3, sleep=0.0) -> Path:
    path = tmp_path / "spmd.py"
    path.write_text(SPMD_STUDY.replace("STEPS", str(steps)).replace("SLEEP", str(sleep)))
    return path


@two_gpus
def test_gpus_per_trial_pins_two_gpus_per_worker_one_nccl_process_each(tmp_path):
    storage = tmp_path / "journal.log"
    result = hpo_cli("workers", spmd_study(tmp_path), "--gpus", "0,1", "--gpus-per-trial", "2",
                     "--storage", storage, "--checkpoint-dir", tmp_path / "ckpt", cwd=tmp_path,
                     timeout=300)
    assert result.returncode == 0, result.stderr
    assert "1 worker(s) (GPUs 0,1 (" in result.stderr, result.stderr
    for t in trials(storage, "gpu-spmd-v1"):
        assert t.state == TrialState.COMPLETE, t.user_attrs.get("error")
        assert t.user_attrs["world_size"] == 2 and t.user_attrs["cuda_visible_devices"] == "0,1"
        ranks = t.user_attrs["ranks"]
        assert [r["device"] for r in ranks] == ["cuda:0", "cuda:1"]
        assert all(r["devices"] == ["cuda:0", "cuda:1"] and r["visible"] == "0,1"
                   and r["count"] == 2 and r["backend"] == "nccl" for r in ranks)
        assert len({r["uuid"] for r in ranks}) == 2  # two physical GPUs
        assert t.intermediate_values == {s: 1.0 + t.params["x"] for s in range(3)}


@two_gpus
def test_a_killed_rank_under_nccl_fails_the_trial_without_a_hang(tmp_path):
    """NCCL does not notice a dead peer: the survivor would wait in its all-reduce until the
    collective timeout. The worker's watchdog stops it as soon as the other rank is gone."""
    import subprocess
    import sys

    storage = tmp_path / "journal.log"
    run = subprocess.Popen(
        [sys.executable, "-m", "hpo", "workers", str(spmd_study(tmp_path, steps=400, sleep=0.05)),
         "--gpus", "0,1", "--gpus-per-trial", "2", "--trials", "1", "--storage", str(storage),
         "--checkpoint-dir", str(tmp_path / "ckpt")], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        ranks = None
        while ranks is None and time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                found = trials(storage, "gpu-spmd-v1")
            except Exception:  # noqa: BLE001 - not created yet
                continue
            running = [t for t in found if t.state == TrialState.RUNNING
                       and len(t.intermediate_values) >= 5]
            ranks = running[0].user_attrs["ranks"] if running else None
        assert ranks is not None, "no trial got going on two GPUs"
        killed_at = time.monotonic()
        os.kill(ranks[1]["pid"], signal.SIGKILL)
        _, err = run.communicate(timeout=120)
        took = time.monotonic() - killed_at
    finally:
        if run.poll() is None:
            run.kill()
    (t,) = [t for t in trials(storage, "gpu-spmd-v1") if t.user_attrs.get("ranks") == ranks]
    # Failed with the reason, or (an infrastructure error) back in the queue and run again.
    assert t.state in (TrialState.FAIL, TrialState.WAITING) or any(
        x.system_attrs.get("failed_trial") == t.number
        for x in trials(storage, "gpu-spmd-v1")), err
    if t.state == TrialState.FAIL:
        assert f"rank 1 of 2 (pid {ranks[1]['pid']}) died: killed by SIGKILL" in \
            t.user_attrs["error"]
    assert took < 90, f"{took:.0f}s from the kill to the end: the survivor hung"
    assert not Path(f"/proc/{ranks[0]['pid']}").exists()


@two_gpus
@pytest.mark.parametrize("example, metric_limit", [
    ("ddp_digits.py", 0.2), ("lightning_digits.py", 0.5), ("transformers_sentiment.py", 0.35),
])
def test_each_example_as_one_trial_on_two_gpus(tmp_path, example, metric_limit):
    storage = tmp_path / "journal.log"
    result = hpo_cli("workers", ROOT / "studies" / example, "--gpus", "0,1",
                     "--gpus-per-trial", "2", "--trials", "1", "--storage", storage,
                     "--checkpoint-dir", tmp_path / "ckpt", cwd=tmp_path, timeout=600,
                     env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name=optuna.get_all_study_names(
        open_storage(str(storage)))[0], storage=open_storage(str(storage)))
    (trial,) = study.trials
    assert trial.state == TrialState.COMPLETE, trial.user_attrs.get("error")
    assert trial.user_attrs["world_size"] == 2
    assert trial.value < metric_limit
    print(f"{example}: one trial on 2 GPUs ({trial.user_attrs['gpu']}), "
          f"{study.metric_names or 'value'} {trial.value:.4f} in "
          f"{trial.duration.total_seconds():.1f}s")


@two_gpus
def test_ddp_on_two_gpus_matches_one_gpu(tmp_path):
    values = {}
    for per_trial, gpus in (("2", "0,1"), ("1", "0")):
        storage = tmp_path / f"journal-{per_trial}.log"
        result = hpo_cli("workers", ROOT / "studies" / "ddp_digits.py", "--gpus", gpus,
                         "--gpus-per-trial", per_trial, "--trials", "2", "--storage", storage,
                         "--checkpoint-dir", tmp_path / f"ckpt-{per_trial}", cwd=tmp_path,
                         timeout=600)
        assert result.returncode == 0, result.stderr
        values[per_trial] = {t.params["width"]: t for t in trials(storage, "ddp-digits-width-v1")}
    for width, two in values["2"].items():
        one = values["1"][width]
        assert two.user_attrs["world_size"] == 2 and "world_size" not in one.user_attrs
        assert two.value == pytest.approx(one.value, abs=2 / 450)  # two validation examples
        assert two.user_attrs["curves"]["val_loss"] == pytest.approx(
            one.user_attrs["curves"]["val_loss"], rel=1e-2)
