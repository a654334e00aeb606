"""The GPU code paths, run for real on a CUDA device: bf16 training, exact resume with the
CUDA RNG, a real CUDA out-of-memory inside a worker, ``hpo batch-scan`` on CUDA, and
``hpo workers --gpus all`` pinning found by nvidia-smi.

Skipped where no CUDA GPU is visible (CI has none); on a GPU machine: ``pytest tests/gpu``.
Every test takes seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings

import optuna
import pytest
import torch
import train_helpers
from conftest import hpo_cli
from optuna.trial import TrialState
from train_helpers import Killed, config, killed_at, tiny_model

from hpo import Study, nuisance, uniform
from hpo.context import Context
from hpo.store import open_storage
from hpo.train import TrainSettings, fit, load_dataset, mlp
from hpo.worker import run_worker

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="needs a CUDA GPU; run on a GPU machine: pytest tests/gpu"),
]

optuna.logging.set_verbosity(optuna.logging.WARNING)
GIB = 2**30
DEVICE = "cuda:0"


@pytest.fixture(autouse=True)
def _leave_torch_as_found():
    """``TrainSettings(deterministic=True)`` switches torch's deterministic mode on for the
    process; later tests must not inherit it, nor the GPU memory a test cached."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(deterministic)
    torch.cuda.empty_cache()


def make_ctx(folder, *, seed: int = 0) -> tuple[Context, optuna.Trial]:
    return train_helpers.make_ctx(folder, seed=seed, device=DEVICE)


