"""The Study definition, and loading one from a study file.

A study states the experiment's design: the question (goal), the metric and its direction,
the roles of every hyperparameter, the budget and the phase. It is validated completely when
it is constructed, so a worker never opens storage for a study that cannot run.
"""

from __future__ import annotations

import ast
import runpy
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.space import Space, SpaceError

if TYPE_CHECKING:
    import optuna

    from hpo.context import Config, Context

PHASES = ("explore", "exploit")
DIRECTIONS = ("minimize", "maximize")
ROLE_CALLS = {"scientific", "nuisance", "fixed"}


class StudyFileError(SpaceError):
    """A study file that cannot be loaded; the message starts with the file's path."""


class Study:
    """One experiment: a question, a metric, a space of roles, a budget and a phase.

    A study file defines one ``Study`` at module level; ``hpo run``, ``hpo workers`` and the
    analysis commands load it from there. The whole definition is checked when it is
    constructed, before anything touches storage.

    Example:
        ```python
        study = Study(
            name="digits-optimizer-v1",
            goal="Does Adam beat SGD with momentum on this MLP at 1,500 steps?",
            metric="val_error", direction="minimize",
            space={
                "optimizer": scientific(choice("sgd_momentum", "adam")),
                "learning_rate": nuisance(log_uniform(1e-4, 1.0)),
                "momentum": nuisance(uniform(0.8, 0.99), when={"optimizer": "sgd_momentum"}),
                "batch_size": fixed(64),
            },
            objective=train, trials_per_value=12, phase="explore", seed=0,
        )
        ```

    Args:
        name: Identifies the study in storage, together with a fingerprint of its search
            space and its direction. A stored study of this name with another space or
            direction is refused when a worker opens it
            ([`StudyMismatchError`][hpo.StudyMismatchError]): bump the name
            (``digits-optimizer-v2``) for a new design.
        goal: The question the study answers, in words; stored on the study and shown by
            optuna-dashboard and ``hpo report``.
        metric: The name of the value the objective returns, e.g. ``"val_error"``.
        direction: ``"minimize"`` or ``"maximize"``.
        space: Every hyperparameter's name and role: a dict (or a sequence of
            ``(name, role)`` pairs) of [`scientific`][hpo.scientific],
            [`nuisance`][hpo.nuisance] and [`fixed`][hpo.fixed]. Names must be Python
            identifiers.
        objective: ``objective(config, ctx) -> float``, called once per trial with the
            trial's [`Config`][hpo.Config] and [`Context`][hpo.Context]. It returns the
            metric; NaN or infinity marks the trial as diverged (failed, counted as
            infeasible).
        trials_per_value: The budget: each scientific value (each combination of values)
            gets this many trials, so the study's total is ``trials_per_value`` times the
            number of scientific values, unless ``--trials N`` sets the total.
        phase: ``"explore"``: nuisance hyperparameters from a paired quasi-random design
            (scrambled Halton), non-adaptive and reproducible, for insight. ``"exploit"``:
            Bayesian optimization (TPE) inside each scientific value once it has 10 finished
            trials (quasi-random points until then), for the best model after exploration.
        seed: Seeds the quasi-random sequence and the trials' seeds; the k-th trial of every
            scientific value gets the same nuisance point and the same ``ctx.seed``. Another
            seed gives another design, to measure study-to-study variance.
        pruner: An Optuna pruner (e.g. ``optuna.pruners.MedianPruner()``) that
            [`Context.report`][hpo.Context.report] consults; None: no pruning.

    Raises:
        SpaceError: If any argument breaks a rule (an empty name or goal, an unknown
            direction or phase, a non-positive budget, an objective that is not callable,
            any mistake in the space); the message is one line that names the field and the
            value and says what is allowed.

    Attributes:
        name: As given.
        goal: As given.
        metric: As given.
        direction: As given.
        space: The validated space.
        objective: As given.
        trials_per_value: As given.
        phase: As given.
        seed: As given.
        pruner: As given.
    """

    def __init__(
        self,
        *,
        name: str,
        goal: str,
        metric: str,
        direction: str = "minimize",
        space: Mapping[str, Any] | Iterable[tuple[str, Any]],
        objective: Callable[[Config, Context], float],
        trials_per_value: int = 16,
        phase: str = "explore",
        seed: int = 0,
        pruner: optuna.pruners.BasePruner | None = None,
    ):
        _require(isinstance(name, str) and name.strip() != "", "name", name,
                 "a non-empty string such as 'digits-optimizer-v1'")
        _require(isinstance(goal, str) and goal.strip() != "", "goal", goal,
                 "the question the study answers, in words")
        _require(isinstance(metric, str) and metric.strip() != "", "metric", metric,
                 "the name of the value the objective returns, e.g. 'val_error'")
        _require(direction in DIRECTIONS, "direction", direction, " or ".join(DIRECTIONS))
        _require(phase in PHASES, "phase", phase,
                 "'explore' (quasi-random, for insight) or 'exploit' (Bayesian, for the best model)")
        _require(isinstance(trials_per_value, int) and not isinstance(trials_per_value, bool)
                 and trials_per_value >= 1, "trials_per_value", trials_per_value,
                 "a positive integer")
        _require(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0, "seed", seed,
                 "a non-negative integer")
        _require(callable(objective), "objective", objective,
                 "a function objective(config, ctx) -> float")
        if pruner is not None:
            import optuna

            _require(isinstance(pruner, optuna.pruners.BasePruner), "pruner", pruner,
                     "an Optuna pruner such as optuna.pruners.MedianPruner() or None")
        self.name = name
        self.goal = goal
        self.metric = metric
        self.direction = direction
        self.space = space if isinstance(space, Space) else Space(space)
        self.objective = objective
        self.trials_per_value = trials_per_value
        self.phase = phase
        self.seed = seed
        self.pruner = pruner

    @property
    def budget(self) -> int:
        """The study's own total budget: trials per scientific value times the values."""
        return self.trials_per_value * len(self.space.scientific_values())

    def user_attrs(self) -> dict[str, Any]:
        """What optuna-dashboard shows on the study page: the design, recorded with results."""
        return {
            "goal": self.goal,
            "metric": self.metric,
            "phase": self.phase,
            "seed": self.seed,
            "trials_per_value": self.trials_per_value,
            "roles": {n: hp.role for n, hp in self.space.hyperparameters.items()},
            "fixed": self.space.fixed,
            "space": self.space.describe(),
            "space_fingerprint": self.space.fingerprint(),
        }

    def __repr__(self) -> str:
        return f"Study(name={self.name!r}, phase={self.phase!r}, budget={self.budget})"


