"""A throwaway PgBouncer in front of a throwaway PostgreSQL cluster, in transaction pooling.

Debian's ``pgbouncer`` package; installed by ``.ci/run`` when missing. PgBouncer will not
run as root, so it runs as the postgres user, like the cluster.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from pg_cluster import Cluster, _free_port

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


class Bouncer:
    def __init__(self, cluster: Cluster, *, pool_size: int, max_client_conn: int = 200):
        self.dir = Path(tempfile.mkdtemp(prefix="hpo-pgbouncer-"))
        self.port = _free_port()
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        (self.dir / "users.txt").write_text('"postgres" ""\n')
        (self.dir / "pgbouncer.ini").write_text(f"""
[databases]
* = host=127.0.0.1 port={cluster.port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.dir}/users.txt
pool_mode = transaction
default_pool_size = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = {max_client_conn}
max_db_connections = {pool_size}
logfile = {self.dir}/pgbouncer.log
pidfile = {self.dir}/pgbouncer.pid
ignore_startup_parameters = extra_float_digits,options
""")
        if self._as:
            user = pwd.getpwnam("postgres")
            for path in (self.dir, *self.dir.iterdir()):
                os.chown(path, user.pw_uid, user.pw_gid)
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        # Its log goes to a file: PgBouncer, not daemonized, also writes every line to stderr,
        # and a pipe nobody reads fills up after a few hundred logins and blocks it for good.
        self._stderr = self.dir / "stderr.txt"
        with self._stderr.open("wb") as stderr:
            self._process = subprocess.Popen(
                [*self._as, PGBOUNCER, str(self.dir / "pgbouncer.ini")],
                stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self._process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {self._stderr.read_text()!r}")
            time.sleep(0.1)
        raise RuntimeError("pgbouncer did not start listening")

    def destroy(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
