"""The errors hpo shows a user, and what each means for the exit status.

Every user-facing error is an :class:`HpoError`: its message is one line (what was given,
what is allowed, how to fix it) and its ``exit_code`` is what the ``hpo`` command exits
with. Bad input is :class:`InputError` (exit 2, and nothing was written to storage);
anything else is a runtime failure (exit 1).
"""

from __future__ import annotations


class HpoError(Exception):
    """Base of every error hpo reports to a user; one line, printed as is by the CLI."""

    exit_code = 1


class InputError(HpoError, ValueError):
    """Bad input: a study definition, an option, an environment variable. Exit 2; nothing
    has been written to storage when it is raised."""

    exit_code = 2


class InfrastructureError(HpoError):
    """Something around the trial failed, not the trial: a checkpoint folder that cannot be
    written, a database that went away. The trial goes back to the queue rather than being
    counted as a result (failed, let alone infeasible)."""
