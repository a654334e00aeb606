"""The report's Failures: each distinct failure, how often, where, and its first traceback.

A failure (error, timeout, infrastructure: :mod:`hpo.failures`) says nothing about the
hyperparameters, so it is kept out of every analysis of them and listed here instead, with
what is needed to fix it: the message, the trials it ended, and the first traceback. Attempts
that failed and were retried (a dead worker's, or one ``hpo retry`` queued again) are listed
too, apart from the slots a failure still ends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hpo import attrs, failures

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from hpo.tally import ValueTally

# Numbers and addresses vary between occurrences of one failure ("worker died (host pid
# 4242)", "<object at 0x7f...>"): they are left out of what makes two messages the same.
_VARYING = re.compile(r"0x[0-9a-fA-F]+|\d+")


@dataclass(frozen=True)
class FailureGroup:
    """One distinct failure: its kind and message (as first seen), and where it happened."""

    kind: str
    message: str
    final: tuple[int, ...]  # trial numbers of the slots (and seed re-runs) it ended
    retried: tuple[int, ...]  # trial numbers of attempts it ended that were retried
    traceback: str | None  # the first occurrence's, when one was recorded
    first: int  # the trial number of the first occurrence

    @property
    def count(self) -> int:
        return len(self.final) + len(self.retried)


def failure_groups(tallies: tuple[ValueTally, ...]) -> list[FailureGroup]:
    """Every failed attempt of the study, grouped by kind and message, most frequent first."""
    attempts: list[tuple[FrozenTrial, bool]] = []
    for value in tallies:
        for slot in value.slots:
            attempts.append((slot.final, False))
            attempts += [(t, True) for t in slot.earlier]
        attempts += [(t, False) for t in value.reruns]
    groups: dict[tuple[str, str], list[tuple[FrozenTrial, bool]]] = {}
    for trial, retried in sorted(attempts, key=lambda a: a[0].number):
        if failures.is_failure(trial):
            key = (str(failures.kind_of(trial)), _VARYING.sub("N", failures.message_of(trial)))
            groups.setdefault(key, []).append((trial, retried))
    out = []
    for (kind, _), members in groups.items():
        first = members[0][0]
        tb = next((t.user_attrs[attrs.TRACEBACK] for t, _ in members
                   if t.user_attrs.get(attrs.TRACEBACK)), None)
        out.append(FailureGroup(
            kind=kind, message=failures.message_of(first),
            final=tuple(t.number for t, retried in members if not retried),
            retried=tuple(t.number for t, retried in members if retried),
            traceback=tb, first=first.number))
    return sorted(out, key=lambda g: (-len(g.final), -g.count, g.first))
