"""hpo: hyperparameter studies the Deep Learning Tuning Playbook's way, on Optuna.

The public API is exactly what ``__all__`` lists.
"""

from hpo.api import StudyResults, ValueResult, load, run
from hpo.context import Checkpoint, Config, Context
from hpo.errors import HpoError
from hpo.pruners import (
    HyperbandPruner,
    MedianPruner,
    PerValuePruner,
    SuccessiveHalvingPruner,
)
from hpo.seeding import seed_everything
from hpo.space import (
    SpaceError,
    SpaceWarning,
    choice,
    fixed,
    integer,
    log_uniform,
    nuisance,
    scientific,
    uniform,
)
from hpo.store import StudyMismatchError
from hpo.study import Study
from hpo.study_file import StudyFileError, load_study_file

__all__ = [
    "Checkpoint",
    "Config",
    "Context",
    "HpoError",
    "HyperbandPruner",
    "MedianPruner",
    "PerValuePruner",
    "SpaceError",
    "SpaceWarning",
    "Study",
    "StudyFileError",
    "StudyMismatchError",
    "StudyResults",
    "ValueResult",
    "SuccessiveHalvingPruner",
    "choice",
    "fixed",
    "integer",
    "load",
    "load_study_file",
    "log_uniform",
    "nuisance",
    "run",
    "scientific",
    "seed_everything",
    "uniform",
]