def nvidia_smi_gpus() -> list[tuple[str, str, str]]:
    """(index, uuid, name) of every GPU, as nvidia-smi lists them."""
    if shutil.which("nvidia-smi") is None:
        pytest.skip("needs nvidia-smi, which hpo's GPU discovery reads")
    out = subprocess.run(["nvidia-smi", "--query-gpu=index,uuid,name", "--format=csv,noheader"],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    return [tuple(part.strip() for part in line.split(",", 2)) for line in out.splitlines()]


# --- hpo.train on CUDA ----------------------------------------------------------------------


@pytest.mark.parametrize("bf16", [True, False], ids=["bf16", "float32"])
def test_training_on_cuda_learns_digits_and_records_its_precision(tmp_path, bf16):
    ctx, trial = make_ctx(tmp_path)
    dtypes = set()

    def build(config):
        net = mlp(64, 10, width=128)
        # What the first layer really computes in during training steps.
        net[0].register_forward_hook(
            lambda module, args, out: dtypes.add(out.dtype) if module.training else None)
        return net

    values = config(learning_rate=3e-3, batch_size=64, max_train_steps=300, eval_every=50)
    error = fit(build, "digits", values, ctx, TrainSettings(bf16=bf16))
    attrs = trial.user_attrs
    assert attrs["device"] == DEVICE
    assert attrs["precision"] == ("bf16 autocast" if bf16 else "float32")
    assert attrs["trainer"]["bf16"] is bf16
    assert dtypes == {torch.bfloat16 if bf16 else torch.float32}
    losses = attrs["curves"]["train_loss"]
    assert losses[-1] < losses[0] / 3, losses  # it learned
    assert error < 0.1  # chance is 0.9 on 10 classes
    assert attrs["examples_per_s"] > 0 and attrs["grad_norm_p90"] > 0


def test_training_steps_never_wait_for_the_gpu(tmp_path):
    """The loop's only host syncs are at evaluations (and the checkpoint and record after
    them): as many for 2 epochs as for 20, so none happens per step or per epoch."""
    load_dataset("digits", DEVICE)  # loading copies to the GPU once; not the loop's doing
    counts = []
    for steps in (20, 200):  # batch 128 of 1,347 examples: 10 steps an epoch
        ctx, _ = make_ctx(tmp_path / str(steps))
        values = config(batch_size=128, max_train_steps=steps, eval_every=steps)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")  # warns that it is a prototype
                fit(tiny_model, "digits", values, ctx)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        counts.append(sum("synchronizing CUDA operation" in str(w.message) for w in caught))
    assert counts[0] == counts[1] > 0, counts


# Everything that can break an exact resume at once, as in tests/unit/train/test_trainer.py:
# dropout (on CUDA: the CUDA RNG), several epochs, Adam state, warmup + cosine, clipping.
RESUME = config(optimizer="adam", learning_rate=3e-3, weight_decay=1e-4, lr_schedule="cosine",
                warmup_steps=20, grad_clip_norm=1.0, batch_size=32, max_train_steps=240,
                eval_every=40, dropout=0.3, width=32)
RECORDED = ("best_step", "best_metric", "final_metric", "clipped_fraction", "grad_norm_p90",
            "curves", "trainer", "precision", "device")


def interrupted_run(tmp_path, settings):
    """The uninterrupted run's trial, and a second run killed at step 130 (its last
    checkpoint is at step 120) with its Context, ready to resume."""
    ctx, whole = make_ctx(tmp_path / "whole", seed=7)
    expected = fit(tiny_model, "digits", RESUME, ctx, settings)
    ctx, trial = make_ctx(tmp_path / "cut", seed=7)
    with pytest.raises(Killed):
        fit(killed_at(130), "digits", RESUME, ctx, settings)
    saved = ctx.load_checkpoint(name="last", map_location="cpu")
    assert saved.step == 120 and saved.state["cuda_rng"] is not None
    # Whatever the RNGs hold by now must not matter to the resumed run.
    torch.manual_seed(12345)
    return expected, whole, ctx, trial


@pytest.mark.parametrize("settings", [
    TrainSettings(deterministic=True), TrainSettings(), TrainSettings(bf16=True),
], ids=["deterministic", "default", "bf16"])
def test_resume_on_cuda_is_exact_including_the_cuda_rng(tmp_path, settings):
    expected, whole, ctx, trial = interrupted_run(tmp_path, settings)
    resumed = fit(tiny_model, "digits", RESUME, ctx, settings)
    assert resumed == expected  # exactly, not approximately
    assert trial.user_attrs["resumed_from_step"] == 120
    for name in RECORDED:
        assert trial.user_attrs[name] == whole.user_attrs[name], name
    best = trial.user_attrs["best_step"]
    a = torch.load(tmp_path / "whole" / whole.study.study_name / f"slot-trial-{whole.number}"
                   / f"best-step{best:09d}.pt", weights_only=False)
    b = ctx.load_checkpoint(name=f"best-step{best:09d}")
    assert all(v.device.type == "cuda" for v in b.state["model"].values())
    assert all(torch.equal(a["state"]["model"][k], v) for k, v in b.state["model"].items())


def test_the_resume_test_catches_a_cuda_rng_state_that_is_not_restored(tmp_path, monkeypatch):
    """The control for the test above: dropout on CUDA draws from the CUDA RNG, so a resume
    that forgot its state would not be exact, and the comparison would see it."""
    settings = TrainSettings(deterministic=True)
    expected, whole, ctx, trial = interrupted_run(tmp_path, settings)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda *args, **kwargs: None)
    resumed = fit(tiny_model, "digits", RESUME, ctx, settings)
    assert trial.user_attrs["resumed_from_step"] == 120
    after = slice(3, None)  # evaluations at 40, 80, 120 come from the checkpoint
    assert trial.user_attrs["curves"]["train_loss"][after] != \
        whole.user_attrs["curves"]["train_loss"][after]
    assert resumed != expected or trial.user_attrs["curves"] != whole.user_attrs["curves"]


# --- a real CUDA out-of-memory in a worker --------------------------------------------------


def test_a_real_cuda_out_of_memory_fails_the_trial_frees_the_gpu_and_the_worker_goes_on(
        tmp_path):
    torch.cuda.empty_cache()
    seen = []  # (trial number, bytes allocated, bytes reserved) as each trial starts

    def objective(config, ctx):
        seen.append((ctx.trial_number, torch.cuda.memory_allocated(),
                     torch.cuda.memory_reserved()))
        held = torch.ones(GIB // 4, device=ctx.device)  # 1 GiB, alive when the trial fails
        if len(seen) == 1:
            torch.empty(10 * 2**40, dtype=torch.uint8, device=ctx.device)  # 10 TiB
        return float(held[0]) * config["x"]

    definition = Study(name="gpu-oom-v1", goal="Does a CUDA OOM take the worker down?",
                       metric="loss", space={"x": nuisance(uniform(0.0, 1.0))},
                       objective=objective, trials_per_value=4)
    url = str(tmp_path / "journal.log")
    assert run_worker(definition, url) == 4
    trials = optuna.load_study(study_name="gpu-oom-v1", storage=open_storage(url)).get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].number == seen[0][0]
    assert failed[0].user_attrs["oom"] is True
    assert re.match(r"out of memory: OutOfMemoryError: CUDA out of memory\. Tried to allocate "
                    r"10240\.00 GiB\. GPU 0 has a total capacity of", failed[0].user_attrs["error"])
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3  # the worker went on
    # The next trial found the GPU as the failed one did: its 1 GiB freed (allocated), and
    # given back to the device (reserved), not kept in PyTorch's cache.
    (_, allocated_before, reserved_before), (_, allocated_after, reserved_after) = seen[:2]
    assert abs(allocated_after - allocated_before) < 2**20
    assert reserved_after - reserved_before < GIB // 2, (
        f"{(reserved_after - reserved_before) / GIB:.2f} GiB still reserved after the OOM trial")


