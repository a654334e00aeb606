"""The statements a worker runs on every trial, and at start-up, do not grow with the study:
their plans look trials up by id through an index instead of reading every slot."""

from __future__ import annotations

import optuna
import pytest
import sqlalchemy

from hpo import attrs
from hpo.store import open_study, pgqueue
from hpo.study_file import load_study_file

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.postgres
SLOTS = 4000


@pytest.fixture
def big(study_file, pg_url):
    definition = load_study_file(study_file(per_value=SLOTS // 2))
    study, queue = open_study(definition, pg_url, budget=SLOTS)
    engine = sqlalchemy.create_engine(pg_url)
    with engine.begin() as conn:  # most of the study finished, as a long campaign's is
        conn.execute(sqlalchemy.text(
            "UPDATE trials SET state = 'COMPLETE' WHERE number < :n"), {"n": SLOTS - 100})
        conn.execute(sqlalchemy.text("ANALYZE"))
    yield definition, study, queue, engine
    engine.dispose()


def plan(engine, statement, params):
    with engine.begin() as conn:
        rows = conn.execute(sqlalchemy.text("EXPLAIN " + statement), params).scalars().all()
    return "\n".join(rows)


def test_a_claim_looks_the_head_of_the_queue_up_by_id(big):
    definition, study, queue, engine = big
    shown = plan(engine, pgqueue._CLAIM, {
        "now": None, "study_id": queue.study_id, "budget": SLOTS,
        "rerun_key": attrs.SEED_RERUN_OF, "keys": ["host"], "values": ['"h"']})
    # Hashing the slots table means reading all of it, for every claim.
    assert "hashed SubPlan" not in shown, shown
    assert "Seq Scan on hpo_slots" not in shown, shown
    assert "ix_hpo_waiting_trials" in shown, shown


def test_the_check_for_foreign_trials_at_open_reads_only_waiting_ones(big):
    definition, study, queue, engine = big
    shown = plan(engine, pgqueue._FOREIGN_WAITING,
                 {"s": queue.study_id, "rerun_key": attrs.SEED_RERUN_OF})
    assert "hashed SubPlan" not in shown and "Seq Scan on hpo_slots" not in shown, shown


def test_the_running_trials_are_read_through_their_own_index(big):
    definition, study, queue, engine = big
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(
            "UPDATE trials SET state = 'RUNNING' WHERE number = :n"), {"n": SLOTS - 1})
    shown = plan(engine, "SELECT trial_id FROM trials WHERE study_id = :s AND state IN "
                 "('RUNNING')", {"s": queue.study_id})
    assert "ix_hpo_running_trials" in shown, shown


def test_a_worker_joining_a_laid_out_study_takes_no_lock_and_reads_no_slot(big):
    definition, study, queue, engine = big
    statements = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    sqlalchemy.event.listen(queue.backend.engine, "before_cursor_execute", record)
    assert queue.lay_out(SLOTS) == 0
    sqlalchemy.event.remove(queue.backend.engine, "before_cursor_execute", record)
    assert len(statements) == 1 and "count(*)" in statements[0], statements
