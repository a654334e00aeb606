"""Infeasible trials: how often each scientific value diverged or ran out of memory.

A scientific value whose trials often diverge is harder to train, which is itself a result.
And the playbook warns that a best learning rate right next to the infeasible region means
training there is close to unstable: the best result may not survive another seed, and
warmup or gradient clipping may help.

Only infeasible trials (diverged, oom) count here. A trial whose objective raised, that timed
out, or whose worker died says nothing about its hyperparameters: it is left out of the
fractions and of the "next to the infeasible region" check, and the report lists it under
Failures instead (:mod:`hpo.failures`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from optuna.trial import TrialState

from hpo import failures
from hpo.analysis.results import infeasible_kind, is_infeasible
from hpo.space import Float, Int

if TYPE_CHECKING:
    from hpo.analysis.results import Results

_LEARNING_RATE = re.compile(r"(^|_)(lr|learning_rate)$")


@dataclass(frozen=True)
class Infeasibility:
    group: str
    finished: int
    complete: int
    pruned: int
    failed: int  # error, timeout, infrastructure: not infeasible, not in the fraction
    diverged: int  # NaN or inf metric
    oom: int  # out of memory
    edge_notes: list[str] = field(default_factory=list)

    @property
    def infeasible(self) -> int:
        return self.diverged + self.oom

    @property
    def measured(self) -> int:
        """Trials that say something about their hyperparameters: finished, not failed."""
        return self.finished - self.failed

    @property
    def fraction(self) -> float:
        return self.infeasible / self.measured if self.measured else 0.0

    @property
    def message(self) -> str:
        if not self.measured:
            return (f"{self.group}: no finished trials yet" if not self.failed else
                    f"{self.group}: no measured trials yet ({self.failed} failed: see Failures)")
        kinds = ", ".join(f"{n} {k}" for n, k in ((self.diverged, "diverged"),
                                                 (self.oom, "out of memory")) if n)
        text = (f"{self.group}: {self.infeasible} of {self.measured} finished trials infeasible "
                f"({self.fraction:.0%}){': ' + kinds if kinds else ''}")
        if self.failed:
            text += f" ({self.failed} failed trial(s) not counted: see Failures)"
        return "; ".join([text, *self.edge_notes])


def is_learning_rate(name: str) -> bool:
    """'learning_rate', 'lr', 'head_lr' (not 'lr_decay'): by the name's last words."""
    return bool(_LEARNING_RATE.search(name.lower()))


def infeasible_trials(results: Results) -> list[Infeasibility]:
    """Counts per scientific value, and notes where the best learning rate borders failure."""
    out = []
    for group in results.groups:
        finished = group.finished
        bad = [t for t in finished if is_infeasible(t)]
        kinds = [infeasible_kind(t) for t in bad]
        out.append(Infeasibility(
            group=group.label,
            finished=len(finished),
            complete=len(group.complete),
            pruned=sum(t.state == TrialState.PRUNED for t in finished),
            failed=sum(failures.is_failure(t) for t in finished),
            diverged=kinds.count("diverged"),
            oom=kinds.count("oom"),
            edge_notes=_learning_rate_at_edge(results, group),
        ))
    return out


def _learning_rate_at_edge(results: Results, group) -> list[str]:
    """For each learning-rate hyperparameter: is the best trial's value next to an infeasible one?

    "Next to" means no complete trial of this scientific value lies between the best one and
    a trial that failed (or the failed one was tried at the very same value).
    """
    best = results.best(group)
    if best is None:
        return []
    notes = []
    for name, dist in group.nuisance.items():
        if not (isinstance(dist, (Float, Int)) and is_learning_rate(name)):
            continue
        if name not in best.params:
            continue
        at = best.params[name]
        feasible = [t.params[name] for t in group.complete if name in t.params]
        failed = [t for t in group.finished if is_infeasible(t) and name in t.params]
        above = min((v for v in feasible if v > at), default=float("inf"))
        below = max((v for v in feasible if v < at), default=float("-inf"))
        neighbours = [
            ("higher", min((t for t in failed if at < t.params[name] < above),
                           key=lambda t: t.params[name], default=None)),
            ("lower", max((t for t in failed if below < t.params[name] < at),
                          key=lambda t: t.params[name], default=None)),
            ("same", next((t for t in failed if t.params[name] == at), None)),
        ]
        for side, t in neighbours:
            if t is None:
                continue
            if side == "same":
                what = f"trial #{t.number}, at the same {name},"
            else:
                what = f"the next {side} {name} tried ({t.params[name]:.4g}, trial #{t.number})"
            notes.append(
                f"the best {name} ({at:.4g}, trial #{best.number}) sits next to the infeasible "
                f"region: {what} {_past(infeasible_kind(t))}; training there is close to "
                "unstable, so expect run-to-run variance (consider warmup or gradient clipping)"
            )
    return notes


def _past(kind: str) -> str:
    return {"oom": "ran out of memory", "diverged": "diverged"}.get(kind, "failed")