# --- hpo batch-scan on CUDA -----------------------------------------------------------------

# A small MLP whose training forward pass also holds PER_EXAMPLE bytes per example (uninitialized,
# so it costs memory, not time): 1/32 of the GPU's memory each, so batch 8 takes a quarter,
# 16 half, and 32 more than the GPU has.
HOG_STUDY = '''
import torch
from hpo import Study, fixed, log_uniform, nuisance
from hpo.train import mlp, objective

PER_EXAMPLE = torch.cuda.get_device_properties(0).total_memory // 32


class Hog(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = mlp(64, 10, width=32)

    def forward(self, x):
        hog = None
        if self.training:
            hog = torch.empty(len(x) * PER_EXAMPLE, dtype=torch.uint8, device=x.device)
        out = self.net(x)
        del hog
        return out


study = Study(name="gpu-hog-v1", goal="Where does a memory-hungry model run out of memory?",
              metric="val_error",
              space={"learning_rate": nuisance(log_uniform(1e-4, 1e-2)), "optimizer": fixed("adam"),
                     "batch_size": fixed(8), "max_train_steps": fixed(100),
                     "eval_every": fixed(100)},
              objective=objective(lambda config: Hog(), "digits"), trials_per_value=1)
'''

ROW = re.compile(r"^ *(\d+) +([\d,]+|-) +([\d.]+x|-) +([\d.]+) (B|KB|MB|GB) *(.*)$|"
                 r"^ *(\d+) +- +- +- +(.*)$", re.M)


def scan_rows(out: str) -> dict[int, tuple[float | None, float | None, str]]:
    """batch size -> (examples/s, memory in bytes, note) from batch-scan's table."""
    units = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9}
    rows = {}
    for m in ROW.finditer(out):
        if m.group(1):
            speed = None if m.group(2) == "-" else float(m.group(2).replace(",", ""))
            rows[int(m.group(1))] = (speed, float(m.group(4)) * units[m.group(5)],
                                     m.group(6).strip())
        else:
            rows[int(m.group(7))] = (None, None, m.group(8).strip())
    return rows


@pytest.mark.parametrize("cap", [False, True], ids=["out-of-memory", "memory-cap"])
def test_batch_scan_on_cuda_measures_peak_memory_and_stops_at_oom_or_the_cap(tmp_path, cap):
    study = tmp_path / "hog.py"
    study.write_text(HOG_STUDY)
    per_example = torch.cuda.get_device_properties(0).total_memory // 32
    args = ["--max-memory", str(12 * per_example)] if cap else []
    torch.cuda.empty_cache()  # this process's cache would shrink what the scan can use
    result = hpo_cli("batch-scan", study, "--device", "cuda", "--steps", "3", *args,
                     "--plot", tmp_path / "scan.svg", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"^batch size\s+examples/s\s+vs half\s+memory \(peak\)\s+note$", out, re.M)
    rows = scan_rows(out)
    measured = [8] if cap else [8, 16]
    assert sorted(rows) == [*measured, measured[-1] * 2], out
    for size in measured:
        speed, memory, _ = rows[size]
        assert speed > 0
        # The measured peak holds the batch's hog, and little else (a tiny MLP on digits).
        assert size * per_example <= memory + 0.1e9 < size * per_example + 0.5e9, out
    speed, memory, note = rows[measured[-1] * 2]
    assert speed is None
    if cap:
        assert re.fullmatch(r"over the [\d.]+ GB memory cap", note), out
    else:
        assert note == "out of memory" and memory is None, out
    assert re.search(rf"^recommendation: batch_size=({'|'.join(map(str, measured))}), ", out,
                     re.M), out
    assert (tmp_path / "scan.svg").is_file()