def _require(ok: bool, field: str, value: Any, allowed: str) -> None:
    if not ok:
        raise SpaceError(f"Study {field}: got {value!r}; expected {allowed}")


def load_study_file(path: str | Path) -> Study:
    """Run a study file and return the one Study it defines.

    Every way this can go wrong raises :class:`StudyFileError` with one line that starts with
    the path, so the command line can print it as is.
    """
    path = Path(path)
    if not path.is_file():
        raise StudyFileError(f"{path}: no such study file; give the path to a .py file that defines a Study")
    try:
        # Bytes, as Python itself reads a module: a coding cookie is honoured, and a file that
        # is not text becomes a SyntaxError below instead of a UnicodeDecodeError traceback.
        source = path.read_bytes()
    except OSError as e:
        reason = _one_line(e.strerror or e)
        raise StudyFileError(f"{path}: cannot read study file: {reason}") from None
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as e:
        line = f":{e.lineno}" if e.lineno else ""
        raise StudyFileError(f"{path}{line}: syntax error: {_one_line(e.msg)}") from None
    _check_duplicate_names(path, tree)
    try:
        # A name other than __main__, so a study file may also run itself as a script.
        namespace = runpy.run_path(str(path), run_name="__hpo_study__")
    except SpaceError as e:
        raise StudyFileError(f"{path}: {_one_line(e)}") from None
    except (Exception, SystemExit) as e:  # noqa: BLE001 - user code's errors are reported
        line = _user_line(e, path)
        raise StudyFileError(f"{path}{line}: {type(e).__name__}: {_one_line(e)}") from None
    # By identity: `alias = study` names one study twice.
    studies = list({id(v): v for v in namespace.values() if isinstance(v, Study)}.values())
    if not studies:
        raise StudyFileError(
            f"{path}: defines no Study; assign one at module level, e.g. study = Study(...)"
        )
    if len(studies) > 1:
        names = ", ".join(s.name for s in studies)
        raise StudyFileError(f"{path}: defines {len(studies)} studies ({names}); keep one per file")
    return studies[0]


