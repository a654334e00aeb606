"""Open a study that is already in storage, for reading: never create one.

``hpo report``, ``hpo seeds`` and ``hpo export`` look at results; a typo in a storage path or
a study name must be an error, not a new empty study or journal file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hpo.storage import StorageError, kind, open_storage, redact

if TYPE_CHECKING:
    import optuna

    from hpo.study import Study


def open_existing_storage(url: str):
    """The storage at ``url``; a journal file that does not exist is an error, not created."""
    if kind(url) == "journal" and not Path(url).is_file():
        raise StorageError(
            f"storage {url!r}: no such journal file; give the --storage the study ran with "
            "(or set HPO_STORAGE)"
        )
    if kind(url) == "sqlite" and not Path(url.split(":///", 1)[-1]).is_file():
        raise StorageError(
            f"storage {url!r}: no such SQLite file; give the --storage the study ran with"
        )
    return open_storage(url)


def load_stored_study(definition: Study, url: str) -> optuna.Study:
    """The Optuna study for a definition, which must exist with the same design."""
    import optuna

    from hpo.study import _check_same_design

    storage = open_existing_storage(url)
    try:
        study = optuna.load_study(study_name=definition.name, storage=storage,
                                  sampler=optuna.samplers.RandomSampler())
    except KeyError:
        names = sorted(optuna.get_all_study_names(storage))
        raise StorageError(
            f"study {definition.name!r} is not in {redact(url)}"
            f"{' (it holds: ' + ', '.join(names) + ')' if names else ' (it holds no study)'}; "
            f"run it first: hpo run <study file> --storage ..."
        ) from None
    # Results gathered under another design are not this study's results.
    _check_same_design(definition, study, redact(url))
    return study
