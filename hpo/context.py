"""What an objective receives: ``objective(config, ctx) -> float``.

``config`` holds every hyperparameter's value for the trial, fixed ones included, and is
read-only. ``ctx`` is the trial's handle on the outside world: its number, its seed, the
device to train on, and ``report(step, value)`` for intermediate results (which is also how
a pruner stops an unpromising trial).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo import attrs, env
from hpo.errors import InfrastructureError

if TYPE_CHECKING:
    import optuna


class CheckpointIOError(InfrastructureError):
    """A checkpoint that could not be written: the machine's failure, not the trial's."""

    def __init__(self, path: Path, error: OSError):
        self.path = path
        self.strerror = error.strerror or str(error)
        super().__init__(f"cannot write checkpoint {str(path)!r}: {self.strerror}; free space "
                         "or fix the checkpoint folder (--checkpoint-dir, $HPO_CHECKPOINT_DIR), "
                         "then start the worker again: its trial went back to the queue")


class Config(Mapping[str, Any]):
    """A trial's hyperparameter values; reading an unknown name is an error, never a default.

    The objective's first argument: a read-only mapping from every hyperparameter's name
    (fixed ones included) to its value in this trial. ``config["learning_rate"]``,
    ``len(config)``, ``dict(config)`` and iteration work as on any mapping.

    (init2winit's lesson: a typo in a hyperparameter name must fail loudly, not silently
    train with something else.)

    Raises:
        KeyError: On ``config[name]`` for a name that is not in the space (the message lists
            the known names), or for a conditional hyperparameter that does not exist in this
            trial (the message says when it exists, e.g. "only when
            optimizer='sgd_momentum'").
    """

    def __init__(self, values: Mapping[str, Any], inactive: Mapping[str, str] | None = None):
        self._values = dict(values)
        # name -> why it is absent, e.g. "only when optimizer='sgd_momentum'"
        self._inactive = dict(inactive or {})

    def __getitem__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            if name in self._inactive:
                raise KeyError(
                    f"hyperparameter {name!r} is not set in this trial: it exists "
                    f"{self._inactive[name]}; check config.get({name!r}) or the condition"
                ) from None
            raise KeyError(
                f"unknown hyperparameter {name!r}; known: {', '.join(sorted(self._values))}"
            ) from None

    def get(self, name: str, default: Any = None) -> Any:
        """The value of ``name``, or ``default`` for a conditional one absent in this trial.

        Args:
            name: A hyperparameter's name.
            default: What to return when ``name`` is conditional (``nuisance(...,
                when=...)``) and does not exist in this trial.

        Returns:
            The value, or ``default``.

        Raises:
            KeyError: If ``name`` is not in the space at all: an unknown name is a typo even
                with a default.
        """
        if name in self._values:
            return self._values[name]
        if name in self._inactive:
            return default
        return self[name]  # raises: an unknown name is a typo even with a default

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Config({self._values!r})"


CHECKPOINT_ENV = "HPO_CHECKPOINT_DIR"  # hpo.env documents it
DEFAULT_CHECKPOINT_DIR = "hpo-checkpoints"


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read back by [`Context.load_checkpoint`][hpo.Context.load_checkpoint]:
    ``saved = ctx.load_checkpoint()``, then ``saved.step`` and ``saved.state``.

    Attributes:
        step: The training step passed to ``save_checkpoint``.
        state: What was saved: anything ``torch.save`` takes (a dict of state dicts, say).
    """

    step: int
    state: Any


class Context:
    """The trial's handle for the objective: number, seed, device, ``report``, checkpoints.

    The objective's second argument, ``objective(config, ctx) -> float``. A worker builds it
    for every trial; an objective never constructs one.

    Example:
        ```python
        def train(config, ctx):
            torch.manual_seed(ctx.seed)
            model = make_model(config).to(ctx.device)
            start = 0
            if (saved := ctx.load_checkpoint()) is not None:  # a retried trial resumes
                model.load_state_dict(saved.state)
                start = saved.step
            for step in range(start, config["max_train_steps"]):
                ...
                if step % 100 == 0:
                    ctx.report(step, val_error)           # may stop the trial (pruned)
                    ctx.save_checkpoint(step, model.state_dict())
            ctx.set_attr("final_train_loss", loss)
            return val_error
        ```

    Attributes:
        seed: The trial's seed, an ``int``: seed every random number generator the objective
            uses from it. The k-th trial of every scientific value gets the same seed (a
            paired design), a retried trial keeps its seed, and a seed re-run
            (``hpo seeds``) gets a new one.

    Args:
        trial: The Optuna trial being run.
        seed: The trial's seed.
        device: The device to train on; None: see [`device`][hpo.Context.device].
        checkpoint_root: The shared checkpoint folder; None: ``$HPO_CHECKPOINT_DIR``, else
            ``./hpo-checkpoints``.
        study_name: The study's name, for the checkpoint folder; empty: the trial's study's.
        devices: Every device of the trial; None: see [`devices`][hpo.Context.devices].
        rank: This process's rank among the trial's processes (0 in a one-process trial).
        world_size: How many processes run the trial together (1: this one alone).
        metric: The study's metric name; None: read from the stored study.
    """

    def __init__(
        self,
        trial: optuna.Trial,
        *,
        seed: int,
        device: str | None = None,
        checkpoint_root: str | Path | None = None,
        study_name: str = "",
        devices: list[str] | None = None,
        rank: int = 0,
        world_size: int = 1,
        metric: str | None = None,
    ):
        self._trial = trial
        self.seed = seed
        self._device = device
        self._devices = list(devices) if devices else None
        self._rank = rank
        self._world_size = world_size
        self._metric = metric
        self._checkpoint_root = (Path(checkpoint_root) if checkpoint_root
                                 else default_checkpoint_root())
        self._study_name = study_name or trial.study.study_name
        self._study_key: str | None = None

    @property
    def trial_number(self) -> int:
        """The trial's number in the study (0, 1, 2...), as optuna-dashboard shows it.

        A retried trial is a new trial with a new number: to key anything that must survive
        a retry, use the checkpoint methods, which are keyed by the trial's slot.
        """
        return self._trial.number

    @property
    def device(self) -> str:
        """The device to train on, a string for ``torch.device``: ``cuda:0`` or ``cpu``.

        ``$HPO_DEVICE`` if set, else ``cuda:0`` when a GPU is visible, else ``cpu``. A worker
        pinned to one GPU (``CUDA_VISIBLE_DEVICES``, as ``hpo workers`` pins them) always
        sees it as ``cuda:0``; ``hpo workers --gpus none`` sets ``cpu``. In a trial that
        spans several devices it is this process's own, ``devices[rank]``: rank 0 has the
        first.
        """
        if self._device is None:
            self._device = env.raw("HPO_DEVICE") or _default_device()
        return self._device

    @property
    def devices(self) -> list[str]:
        """Every device the trial may use, e.g. ``["cuda:0", "cuda:1"]``; one for most trials.

        ``hpo workers --gpus-per-trial K`` pins K GPUs to each worker and runs each trial in
        K processes, one per GPU (``--procs-per-trial 1``: one process that sees all K); on a
        CPU, ``--procs-per-trial K`` runs K processes, each with device ``cpu``. Frameworks take
        the list as is (see [`rank`][hpo.Context.rank] for which one is this process's).
        ``$HPO_DEVICES`` (comma-separated) if set, else ``[ctx.device]``.
        """
        if self._devices is None:
            listed = env.raw("HPO_DEVICES")
            self._devices = ([d.strip() for d in listed.split(",") if d.strip()] if listed
                             else [self.device])
        return list(self._devices)

    @property
    def rank(self) -> int:
        """This process's rank among the trial's processes: 0 to ``world_size - 1``.

        Every process runs the objective (as under ``torchrun``), with ``torch.distributed``
        already initialized (gloo on CPU, NCCL on CUDA). Only rank 0's calls reach the
        study: ``report``, ``set_attr``, ``record_curves`` and checkpoint writes are
        ignored on the other ranks, and the trial's value is rank 0's.
        """
        return self._rank

    @property
    def world_size(self) -> int:
        """How many processes run this trial together (1 unless ``--procs-per-trial`` or
        ``--gpus-per-trial`` say otherwise)."""
        return self._world_size

    @property
    def metric(self) -> str:
        """The study's metric name (``Study(metric=...)``), e.g. ``"val_error"``: what the
        integrations read from a framework's logged metrics."""
        if self._metric is None:
            self._metric = str(self._trial.study.user_attrs.get(attrs.STUDY_METRIC, ""))
        return self._metric

    def report(self, step: int, value: float) -> None:
        """Record an intermediate value at a training step; stops the trial if pruned.

        The value is stored with the trial (optuna-dashboard plots it) and shown to the
        study's ``pruner=``. A NaN is not recorded: whether the run diverged is decided by the
        value the objective returns, not by the pruner.

        Args:
            step: The training step, an integer >= 0.
            value: The metric at that step, in the study's direction.

        Raises:
            optuna.TrialPruned: When the study's pruner decides to stop the trial; the worker
                records it as PRUNED. Let it propagate out of the objective.
            ValueError: If ``step`` is not an integer >= 0.

        On a rank other than 0 it only checks its arguments: rank 0 decides, and when it
        stops as pruned the trial's other processes are stopped with it.
        """
        import optuna

        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ValueError(f"report(step, value): step must be an integer >= 0, got {step!r}")
        if self._rank != 0:
            return
        value = float(value)
        if math.isnan(value):
            return  # A NaN says the run diverged; the final value decides that, not the pruner.
        self._trial.report(value, step)
        if self._trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step} with value {value:g}")


    def set_attr(self, name: str, value: Any) -> None:
        """Record a JSON-ready value on the trial (a user attribute the dashboard shows).

        Use names of your own: hpo records its own attributes (``slot``, ``seed``, ``host``,
        ``gpu``, versions, errors...) on the same trial, and ``hpo export`` writes each
        attribute as an ``attr.<name>`` column.

        Args:
            name: The attribute's name.
            value: Anything JSON can encode: a number, string, bool, None, or lists and dicts
                of them.

        Raises:
            HpoError: ``name`` is one of the keys hpo itself relies on (``hpo.attrs.RESERVED``:
                slot, seed, host, error...); writing one would silently break retries or the
                design.
        """
        from hpo import attrs
        from hpo.errors import InputError

        if name in attrs.RESERVED:
            raise InputError(
                f"ctx.set_attr({name!r}, ...): {name!r} is one of hpo's own trial attributes "
                f"(reserved: {', '.join(sorted(attrs.RESERVED))}); use another name, "
                f"e.g. 'my_{name}'")
        if self._rank == 0:
            self._trial.set_user_attr(name, value)

    @property
    def direction(self) -> str:
        """The study's direction, 'minimize' or 'maximize': which way "best" points."""
        return self._trial.study.direction.name.lower()

    def record_curves(self, curves: Mapping[str, Any]) -> None:
        """Store training curves with the trial, where ``hpo report`` diagnoses them.

        Args:
            curves: Equal-length series sampled at the same evaluation steps: ``step`` plus
                any of ``train_loss``, ``val_loss``, ``val_metric``, ``grad_norm`` (and
                others). They are rounded and thinned to at most 200 points, and stored as
                the trial's ``curves`` attribute.

        Raises:
            ValueError: If a series does not have as many points as ``step``.
        """
        from hpo import curves as stored

        if self._rank == 0:
            stored.record(self._trial, curves)

    # --- checkpoints ------------------------------------------------------------------------

    @property
    def checkpoint_dir(self) -> Path:
        """This trial's checkpoint folder (a ``Path``), shared by every attempt at the trial.

        Keyed by the stored study and the slot, not by trial number: a retried trial is a
        new trial (new number) of the same slot with the same parameters, and must find what
        its first attempt wrote. The study part is the study's name (cut to a bounded
        length, made safe for a file name) and the id hpo created with the stored study: a
        study started over under the same name (a new journal file, a new database) or a
        study whose name differs only in characters a file name cannot hold (``col/x`` and
        ``col_x``) never sees another's checkpoints. Point every worker at one shared folder
        (``--checkpoint-dir`` or ``$HPO_CHECKPOINT_DIR``) so a retry on another machine
        finds it too.
        """
        slot = self._trial.user_attrs.get(attrs.SLOT, f"trial-{self._trial.number}")
        folder = f"slot-{slot}"
        if attrs.SEED_RERUN_OF in self._trial.user_attrs:
            # A seed re-run (hpo seeds) keeps its original's slot but is a run of its own: it
            # must neither resume the original's (or a sibling re-run's) checkpoints nor
            # delete them. Keyed by its seed, so a retry of the re-run still finds its own.
            folder += f"-seed-{self._trial.user_attrs.get(attrs.SEED)}"
        return self._checkpoint_root / self._study_folder() / folder

    def _study_folder(self) -> str:
        if self._study_key is None:
            uid = None
            study = getattr(self._trial, "study", None)
            if study is not None:
                uid = study.user_attrs.get(attrs.STUDY_UID)
            # Without an id (a Context made outside a worker), the full name's digest keeps
            # names apart that the cut or the file-name mapping would merge.
            key = uid or hashlib.sha256(self._study_name.encode()).hexdigest()
            self._study_key = f"{_safe(self._study_name)[:48]}-{key[:16]}"
        return self._study_key

    def save_checkpoint(self, step: int, state: Any, *, name: str = "last") -> Path:
        """Write ``state`` (anything ``torch.save`` takes) reached at ``step``, atomically.

        The file is written beside its final name and renamed into place, so a worker killed
        mid-write leaves the previous checkpoint intact, never a half-written one. A retried
        trial (after its worker died or was stopped) finds it with
        [`load_checkpoint`][hpo.Context.load_checkpoint], also on another machine when the
        checkpoint folder is shared.

        Args:
            step: The training step the state was reached at.
            state: What to save, e.g. ``{"model": model.state_dict(), "optimizer":
                optimizer.state_dict()}``.
            name: The checkpoint's name (``last`` by default); a trial may keep several,
                e.g. ``best``. Characters other than letters, digits, ``-``, ``_`` and ``.``
                become ``_`` in the file name.

        Returns:
            The path of the checkpoint file, ``<checkpoint_dir>/<name>.pt``.

        Only rank 0 writes: on the trial's other processes this returns the path and writes
        nothing (data-parallel ranks hold the same state).

        Raises:
            CheckpointIOError: The folder or file cannot be written (disk full, no
                permission, a lost network mount). The worker hands the trial back to the
                queue and stops: the failure is the machine's, not the trial's.
        """
        import torch

        folder = self.checkpoint_dir
        if self._rank != 0:
            return folder / f"{_safe(name)}.pt"
        final = folder / f"{_safe(name)}.pt"
        partial = folder / f".{final.name}.{os.getpid()}.partial"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # Through a file of our own: given a path, torch writes with its own C++ writer
            # and a full disk surfaces as a RuntimeError ("unexpected pos"); given a file,
            # every write is Python's, and fails as the OSError it is.
            with open(partial, "wb") as handle:
                torch.save({"step": int(step), "state": state}, handle)
            os.replace(partial, final)
        except (OSError, RuntimeError) as e:
            # torch's zip writer turns a failed write (a full disk) into a RuntimeError
            # ("unexpected pos ..."), even through a file of ours: ask the folder itself,
            # before the partial file's space is given back.
            cause = e if isinstance(e, OSError) else _write_problem(folder)
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            if cause is None:
                raise
            raise CheckpointIOError(final, cause) from e
        return final

    def load_checkpoint(self, *, name: str = "last", map_location: Any = None) -> Checkpoint | None:
        """The checkpoint saved under ``name`` by this or an earlier attempt, else None.

        The file is read with ``torch.load(..., weights_only=False)``, which runs pickled
        code: keep the checkpoint folder to machines you trust.

        Args:
            name: The name it was saved under (``last`` by default).
            map_location: Where to load tensors (``torch.load``'s ``map_location``);
                default: the trial's [`device`][hpo.Context.device].

        Returns:
            A [`Checkpoint`][hpo.Checkpoint] with ``.step`` (the step passed to
                [`save_checkpoint`][hpo.Context.save_checkpoint]) and ``.state`` (what was
                saved), or None when there is no checkpoint of that name: the first attempt,
                or one that saved nothing yet.
        """
        import torch

        path = self.checkpoint_dir / f"{_safe(name)}.pt"
        if not path.is_file():
            return None
        saved = torch.load(path, map_location=map_location or self.device, weights_only=False)
        return Checkpoint(step=saved["step"], state=saved["state"])

    def remove_checkpoint(self, *, name: str) -> None:
        """Delete the checkpoint saved under ``name``, if there is one.

        Checkpoints stay on disk after the trial ends unless the objective removes them
        (``hpo.train`` removes its ``last`` checkpoint when a trial ends and keeps the best).

        Args:
            name: The name it was saved under; there is no default, so a call never deletes
                ``last`` by accident.
        """
        if self._rank != 0:
            return  # rank 0 removes it: the folder is shared
        (self.checkpoint_dir / f"{_safe(name)}.pt").unlink(missing_ok=True)

    def checkpoint_names(self) -> list[str]:
        """The names of this trial's saved checkpoints (by any attempt), sorted.

        Returns:
            The names as given to [`save_checkpoint`][hpo.Context.save_checkpoint] (after
            the file-name cleanup), e.g. ``["best", "last"]``; empty when there are none.
        """
        folder = self.checkpoint_dir
        return sorted(p.stem for p in folder.glob("*.pt")) if folder.is_dir() else []


