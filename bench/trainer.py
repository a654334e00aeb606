"""Benchmark: hpo.train's training loop vs a bare hand-written PyTorch loop, side by side.

Why: the trainer does more per step than a bare loop (learning-rate schedule, gradient norm,
loss and norm bookkeeping, checkpoints, curves, trial attributes). This measures what that
costs, in one run, on the same model, data, batch size, optimizer and device. Goal: hpo.train
reaches at least 0.95 of the bare loop's examples/s.

Both sides train the same MLP (digits, 64 -> width -> width -> 10, Adam, constant learning
rate) for the same number of steps from data already on the device, and evaluate once at the
end. The bare loop feeds its batches as hpo.train does (one shuffled copy of the training set
per epoch, then contiguous slices: cheaper than gathering every batch), so the ratio is the
cost of the trainer's bookkeeping alone. hpo.train runs a real trial (an in-memory Optuna
study, checkpoints in a temporary folder, one evaluation at the last step). Each side's
examples/s is ``steps * batch / wall time`` of the whole training call, model construction
included. The two run in alternating pairs, ``--repeats`` times; each side's figure is its
median, and the ratio is the median of the pairs' ratios (on a shared machine one run can be 30%
slower than the next; pairing cancels slow drifts and the median ignores outliers, where a
best-of-N would reward one lucky run). The spread of the pairs' ratios is printed too, and on
CPU the same ratio in CPU seconds, which other processes on the machine do not inflate.

Run:
    python bench/trainer.py [--quick] [--device cpu|cuda] [--steps 2000] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import optuna
import torch
import torch.nn.functional as F

from hpo.context import Context
from hpo.train import TrainSettings, fit, load_dataset, mlp

LEARNING_RATE = 1e-3


def model_for(width: int):
    return lambda config: mlp(64, 10, width=width, depth=2)


def bare_loop(width: int, steps: int, batch: int, device: str,
              seed: int = 0) -> tuple[float, float]:
    """A careful hand-written loop; returns its (wall, CPU) time in seconds."""
    data = load_dataset("digits", device)
    x, y, n = data.x_train, data.y_train, data.train_examples
    start, cpu = time.perf_counter(), time.process_time()
    torch.manual_seed(seed)
    net = model_for(width)({}).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    per_epoch = n // batch
    for step in range(steps):
        if step % per_epoch == 0:
            order = torch.randperm(n, device=device)
            xs, ys = x[order], y[order]
        first = (step % per_epoch) * batch
        loss = F.cross_entropy(net(xs[first:first + batch]), ys[first:first + batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        net.eval()
        error = (net(data.x_val).argmax(1) != data.y_val).float().mean().item()
    assert 0.0 <= error <= 1.0  # .item() also waits for the device to finish
    return time.perf_counter() - start, time.process_time() - cpu


def hpo_loop(width: int, steps: int, batch: int, device: str, folder: str) -> tuple[float, float]:
    """The same training through hpo.train.fit, as a trial; its (wall, CPU) time in seconds."""
    load_dataset("digits", device)  # both sides start with the data on the device
    study = optuna.create_study(direction="minimize")
    trial = study.ask()
    ctx = Context(trial, seed=0, device=device, checkpoint_root=folder)
    config = {"optimizer": "adam", "learning_rate": LEARNING_RATE, "batch_size": batch,
              "max_train_steps": steps, "eval_every": steps}
    start, cpu = time.perf_counter(), time.process_time()
    fit(model_for(width), "digits", config, ctx, TrainSettings())
    return time.perf_counter() - start, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 steps, 3 pairs (the tests)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: steady figures on a shared machine)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 300, 3
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Warm up both paths once (allocator, kernels, lazy imports) before anything is timed.
    with tempfile.TemporaryDirectory() as folder:
        bare_loop(args.width, 20, args.batch_size, args.device)
        hpo_loop(args.width, 20, args.batch_size, args.device, folder)
        bare_s, hpo_s = [], []
        for _ in range(args.repeats):
            bare_s.append(bare_loop(args.width, args.steps, args.batch_size, args.device))
            hpo_s.append(hpo_loop(args.width, args.steps, args.batch_size, args.device, folder))
    examples = args.steps * args.batch_size
    bare = examples / statistics.median(wall for wall, _ in bare_s)
    hpo = examples / statistics.median(wall for wall, _ in hpo_s)
    ratios = sorted(b[0] / h[0] for b, h in zip(bare_s, hpo_s, strict=True))
    cpu_ratios = sorted(b[1] / h[1] for b, h in zip(bare_s, hpo_s, strict=True))
    where = args.device + (f" ({args.threads} thread{'s' * (args.threads > 1)})"
                           if args.device == "cpu" else f" ({torch.cuda.get_device_name()})")
    print(f"hpo.train vs bare PyTorch loop: MLP 64-{args.width}-{args.width}-10 on digits, "
          f"Adam, batch {args.batch_size}, {args.steps} steps, {where}, "
          f"{args.repeats} alternating pairs, torch {torch.__version__}")
    print(f"bare loop  {bare:>12,.0f} examples/s (median)")
    print(f"hpo.train  {hpo:>12,.0f} examples/s (median)")
    print(f"ratio: {statistics.median(ratios):.3f} (hpo.train / bare, median of {len(ratios)} "
          f"pairs, {ratios[0]:.2f} to {ratios[-1]:.2f}; goal >= 0.95)")
    if args.device == "cpu":
        # CPU seconds do not count the time other processes hold the core: on a shared
        # machine this is the steadier measure of what each loop costs.
        print(f"cpu-time ratio: {statistics.median(cpu_ratios):.3f} (same pairs, "
              f"{cpu_ratios[0]:.2f} to {cpu_ratios[-1]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