def _check_duplicate_names(path: Path, tree: ast.AST) -> None:
    """Refuse a space dict that names a hyperparameter twice.

    Python keeps the last of two equal keys in a dict literal without a word, so a copied
    line whose name was not changed would silently drop a hyperparameter. The file's syntax
    tree still has both keys.
    """
    for node in ast.walk(tree):
        if not isinstance(node, ast.Dict):
            continue
        is_space = any(isinstance(v, ast.Call) and _called_name(v.func) in ROLE_CALLS
                       for v in node.values)
        if not is_space:
            continue
        seen: set[str] = set()
        for key in node.keys:
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                if key.value in seen:
                    raise StudyFileError(
                        f"{path}:{key.lineno}: {key.value}: defined twice in the space; "
                        "each name must be unique, rename or remove one"
                    )
                seen.add(key.value)


def _called_name(func: ast.expr) -> str | None:
    """'nuisance' for nuisance(...) and for hpo.nuisance(...)."""
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


def _one_line(message: object) -> str:
    """A message on one line: an exception's text may span several, the CLI prints one."""
    return "; ".join(line.strip() for line in str(message).splitlines() if line.strip())


def _user_line(error: BaseException, path: Path) -> str:
    """':LINE' of the deepest frame inside the study file, or '' if there is none."""
    tb = error.__traceback__
    line = ""
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve() == path.resolve():
            line = f":{tb.tb_lineno}"
        tb = tb.tb_next
    return line


class StudyMismatchError(SpaceError):
    """A stored study under this name was created from a different design."""


def open_in_storage(definition: Study, url: str, *, budget: int | None = None) -> optuna.Study:
    """Create or load the Optuna study for a definition, and lay out its budget.

    A stored study of the same name must have the same search space (fingerprint) and
    direction: results gathered under one design are never silently mixed with another's.
    Everything happens under one cross-process lock, so workers may all start at once.
    """
    import optuna

    from hpo import budget as budgets
    from hpo.sampling import PlaybookSampler
    from hpo.storage import exclusive, open_storage, redact

    storage = open_storage(url)
    sampler = PlaybookSampler(definition.space, phase=definition.phase, seed=definition.seed)
    pruner = definition.pruner or optuna.pruners.NopPruner()

    def load() -> optuna.Study | None:
        try:
            return optuna.load_study(
                study_name=definition.name, storage=storage, sampler=sampler, pruner=pruner
            )
        except KeyError:
            return None

    study = load()
    if study is not None:
        # Read the whole study before taking the lock: inside it, Optuna's cache then reads
        # only what changed, and workers joining a study of 10,000 trials do not queue up
        # behind each other's full read.
        study.get_trials(deepcopy=False)
    with exclusive(url, definition.name):
        study = study or load()
        if study is None:
            study = optuna.create_study(
                study_name=definition.name, storage=storage, sampler=sampler, pruner=pruner,
                direction=definition.direction,
            )
            for key, value in definition.user_attrs().items():
                study.set_user_attr(key, value)
        else:
            _check_same_design(definition, study, redact(url))
        budgets.lay_out(study, definition.budget if budget is None else budget)
    return study


def _check_same_design(definition: Study, study: optuna.Study, where: str) -> None:
    stored = study.user_attrs.get("space_fingerprint")
    new = definition.space.fingerprint()
    stored_direction = study.direction.name.lower()
    if stored == new and stored_direction == definition.direction:
        return
    what = (f"search space (fingerprint {stored} in storage, {new} now)" if stored != new
            else f"direction ({stored_direction} in storage, {definition.direction} now)")
    raise StudyMismatchError(
        f"study {definition.name!r} in {where} was created with a different {what}; "
        f"results from two designs must not mix: bump the study's name or version, "
        f"e.g. name={_bumped(definition.name)!r}"
    )


def _bumped(name: str) -> str:
    import re

    match = re.fullmatch(r"(.*?)(\d+)", name)
    return f"{match.group(1)}{int(match.group(2)) + 1}" if match else f"{name}-v2"
