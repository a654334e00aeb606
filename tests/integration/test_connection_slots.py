"""A server with no connection slots left: one line saying so and how to size, never a
traceback (Optuna's own message would be "invalid data in the commit")."""

from __future__ import annotations

import psycopg2
import pytest
from conftest import hpo_cli
from pg_cluster import Cluster


@pytest.fixture
def full_server():
    cluster = Cluster(max_connections=4, superuser_reserved_connections=0)
    cluster.start()
    held = []
    try:
        while True:  # take every slot
            try:
                held.append(psycopg2.connect(host="127.0.0.1", port=cluster.port,
                                             user="postgres", dbname="postgres"))
            except psycopg2.OperationalError:
                break
        yield cluster
    finally:
        for conn in held:
            conn.close()
        cluster.destroy()


def test_no_connection_slots_left_is_one_line_and_exit_1(tmp_path, study_file, full_server):
    result = hpo_cli("run", study_file(), env={"HPO_STORAGE": full_server.url}, cwd=tmp_path,
                     timeout=120)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("hpo: error:")]
    assert len(errors) == 1 and "no connection slots left" in errors[0], result.stderr
    assert "PgBouncer" in errors[0]
