"""Every ``HPO_*`` environment variable hpo reads, validated in one place.

Each variable has a parser that turns its text into a value or raises :class:`EnvError`
with one line: the variable, the value given, what is allowed. ``hpo`` calls
:func:`validate` before it does anything, so a bad value exits 2 with that line instead of
a traceback from deep inside a worker. The documentation's table (docs/environment.md) is
checked against :data:`VARIABLES` by a test.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hpo.errors import InputError


class EnvError(InputError):
    """An ``HPO_*`` environment variable with a value hpo cannot use."""


@dataclass(frozen=True)
class Variable:
    name: str
    default: str        # as the documentation states it
    meaning: str
    parse: Callable[[str], Any]
    allowed: str        # what the parser accepts, for the error message


def _text(value: str) -> str:
    return value


def _whole(minimum: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        text = value.strip()
        if not text.lstrip("-").isdigit() or int(text) < minimum:
            raise ValueError
        return int(text)
    return parse


def _seconds(value: str) -> float:
    seconds = float(value)
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError
    return seconds


VARIABLES: dict[str, Variable] = {v.name: v for v in (
    Variable("HPO_STORAGE", "./hpo-journal.log", "the storage URL or journal file, when "
             "--storage is not given", _text, "a URL or a file path"),
    Variable("HPO_CHECKPOINT_DIR", "./hpo-checkpoints", "the folder for trial checkpoints, "
             "shared by every worker", _text, "a folder path"),
    Variable("HPO_ARTIFACT_DIR", "./hpo-artifacts", "the artifact store that hpo report and "
             "hpo dashboard use", _text, "a folder path"),
    Variable("HPO_DEVICE", "cuda:0 if a GPU is visible, else cpu", "the device ctx.device "
             "names", _text, "cpu, cuda, cuda:N"),
    Variable("HPO_DEVICES", "HPO_DEVICE alone", "every device of a trial, comma-separated, "
             "as ctx.devices lists them (set by hpo workers --gpus-per-trial)", _text,
             "devices like cuda:0,cuda:1"),
    Variable("HPO_PROCS_PER_TRIAL", "1", "processes that run each trial together, with "
             "torch.distributed (set by --procs-per-trial and --gpus-per-trial)", _whole(1),
             "a whole number >= 1"),
    Variable("HPO_DIST_TIMEOUT", "300", "seconds a collective of a several-process trial may "
             "wait for the other processes before it fails", _seconds,
             "a number of seconds > 0"),
    Variable("HPO_HOST", "the hostname", "this machine's name in provenance and for the "
             "reaper (set it where hostnames are not stable, e.g. containers)", _text,
             "a name"),
    Variable("HPO_GPU_NAME", "found with nvidia-smi", "the GPU name recorded with each trial "
             "(set by hpo workers for its children)", _text, "a name"),
    Variable("HPO_GPUS", "found with nvidia-smi, else torch", "the GPUs hpo workers sees, "
             "e.g. 0,1 or 0:Tesla T4,1:Tesla T4", _text, "indices, optionally with names"),
    Variable("HPO_HEARTBEAT_INTERVAL", "10", "seconds between a running trial's heartbeats "
             "(PostgreSQL)", _whole(1), "a whole number of seconds >= 1"),
    Variable("HPO_HEARTBEAT_GRACE", "60", "seconds without a heartbeat after which a trial's "
             "worker counts as dead (PostgreSQL)", _whole(1), "a whole number of seconds >= 1"),
    Variable("HPO_DB_PATIENCE", "600", "seconds a worker keeps retrying a lost database "
             "connection before it gives up", _seconds, "a number of seconds > 0"),
    Variable("HPO_MAX_RETRY", "3", "how many times a trial whose worker died is retried",
             _whole(0), "a whole number >= 0"),
    Variable("HPO_TIMEOUT_GRACE", "10", "seconds an objective past its trial timeout has to "
             "stop before its worker process is replaced", _seconds, "a number of seconds > 0"),
    Variable("HPO_STARTUP_SECONDS", "20", "a worker that exits sooner than this after "
             "starting counts as a start-up failure (hpo run, hpo workers)", _seconds,
             "a number of seconds > 0"),
)}


def raw(name: str) -> str | None:
    """The variable's text, or None when unset or empty."""
    if name not in VARIABLES:
        raise KeyError(f"{name} is not one of hpo's environment variables")
    return os.environ.get(name) or None


def get(name: str, default: Any = None) -> Any:
    """The variable's parsed value, ``default`` when it is unset; EnvError when invalid.

    Read each time it is asked for (cheap), so a value set by a parent process or a test
    is seen; validated the same way every time.
    """
    text = raw(name)
    if text is None:
        return default
    variable = VARIABLES[name]
    try:
        return variable.parse(text)
    except ValueError:
        raise EnvError(f"${name}={text!r}: expected {variable.allowed}; fix or unset it "
                       f"(default: {variable.default})") from None


def validate() -> None:
    """Parse every variable that is set; the first bad one raises EnvError."""
    for name in VARIABLES:
        get(name)


# --- the values hpo uses, typed ---------------------------------------------------------

def heartbeat_interval() -> int:
    return int(get("HPO_HEARTBEAT_INTERVAL", 10))


def heartbeat_grace() -> int:
    return int(get("HPO_HEARTBEAT_GRACE", 60))


def db_patience() -> float:
    return float(get("HPO_DB_PATIENCE", 600.0))


def max_retry() -> int:
    return int(get("HPO_MAX_RETRY", 3))


def timeout_grace() -> float:
    return float(get("HPO_TIMEOUT_GRACE", 10.0))


def startup_seconds() -> float:
    return float(get("HPO_STARTUP_SECONDS", 20.0))


def host() -> str:
    return str(get("HPO_HOST") or socket.gethostname())


def procs_per_trial() -> int:
    return int(get("HPO_PROCS_PER_TRIAL", 1))


def dist_timeout() -> float:
    return float(get("HPO_DIST_TIMEOUT", 300.0))
