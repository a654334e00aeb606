"""optuna-dashboard, where users already look, showing what the playbook asks them to look at.

``hpo report`` writes its summary as the study's note and its plots as plotly graph objects
(both stored in the study's system attributes, so they travel with the storage), and, given
an artifact directory, the HTML report as a study artifact. ``hpo dashboard`` serves
optuna-dashboard on 127.0.0.1 with that artifact store. The dashboard has no authentication
and its API can delete studies, so listening beyond this machine takes an explicit ``--host``
and prints a warning.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hpo import env
from hpo.store import open_existing_storage, redact

if TYPE_CHECKING:
    import optuna
    import plotly.graph_objects as go

ARTIFACT_ENV = "HPO_ARTIFACT_DIR"
DEFAULT_ARTIFACT_DIR = "hpo-artifacts"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
GRAPH_PREFIX = "hpo-"  # graph ids are stable, so a new report replaces the old plots


def artifact_dir(cli_value: str | os.PathLike | None) -> Path:
    """``--artifact-dir``, else ``$HPO_ARTIFACT_DIR``, else ``./hpo-artifacts``."""
    return Path(cli_value or env.raw(ARTIFACT_ENV) or DEFAULT_ARTIFACT_DIR)


def publish(study: optuna.Study, summary: str, figures: dict[str, go.Figure]) -> None:
    """The summary as the study's note, each figure as a dashboard plot."""
    from optuna_dashboard import save_note, save_plotly_graph_object

    save_note(study, summary)
    for plot_id, figure in figures.items():
        save_plotly_graph_object(study, figure, graph_object_id=f"{GRAPH_PREFIX}{plot_id}")


def upload_report(study: optuna.Study, report: Path, directory: Path) -> str:
    """Store the HTML report as a study artifact the dashboard lists; returns its id."""
    from optuna.artifacts import FileSystemArtifactStore, upload_artifact

    directory.mkdir(parents=True, exist_ok=True)
    return upload_artifact(artifact_store=FileSystemArtifactStore(str(directory)),
                           file_path=str(report), study_or_trial=study, mimetype="text/html")


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")


def serve(url: str, *, host: str = "127.0.0.1", port: int = 8080,
          artifacts: Path | None = None) -> None:
    """Run optuna-dashboard on the storage until interrupted."""
    from optuna.artifacts import FileSystemArtifactStore
    from optuna_dashboard import run_server

    storage = open_existing_storage(url)
    directory = artifacts or artifact_dir(None)
    directory.mkdir(parents=True, exist_ok=True)
    if not is_loopback(host):
        print(f"hpo: warning: optuna-dashboard listens on {host}:{port}: it has no "
              "authentication, and anyone who can reach this port can read every study and "
              "delete it; prefer the default 127.0.0.1 with an SSH tunnel "
              f"(ssh -L {port}:127.0.0.1:{port} <this host>)", file=sys.stderr)
    shown = f"[{host}]" if ":" in host else host
    print(f"hpo: optuna-dashboard for {redact(url)} at http://{shown}:{port}/ "
          f"(artifacts in {directory}); Ctrl-C to stop", file=sys.stderr, flush=True)
    run_server(storage, host=host, port=port,
               artifact_store=FileSystemArtifactStore(str(directory)))
