"""Shared fixtures: throwaway PostgreSQL databases and small study files.

PostgreSQL tests use the server at ``$HPO_TEST_PG`` (default: the local one on 127.0.0.1:5432,
user postgres, trust auth). Each test gets a database of its own, dropped afterwards. They
do not skip when the server is missing: CI starts it, and a silent skip would hide that.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.pool import NullPool

PG_SERVER = os.environ.get("HPO_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _checkpoints_outside_the_repo(tmp_path_factory):
    """Objectives that checkpoint without --checkpoint-dir write to a temp folder, not ./"""
    os.environ.setdefault("HPO_CHECKPOINT_DIR", str(tmp_path_factory.mktemp("checkpoints")))


@pytest.fixture
def pg_url():
    """A fresh, empty PostgreSQL database for one test; its URL."""
    name = f"hpo_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(f"{PG_SERVER}/postgres", poolclass=NullPool,
                                     isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# A study whose objective is cheap and deterministic, so tests measure hpo, not training.
SYNTHETIC_STUDY = '''
import time
from hpo import Study, scientific, nuisance, fixed, choice, log_uniform, uniform

def objective(config, ctx):
    time.sleep(config["sleep"])
    lr = config["learning_rate"]
    extra = config["momentum"] if config["optimizer"] == "sgd" else config["beta1"]
    for step in range(3):
        ctx.report(step, abs(lr - 0.01) + extra * 0.1 + step)
    return abs(lr - 0.01) + extra * 0.1

study = Study(
    name={name!r},
    goal="Which optimizer is better on a synthetic function?",
    metric="loss",
    direction="minimize",
    space={{
        "optimizer": scientific(choice("sgd", "adam")),
        "learning_rate": nuisance(log_uniform(1e-4, 1.0)),
        "momentum": nuisance(uniform(0.8, 0.99), when={{"optimizer": "sgd"}}),
        "beta1": nuisance(uniform(0.8, 0.99), when={{"optimizer": "adam"}}),
        "sleep": fixed({sleep}),
    }},
    objective=objective,
    trials_per_value={per_value},
    phase={phase!r},
    seed={seed},
)
'''


@pytest.fixture
def study_file(tmp_path):
    """Write a synthetic study file; returns a function taking name/per_value/seed/phase/sleep."""

    def write(name="synthetic-v1", per_value=4, seed=0, phase="explore", sleep=0.0,
              filename="study.py"):
        path = tmp_path / filename
        path.write_text(SYNTHETIC_STUDY.format(name=name, per_value=per_value, seed=seed,
                                               phase=phase, sleep=sleep))
        return path

    return write


def hpo_cli(*args, env=None, cwd=None, timeout=300):
    """Run the real ``hpo`` command in a subprocess; returns the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("HPO_STORAGE", None) if env is None or "HPO_STORAGE" not in env else None
    return subprocess.run([sys.executable, "-m", "hpo", *map(str, args)], capture_output=True,
                          text=True, env=full_env, cwd=cwd, timeout=timeout)


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip()