# --- GPU workers: discovery by nvidia-smi, pinning, provenance ----------------------------

FLEET_STUDY = '''
import os
import torch
from hpo import Study, fixed, log_uniform, nuisance
from hpo.train import fit, mlp


def model(config):
    return mlp(64, 10, width=32)


def objective(config, ctx):
    ctx.set_attr("seen", {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
                          "CUDA_DEVICE_ORDER": os.environ.get("CUDA_DEVICE_ORDER"),
                          "ctx_device": ctx.device, "device_count": torch.cuda.device_count(),
                          "device_name": torch.cuda.get_device_name(ctx.device)})
    return fit(model, "digits", config, ctx)


study = Study(name="gpu-fleet-v1", goal="Does each GPU worker train on its own GPU?",
              metric="val_error",
              space={"learning_rate": nuisance(log_uniform(1e-3, 1e-2)), "optimizer": fixed("adam"),
                     "batch_size": fixed(64), "max_train_steps": fixed(100),
                     "eval_every": fixed(50)},
              objective=objective, trials_per_value=TRIALS)
'''


def fleet_trials(tmp_path, storage):
    return optuna.load_study(study_name="gpu-fleet-v1",
                             storage=open_storage(str(storage))).get_trials()


def test_workers_gpus_all_pins_one_worker_per_real_gpu_and_records_it(tmp_path, monkeypatch):
    gpus = nvidia_smi_gpus()
    names = {index: name for index, _, name in gpus}
    for var in ("HPO_GPUS", "HPO_DEVICE", "HPO_GPU_NAME"):
        monkeypatch.delenv(var, raising=False)
    study = tmp_path / "fleet.py"
    study.write_text(FLEET_STUDY.replace("TRIALS", str(2 * len(gpus))))
    storage = tmp_path / "journal.log"
    result = hpo_cli("workers", study, "--gpus", "all", "--storage", storage,
                     "--checkpoint-dir", tmp_path / "ckpt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    labels = ", ".join(f"GPU {index} ({name})" for index, _, name in gpus)
    assert f"{len(gpus)} worker(s) ({labels})" in result.stderr, result.stderr
    trials = fleet_trials(tmp_path, storage)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 * len(gpus)
    for t in trials:
        attrs, seen = t.user_attrs, t.user_attrs["seen"]
        index = attrs["cuda_visible_devices"]
        assert index in names and seen["CUDA_VISIBLE_DEVICES"] == index
        assert seen["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"  # so nvidia-smi's index is CUDA's
        assert seen["device_count"] == 1 and seen["ctx_device"] == DEVICE
        assert attrs["gpu"] == names[index] == seen["device_name"]
        assert attrs["device"] == DEVICE and attrs["precision"] == "float32"  # the trainer's
        assert attrs["worker_pid"] != os.getpid() and t.value < 0.5
        print(f"trial {t.number}: CUDA_VISIBLE_DEVICES={index}, gpu={attrs['gpu']!r}, "
              f"torch {attrs['torch_version']}, val_error {t.value:.4f}")
    if len(gpus) == 1:
        assert {t.user_attrs["cuda_visible_devices"] for t in trials} == {"0"}


def test_a_bare_worker_pinned_by_uuid_names_its_gpu(tmp_path, monkeypatch):
    """Provenance without the fleet: ``hpo worker`` under CUDA_VISIBLE_DEVICES=GPU-<uuid>
    asks nvidia-smi for the name."""
    index, uuid, name = nvidia_smi_gpus()[-1]
    for var in ("HPO_GPUS", "HPO_DEVICE", "HPO_GPU_NAME"):
        monkeypatch.delenv(var, raising=False)
    study = tmp_path / "fleet.py"
    study.write_text(FLEET_STUDY.replace("TRIALS", "1"))
    storage = tmp_path / "journal.log"
    result = hpo_cli("worker", study, "--storage", storage, env={"CUDA_VISIBLE_DEVICES": uuid},
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (trial,) = fleet_trials(tmp_path, storage)
    assert trial.state == TrialState.COMPLETE, trial.user_attrs.get("error")
    assert trial.user_attrs["cuda_visible_devices"] == uuid
    assert trial.user_attrs["gpu"] == name == trial.user_attrs["seen"]["device_name"]
    assert trial.user_attrs["seen"]["ctx_device"] == DEVICE
