"""``hpo batch-scan``: feasible batch sizes and their training throughput (playbook,
"Choosing the batch size").

The batch size is not a hyperparameter to tune for validation performance; it is chosen for
training speed. Double it "until one of the jobs exceeds the available memory", measure the
training throughput at each size, and expect it to double too: where doubling the batch stops
nearly doubling examples/s, something else is the bottleneck, and a larger batch buys little.
The recommendation is the largest size that still scales. Changing the batch size "requires
re-tuning most hyperparameters", so settle it before a study, not inside one.

The model and data come from a study file whose objective is ``hpo.train.objective(model,
data)``; the hyperparameters from its space (fixed values, the first scientific value, the
middle of each nuisance range), overridable with ``--set name=value``. Throughput is measured
by hpo.train's own loop: a warm-up run per size, then timed runs in *rounds*, each round timing
every feasible size once (in alternating order), so a change in the machine's load hits every
size alike. A size's throughput is the median of its runs, a doubling's speedup the median of
its per-round ratios, and rounds go on until every size's and every doubling's spread (the
interquartile range, relative) is within ``TOLERANCE`` or ``MAX_ROUNDS`` are done.

Timing noise is named, not hidden: a doubling that gave more than 2x (the throughput of a fixed
per-step cost plus per-example work can at most double) or whose two sizes' spreads overlap is
flagged as noise, and a doubling whose speedup's spread straddles ``--min-speedup`` is
*unclear*. The recommendation rests on the medians (the estimates that settle as rounds are
added, where a spread's end moves with every outlier run): the largest size whose every
doubling scaled; where the first doubling that did not has a spread reaching the threshold,
its double is named too ("64, or 128 within the noise"). Memory is the measured
peak on CUDA, where running out ends the scan; on CPU, which would swap rather than fail, it
is an estimate (parameters, gradients, optimizer state, activations saved for backward and the
batch) checked against ``--max-memory``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import statistics
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import optuna
import torch

from hpo import env
from hpo.context import Context
from hpo.train import models
from hpo.train.config import HyperparameterError
from hpo.train.data import Data, resolve
from hpo.train.objective import TrainObjective
from hpo.train.settings import METRICS, TrainSettings
from hpo.train.trainer import _LOSSES, fit, plan

if TYPE_CHECKING:
    import argparse

    from hpo.study import Study

UNITS = {"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
CPU_DEFAULT_CAP_FRACTION = 0.25  # of physical memory, when --max-memory is not given on CPU
MIN_TIMED_SECONDS = 0.2
MIN_ROUNDS = 3
MAX_ROUNDS = 15
TOLERANCE = 0.05  # a spread (interquartile range / median) this small is a stable estimate
MAX_SPEEDUP = 2.0  # a doubling cannot honestly give more: above it is timing noise


@dataclass
class Row:
    batch_size: int
    examples_per_s: float | None = None  # the median of its timed runs
    memory: int | None = None  # bytes: measured peak on CUDA, estimate on CPU
    stop: str = ""  # why the scan stopped here, if it did
    speedup: float | None = None  # examples/s over the previous (half) size's: median ratio
    samples: list[float] = field(default_factory=list)  # examples/s of each timed run
    ratios: list[float] = field(default_factory=list)  # per-round speedups over the half size
    flags: list[str] = field(default_factory=list)  # timing noise seen at this doubling

    @property
    def spread(self) -> tuple[float, float] | None:
        """The interquartile range of its runs' examples/s."""
        return _quartiles(self.samples)

    @property
    def speedup_range(self) -> tuple[float, float] | None:
        """The interquartile range of the per-round speedups (the speedup alone, if none)."""
        if self.ratios:
            return _quartiles(self.ratios)
        return (self.speedup, self.speedup) if self.speedup is not None else None


@dataclass(frozen=True)
class Recommendation:
    size: int | None  # the largest batch size the measurements say still scales
    also: int | None  # its double, when the doubling to it is unclear: within the noise
    bottleneck: int | None  # the first size whose doubling did not clearly scale
    reason: str


def parse_memory(text: str) -> int:
    """'512MB', '2GiB', '1e9' -> bytes."""
    match = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).upper() if match else None
    if match is None or unit not in UNITS:
        raise HyperparameterError(
            f"--max-memory: cannot read {text!r}; give a size such as 512MB, 2GB or 4GiB"
        )
    return int(float(match.group(1)) * UNITS[unit])