def _write_problem(folder: Path) -> OSError | None:
    """Why ``folder`` cannot take a write now (full, read-only...), or None if it can."""
    probe = folder / f".hpo-probe-{os.getpid()}"
    try:
        with open(probe, "wb") as handle:
            handle.write(b"\0" * 65536)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as e:
        return e
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
    return None


def default_checkpoint_root() -> Path:
    """The folder every trial's checkpoints go under: ``$HPO_CHECKPOINT_DIR`` (set from
    ``--checkpoint-dir``), else ``./hpo-checkpoints``."""
    return Path(env.raw(CHECKPOINT_ENV) or DEFAULT_CHECKPOINT_DIR)


def check_checkpoint_root() -> None:
    """Refuse, before any trial runs, a checkpoint folder that cannot be written (read-only,
    not a folder, no permission): otherwise every trial that checkpoints would fail.

    Writes (and removes) a probe file in the folder, or in its nearest existing parent when
    it does not exist yet, so nothing is left behind for studies that never checkpoint.
    """
    import tempfile

    from hpo.errors import InputError

    root = default_checkpoint_root().absolute()
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise NotADirectoryError(20, "not a folder")
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".hpo-probe-"):
            pass
    except OSError as e:
        raise InputError(
            f"checkpoint folder {str(root)!r} cannot be written ({e.strerror or e} at "
            f"{str(probe)!r}); give a writable folder with --checkpoint-dir or "
            f"${CHECKPOINT_ENV}") from None


def _safe(name: str) -> str:
    """A file name's part: letters, digits, '-', '_' and '.', never starting with '.' (so
    never '..'), at most 100 characters."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))
    return ("_" + safe[1:] if safe.startswith(".") else safe)[:100] or "_"


def _default_device() -> str:
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda:0" if torch.cuda.is_available() else "cpu"
