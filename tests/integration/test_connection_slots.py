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


def test_a_fleet_larger_than_the_free_slots_is_warned_of_before_it_starts(tmp_path, study_file):
    cluster = Cluster(max_connections=8, superuser_reserved_connections=1)
    cluster.start()
    try:
        crowded = hpo_cli("run", study_file(per_value=2), "--workers", "9",
                          env={"HPO_STORAGE": cluster.url}, cwd=tmp_path, timeout=180)
        warnings = [line for line in crowded.stderr.splitlines()
                    if line.startswith("hpo: warning:") and "connections" in line]
        assert len(warnings) == 1, crowded.stderr
        assert "need 10 connections, but the server has" in warnings[0]
        assert "max_connections=8" in warnings[0] and "1 reserved" in warnings[0]
        roomy = hpo_cli("run", study_file(per_value=2), "--workers", "2",
                        env={"HPO_STORAGE": cluster.url}, cwd=tmp_path, timeout=180)
        assert roomy.returncode == 0, roomy.stderr
        assert "need 3 connections" not in roomy.stderr
    finally:
        cluster.destroy()