def scan_config(study: Study, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A representative config: fixed values, the first scientific value, mid nuisance."""
    space = study.space
    for name in overrides:
        if name not in space.hyperparameters:
            raise HyperparameterError(
                f"--set {name}: not a hyperparameter of study {study.name!r}; it has "
                f"{', '.join(space.hyperparameters)}"
            )
    chosen = {n: d.values()[0] for n, d in space.scientific.items()}
    chosen.update({n: v for n, v in overrides.items() if n in space.scientific})
    values = {**chosen, **{n: d.from_unit(0.5) for n, d in space.active_nuisance(chosen).items()}}
    values.update(space.fixed)
    values.update(overrides)
    return values


def scan(objective: TrainObjective, config: Mapping[str, Any], *, device: str, start: int = 8,
         max_batch_size: int | None = None, max_memory: int | None = None, steps: int = 20,
         min_rounds: int = MIN_ROUNDS, max_rounds: int = MAX_ROUNDS,
         tolerance: float = TOLERANCE) -> list[Row]:
    """Double the batch size from ``start`` until memory, the data or ``max_batch_size`` ends
    it (a warm-up run each), then time the feasible sizes in rounds (:func:`time_in_rounds`)."""
    cuda = torch.device(device).type == "cuda"
    data = resolve(objective.data, device)
    if not cuda and max_memory is None:
        max_memory = int(CPU_DEFAULT_CAP_FRACTION * _physical_memory())
    rows: list[Row] = []
    timed: dict[int, int] = {}  # batch size -> steps per timed run
    size = start
    with tempfile.TemporaryDirectory(prefix="hpo-batch-scan-") as folder:
        while max_batch_size is None or size <= max_batch_size:
            row = Row(size)
            rows.append(row)
            if size > data.train_examples:
                row.stop = f"more than the {data.train_examples} training examples"
                break
            run_config = _with_batch(config, size, steps)
            if not cuda:
                row.memory = estimate_memory(objective, run_config, data, device)
                if max_memory is not None and row.memory > max_memory:
                    row.stop = f"over the {_size(max_memory)} memory cap"
                    break
            try:
                if cuda:
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(device)
                warm = _run(objective, _with_batch(config, size, 3), data, device, folder)
            except torch.OutOfMemoryError:
                row.stop = "out of memory"
                if cuda:
                    torch.cuda.empty_cache()
                break
            if cuda:
                row.memory = torch.cuda.max_memory_allocated(device)
                if max_memory is not None and row.memory > max_memory:
                    row.stop = f"over the {_size(max_memory)} memory cap"
                    break
            # Time at least MIN_TIMED_SECONDS per run: a few milliseconds of small steps would
            # measure the machine's noise, not the batch size.
            timed[size] = max(steps, math.ceil(MIN_TIMED_SECONDS * warm / size))
            size *= 2

        def run(batch: int) -> float:
            return _run(objective, _with_batch(config, batch, timed[batch]), data, device, folder)

        try:
            samples = time_in_rounds(run, list(timed), min_rounds=min_rounds,
                                     max_rounds=max_rounds, tolerance=tolerance)
        except torch.OutOfMemoryError:  # a longer run than the warm-up's: rare, but say so
            raise HyperparameterError(
                "out of memory in a timed run although its warm-up fitted; lower "
                "--max-batch-size") from None
    for row in rows:
        row.samples = samples.get(row.batch_size, [])
        if row.samples:
            row.examples_per_s = statistics.median(row.samples)
    judge(rows)
    return rows


def time_in_rounds(run: Callable[[int], float], sizes: list[int], *,
                   min_rounds: int = MIN_ROUNDS, max_rounds: int = MAX_ROUNDS,
                   tolerance: float = TOLERANCE) -> dict[int, list[float]]:
    """examples/s of every size, one run per size per round, in alternating order (a load
    that changes over the scan then hits small and large sizes alike), until every size's and
    every doubling's spread is within ``tolerance``, or ``max_rounds``."""
    samples: dict[int, list[float]] = {size: [] for size in sizes}
    for r in range(max_rounds):
        for size in sizes if r % 2 == 0 else sizes[::-1]:
            samples[size].append(run(size))
        if r + 1 >= min_rounds and _stable(samples, sizes, tolerance):
            break
    return samples


def _stable(samples: dict[int, list[float]], sizes: list[int], tolerance: float) -> bool:
    spreads = [_relative_spread(samples[s]) for s in sizes]
    spreads += [_relative_spread(_ratios(samples[a], samples[b]))
                for a, b in zip(sizes, sizes[1:], strict=False)]
    return all(x <= tolerance for x in spreads)


def judge(rows: list[Row]) -> None:
    """Each doubling's speedup (the median per-round ratio) and its noise flags."""
    for previous, row in zip(rows, rows[1:], strict=False):
        if not (previous.examples_per_s and row.examples_per_s):
            continue
        row.ratios = _ratios(previous.samples, row.samples)
        row.speedup = (statistics.median(row.ratios) if row.ratios
                       else row.examples_per_s / previous.examples_per_s)
        row.flags = []
        if row.speedup > MAX_SPEEDUP:
            row.flags.append(f"noise: {row.speedup:.2f}x is more than a doubling can give")
        a, b = previous.spread, row.spread
        if a is not None and b is not None and b[0] <= a[1] and a[0] <= b[1]:
            row.flags.append(f"noise: its spread overlaps {previous.batch_size}'s")


def recommendation(rows: list[Row], min_speedup: float) -> Recommendation:
    """What the measurements support: the largest size up to which every doubling scaled (its
    median speedup at or above ``min_speedup``) and the first that did not (the bottleneck).
    The decision rests on the medians, the estimates that settle as rounds are added; the
    spreads say how sure it is: when the first doubling below ``min_speedup`` has a spread that
    reaches it, its size is "within the noise" too, and a scaling doubling whose spread dips
    below it is named in the reason."""
    measured = [r for r in rows if r.examples_per_s]
    if not measured:
        return Recommendation(None, None, None, "no batch size could be measured")
    clear = measured[0]
    below: Row | None = None
    for row in measured[1:]:
        if (row.speedup or 0.0) < min_speedup:
            below = row
            break
        clear = row
    if below is None:
        why = "the largest that fits, and every doubling up to it scaled"
    else:
        low, high = below.speedup_range or (0.0, 0.0)
        # Two decimals, or three where two would round up to the threshold itself.
        shown = (f"{below.speedup:.2f}" if round(below.speedup or 0.0, 2) < min_speedup
                 else f"{below.speedup:.3f}")
        why = (f"doubling it to {below.batch_size} gave only {shown}x the "
               f"examples/s (spread {low:.2f}-{high:.2f}x, < {min_speedup:g}x): a bottleneck "
               "other than the batch")
    straddle = [r for r in measured if r.batch_size <= clear.batch_size and r.speedup_range
                and r.speedup_range[0] < min_speedup]
    if straddle:
        why += "; " + ", ".join(
            f"the doubling to {r.batch_size} scaled {r.speedup:.2f}x, its spread "
            f"{r.speedup_range[0]:.2f}-{r.speedup_range[1]:.2f}x" for r in straddle
            if r.speedup_range) + f" straddles {min_speedup:g}x"
    also = (below.batch_size if below is not None and below.speedup_range
            and below.speedup_range[1] >= min_speedup else None)
    return Recommendation(clear.batch_size, also, below.batch_size if below else None, why)


def recommend(rows: list[Row], min_speedup: float) -> tuple[int | None, int | None]:
    """(the largest batch size that still scales, the first size where doubling did not)."""
    r = recommendation(rows, min_speedup)
    return r.size, r.bottleneck


def _ratios(low: list[float], high: list[float]) -> list[float]:
    """Per-round speedups: run i of the larger size over run i of the smaller."""
    return [b / a for a, b in zip(low, high, strict=False) if a > 0]


def _quartiles(values: list[float]) -> tuple[float, float] | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def _relative_spread(values: list[float]) -> float:
    quartiles = _quartiles(values)
    if quartiles is None or len(values) < 2:
        return math.inf
    middle = statistics.median(values)
    return (quartiles[1] - quartiles[0]) / middle if middle else math.inf


def _run(objective: TrainObjective, config: Mapping[str, Any], data: Data, device: str,
         folder: str) -> float:
    """Train with hpo.train's loop as a throwaway trial; its recorded examples/s."""
    study = optuna.create_study(direction=_direction(objective.settings))
    trial = study.ask()
    # Nothing worth keeping on disk: no best checkpoints, one "last" write at the end.
    settings = dataclasses.replace(objective.settings, keep_best=0, checkpoint_every=None)
    fit(objective.model, data, config, Context(trial, seed=0, device=device,
                                               checkpoint_root=folder), settings)
    value = trial.user_attrs.get("examples_per_s")
    if not value:
        raise HyperparameterError("the trial recorded no throughput; did training diverge?")
    return float(value)


def estimate_memory(objective: TrainObjective, config: Mapping[str, Any], data: Data,
                    device: str) -> int:
    """Bytes one training step holds: parameters, gradients, optimizer state, the
    activations autograd saves for backward, and the batch."""
    run_plan = plan(config)
    torch.manual_seed(0)
    net = models.build(objective.model, config, data).to(device)
    optimizer = run_plan.optimizer.build(net.parameters())
    x, y = data.x_train[: run_plan.batch_size], data.y_train[: run_plan.batch_size]
    known = {p.data_ptr() for p in net.parameters()} | {x.data_ptr(), y.data_ptr()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.data_ptr() not in known:
            saved[t.data_ptr()] = max(saved.get(t.data_ptr(), 0), _bytes(t))
        return t

    loss_fn = _LOSSES.get(objective.settings.loss, objective.settings.loss)  # type: ignore[arg-type]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn(net(x), y)
    loss.backward()
    optimizer.step()
    params = sum(_bytes(p) for p in net.parameters())
    grads = sum(_bytes(p.grad) for p in net.parameters() if p.grad is not None)
    state = sum(_bytes(v) for s in optimizer.state.values() for v in s.values()
                if isinstance(v, torch.Tensor))
    return params + grads + state + sum(saved.values()) + _bytes(x) + _bytes(y)


# --- output -------------------------------------------------------------------------------


def table(rows: list[Row], *, cuda: bool, advice: Recommendation, min_speedup: float) -> str:
    """The scan as a table. A measured row's note gives its spread (the interquartile range of
    its runs, as a share of the median, and how many runs), then the doubling's speedup spread
    and whatever the recommendation or the noise rule says about it."""
    header = ["batch size", "examples/s", "vs half", "memory (peak)" if cuda else "memory (est.)",
              "note"]
    body = []
    for r in rows:
        parts = [r.stop] if r.stop else []
        if r.samples and r.examples_per_s:
            low, high = r.spread or (r.examples_per_s, r.examples_per_s)
            parts.append(f"+-{50 * (high - low) / r.examples_per_s:.0f}% over {len(r.samples)} "
                         "runs")
        speedups = r.speedup_range if r.ratios else None
        if speedups is not None:
            parts.append(f"doubling {speedups[0]:.2f}-{speedups[1]:.2f}x")
        if r.batch_size == advice.bottleneck:
            parts.append(f"bottleneck: below {min_speedup:g}x")
        elif speedups is not None and speedups[0] < min_speedup <= speedups[1]:
            parts.append(f"unclear: straddles {min_speedup:g}x")
        parts += r.flags
        body.append([str(r.batch_size),
                     f"{r.examples_per_s:,.0f}" if r.examples_per_s else "-",
                     f"{r.speedup:.2f}x" if r.speedup else "-",
                     _size(r.memory) if r.memory is not None else "-", "; ".join(parts)])
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    lines = []
    for row in [header, ["-" * w for w in widths], *body]:
        cells = [c.rjust(w) if i < 4 else c
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def write_svg(rows: list[Row], path: Path, *, recommended: int | None, title: str,
              also: int | None = None) -> None:
    """Throughput against batch size (log2 axis), with perfect doubling dashed for reference."""
    points = [(r.batch_size, r.examples_per_s) for r in rows if r.examples_per_s]
    if not points:
        return
    w, h, pad = 640, 400, 60
    b0, t0 = points[0]
    ideal = [(b, t0 * b / b0) for b, _ in points]
    top = max(t for _, t in points) * 1.15
    lo, hi = math.log2(points[0][0]), max(math.log2(points[-1][0]), math.log2(points[0][0]) + 1)

    def xy(b: float, t: float) -> tuple[float, float]:
        x = pad + (math.log2(b) - lo) / (hi - lo) * (w - 2 * pad)
        return round(x, 1), round(h - pad - min(t, top) / top * (h - 2 * pad), 1)

    def line(pts: Sequence[tuple[float, float]], style: str) -> str:
        return (f'<polyline fill="none" {style} points="'
                + " ".join(f"{x},{y}" for x, y in (xy(*p) for p in pts)) + '"/>')

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
             f'font-family="sans-serif" font-size="12">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<text x="{w / 2}" y="24" text-anchor="middle" font-size="14">'
             f'{_escape(title)}</text>',
             f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="black"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="black"/>',
             f'<text x="{w / 2}" y="{h - 15}" text-anchor="middle">batch size</text>',
             f'<text x="15" y="{h / 2}" transform="rotate(-90 15 {h / 2})" '
             f'text-anchor="middle">examples/s</text>',
             line(ideal, 'stroke="gray" stroke-dasharray="6 4"'),
             line(points, 'stroke="steelblue" stroke-width="2"')]
    spreads = {r.batch_size: r.spread for r in rows if r.examples_per_s and r.spread}
    for b, t in points:
        x, y = xy(b, t)
        if b in spreads:  # the interquartile range of its runs
            low, high = spreads[b]
            parts.append(f'<line x1="{x}" y1="{xy(b, low)[1]}" x2="{x}" y2="{xy(b, high)[1]}" '
                         'stroke="gray" stroke-width="2"/>')
        chosen = b == recommended or b == also
        color = "darkorange" if chosen else "steelblue"
        radius = 6 if chosen else 4
        parts.append(f'<circle cx="{x}" cy="{y}" r="{radius}" fill="{color}"/>')
        parts.append(f'<text x="{x}" y="{h - pad + 16}" text-anchor="middle">{b}</text>')
        parts.append(f'<text x="{x}" y="{y - 10}" text-anchor="middle">{t:,.0f}</text>')
    parts.append(f'<text x="{w - pad}" y="{pad - 8}" text-anchor="end" fill="gray">dashed: '
                 f'throughput doubling with the batch size; orange: recommended; bars: '
                 f'spread of the runs</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")


# --- the command --------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """``hpo batch-scan``; bad input raises HyperparameterError (the CLI exits 2)."""
    from hpo.study_file import load_study_file

    study = load_study_file(args.study_file)
    if not isinstance(study.objective, TrainObjective):
        raise HyperparameterError(
            f"{args.study_file}: batch-scan needs the study's model and data, but its objective "
            f"is {getattr(study.objective, '__name__', study.objective)!r}; define it as "
            "objective=hpo.train.objective(model, data)"
        )
    overrides = dict(_parse_set(item) for item in args.set or [])
    config = scan_config(study, overrides)
    plan(config)  # a bad hyperparameter fails here, in one line, before anything runs
    device = args.device or env.raw("HPO_DEVICE") or (
        "cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise HyperparameterError(
            f"--device: cannot read {device!r}; give cpu, cuda or cuda:N") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise HyperparameterError(
            f"--device {device}: no CUDA device is visible here; use --device cpu")
    if not args.min_speedup > 1:
        raise HyperparameterError(
            f"--min-speedup must be above 1 (a doubling that scales perfectly gives 2), "
            f"got {args.min_speedup:g}")
    cap = parse_memory(args.max_memory) if args.max_memory else None
    if args.threads:
        torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cuda = torch.device(device).type == "cuda"
    print(f"hpo batch-scan: study {study.name!r}, {_describe(config)}, on {device}; "
          f"timing at least {args.steps} steps and {MIN_TIMED_SECONDS:g} s per run, every size "
          f"once a round, {MIN_ROUNDS} to {MAX_ROUNDS} rounds until each spread is within "
          f"{TOLERANCE:.0%}", file=sys.stderr)
    rows = scan(study.objective, config, device=device, start=args.start,
                max_batch_size=args.max_batch_size, max_memory=cap, steps=args.steps)
    advice = recommendation(rows, args.min_speedup)
    recommended = advice.size
    print(table(rows, cuda=cuda, advice=advice, min_speedup=args.min_speedup))
    print()
    if recommended is None:
        print("no batch size could be measured; lower --start or raise --max-memory")
        return 1
    size: int | str = recommended
    if advice.also:
        up_to = "" if advice.also == 2 * recommended else "up to "
        size = f"{recommended}, or {up_to}{advice.also} within the noise"
    print(f"recommendation: batch_size={size}, {advice.reason}")
    print(f"(study uses batch_size={config.get('batch_size')!r}; the playbook: changing the "
          "batch size requires re-tuning most hyperparameters)")
    if args.plot:
        write_svg(rows, args.plot, recommended=recommended, also=advice.also,
                  title=f"{study.name}: training throughput by batch size on {device}")
        print(f"plot: {args.plot}")
    return 0


def _with_batch(config: Mapping[str, Any], size: int, steps: int) -> dict[str, Any]:
    out = {**config, "batch_size": size, "max_train_steps": steps, "eval_every": steps}
    if "warmup_steps" in out:
        out["warmup_steps"] = 0  # no schedule shape matters for speed; a long warmup would not fit
    return out


def _parse_set(item: str) -> tuple[str, Any]:
    name, sep, text = item.partition("=")
    if not sep or not name.isidentifier():
        raise HyperparameterError(
            f"--set: expected NAME=VALUE such as optimizer=adam, got {item!r}")
    try:
        return name, json.loads(text)
    except json.JSONDecodeError:
        return name, text  # a bare word is a string: --set optimizer=adam


def _direction(settings: TrainSettings) -> Literal["minimize", "maximize"]:
    metric = settings.metric
    direction = METRICS.get(metric, "minimize") if isinstance(metric, str) else "minimize"
    return "maximize" if direction == "maximize" else "minimize"


def _describe(config: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in config.items() if k not in ("batch_size",))


def _bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30
