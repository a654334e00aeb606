"""A throwaway single-node Slurm cluster for tests: munged, slurmctld and slurmd in a temp folder.

Debian's ``slurm-wlm`` and ``munge`` packages (installed here when missing, as root); the
daemons run as root in the foreground, on free ports, with a munge key and a slurm.conf of
their own, so nothing of the machine's own configuration (/etc/slurm, /etc/munge) is used
or changed. No cgroups: process tracking by /proc (proctrack/linuxproc), no task plugin, no
accounting, so it runs in a container. One node, ``localhost``, with this machine's CPUs and
memory as ``slurmd -C`` reports them, and one GPU that is /dev/null, so a
``--gres=gpu:K`` request can be scheduled.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

PACKAGES = ("slurm-wlm", "munge")
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "scancel", "squeue", "scontrol")


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None)


def ensure_installed() -> None:
    """apt-get install slurm-wlm munge if any program is missing (root only)."""
    if all(_which(name) for name in DAEMONS):
        return
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=environment,
                   capture_output=True, timeout=300)
    subprocess.run(["apt-get", "install", "-y", "-qq", *PACKAGES], check=True,
                   env=environment, capture_output=True, timeout=600)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_line() -> str:
    """This machine as a slurm.conf node named localhost (``slurmd -C``'s first line)."""
    out = subprocess.run([_which("slurmd") or "slurmd", "-C"], check=True, capture_output=True,
                         text=True, timeout=30).stdout
    fields = [f for f in out.splitlines()[0].split() if not f.startswith("NodeName=")]
    return " ".join(["NodeName=localhost", "NodeAddr=127.0.0.1", *fields, "Gres=gpu:1"])


class SlurmCluster:
    """Start with :meth:`start`, stop with :meth:`stop`; :attr:`env` points clients at it."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hpo-slurm-"))
        # munged refuses a socket in a folder that not everyone may traverse.
        self.dir.chmod(0o755)
        self.conf = self.dir / "slurm.conf"
        self.env = {"SLURM_CONF": str(self.conf)}
        self._daemons: list[subprocess.Popen[bytes]] = []
        self._logs: list[BinaryIO] = []

    def _write_config(self) -> None:
        key = self.dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        for folder in ("state", "spool"):
            (self.dir / folder).mkdir()
        d = self.dir
        self.conf.write_text("\n".join([
            "ClusterName=hpotest",
            "SlurmctldHost=localhost(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={d}/munge.socket",
            f"StateSaveLocation={d}/state",
            f"SlurmdSpoolDir={d}/spool",
            f"SlurmctldPidFile={d}/slurmctld.pid",
            f"SlurmdPidFile={d}/slurmd.pid",
            f"SlurmctldLogFile={d}/slurmctld.log",
            f"SlurmdLogFile={d}/slurmd.log",
            # No cgroups (containers, CI): track job processes through /proc.
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "MpiDefault=none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "GresTypes=gpu",
            "ReturnToService=2",
            "KillWait=30",           # Slurm's default: SIGTERM, then SIGKILL 30 s later
            "MinJobAge=600",         # finished jobs stay visible to scontrol show job
            _node_line(),
            "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
            "",
        ]))
        (d / "gres.conf").write_text("NodeName=localhost Name=gpu File=/dev/null\n")

    def _spawn(self, *command: str) -> None:
        log = open(self.dir / f"{Path(command[0]).name}.out", "wb")
        self._logs.append(log)
        self._daemons.append(subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}))

    def start(self, timeout: float = 60.0) -> None:
        self._write_config()
        d = self.dir
        self._spawn(_which("munged") or "munged", "--foreground", f"--key-file={d}/munge.key",
                    f"--socket={d}/munge.socket", f"--pid-file={d}/munged.pid",
                    f"--log-file={d}/munged.log", f"--seed-file={d}/munged.seed")
        self._wait(lambda: (d / "munge.socket").exists(), 10, "munged")
        self._spawn(_which("slurmctld") or "slurmctld", "-D", "-i", "-f", str(self.conf))
        self._spawn(_which("slurmd") or "slurmd", "-D", "-N", "localhost", "-f", str(self.conf))
        self._wait(lambda: self.node_state() == "idle", timeout, "the node to be idle")

    def _wait(self, ready, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not ready():
            for daemon in self._daemons:
                if daemon.poll() is not None:
                    raise RuntimeError(f"{daemon.args[0]} exited ({daemon.returncode}) while "
                                       f"waiting for {what}; see {self.dir}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}; see {self.dir}")
            time.sleep(0.5)

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=check,
                              env={**os.environ, **self.env})

    def node_state(self) -> str:
        done = self.run("sinfo", "-h", "-N", "-o", "%T", check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    def queued(self, job_id: str) -> list[str]:
        """'TASK STATE' lines of the job's array tasks still pending or running."""
        done = self.run("squeue", "-h", "-j", job_id, "-r", "-o", "%K %T", check=False)
        return done.stdout.split("\n") if done.stdout.strip() else []

    def wait_finished(self, job_id: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.queued(job_id):
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still queued after {timeout} s: "
                                     f"{self.queued(job_id)}")
            time.sleep(1)

    def task_states(self, job_id: str) -> dict[int, tuple[str, str]]:
        """Array task id -> (JobState, ExitCode), from ``scontrol show job``."""
        out = self.run("scontrol", "-o", "show", "job", job_id).stdout
        states = {}
        for line in out.splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            if "ArrayTaskId" in fields:
                states[int(fields["ArrayTaskId"])] = (fields["JobState"], fields["ExitCode"])
        return states

    def stop(self) -> None:
        """Cancel what is left, then end the daemons this cluster started, by their pids."""
        if self._daemons and self._daemons[-1].poll() is None:
            self.run("scancel", "--user=root", "--full", check=False)
            deadline = time.monotonic() + 40
            while self.run("squeue", "-h", check=False).stdout.strip():
                if time.monotonic() > deadline:
                    break
                time.sleep(1)
        for daemon in reversed(self._daemons):
            daemon.terminate()
            try:
                daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        for log in self._logs:
            log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
