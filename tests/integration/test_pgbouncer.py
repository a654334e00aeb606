"""PgBouncer in transaction pooling is a supported deployment: more workers than server
connections, and nothing of hpo's relies on session state (no session advisory locks, no
prepared statements across transactions)."""

from __future__ import annotations

import optuna
import pytest
from pg_cluster import Cluster
from pgbouncer import Bouncer
from test_fleet import assert_exact, start_fleet

from hpo.store import open_storage

STUDY = '''
import time
from hpo import Study, scientific, nuisance, choice, uniform

def objective(config, ctx):
    time.sleep(0.2)
    return config["x"] if config["arm"] == "a" else 1 - config["x"]

study = Study(name="bounced", goal="Does a fleet work through PgBouncer?", metric="loss",
              space={"arm": scientific(choice("a", "b")), "x": nuisance(uniform(0.0, 1.0))},
              objective=objective, trials_per_value=16)
'''


@pytest.fixture
def bouncer():
    # Fewer server slots than workers: through PgBouncer that is no limit, and hpo's
    # connection check, which would warn of it on a direct connection, stands aside.
    cluster = Cluster(max_connections=12)
    cluster.start()
    bouncer = Bouncer(cluster, pool_size=4)
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.destroy()
        cluster.destroy()


def test_sixteen_workers_share_four_server_connections_and_finish_exactly(tmp_path, bouncer):
    study_file = tmp_path / "bounced.py"
    study_file.write_text(STUDY)
    fleet = start_fleet(["run", study_file, "--workers", "16"],
                        {"HPO_STORAGE": bouncer.url}, tmp_path)
    out, err = fleet.communicate(timeout=400)
    assert fleet.returncode == 0, err
    study = optuna.load_study(study_name="bounced", storage=open_storage(bouncer.url))
    assert_exact(study, 32)
    assert "Traceback" not in err
    assert "connections, but the server has" not in err
