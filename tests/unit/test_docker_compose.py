"""docker-compose.yml, checked without a Docker engine (none runs on CI machines).

The checks are what would break a user's `docker compose up`: services that refer to each
other, the storage URL the workers and the dashboard read, GPUs reserved for the workers,
no password written into the file, and commands that the hpo CLI accepts.
"""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import ROOT

from hpo.cli import _parser


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_their_dependencies(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "dashboard", "workers"}
    for name in ("dashboard", "workers"):
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert services[name]["build"] == "."
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    named = set(compose["volumes"])
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith("./") or source in named, volume


def test_workers_and_dashboard_share_one_storage_without_a_literal_password(compose):
    text = (ROOT / "docker-compose.yml").read_text()
    urls = {compose["services"][s]["environment"]["HPO_STORAGE"] for s in ("dashboard", "workers")}
    assert len(urls) == 1
    url = urls.pop()
    assert url.startswith("postgresql+psycopg2://hpo:${POSTGRES_PASSWORD")
    assert url.endswith("@postgres:5432/hpo")
    # Every password in the file is a variable reference, never a value.
    for match in re.finditer(r"^\s*\w*PASSWORD:\s*(\S+)", text, re.MULTILINE):
        assert match.group(1).startswith("${"), match.group(0)


def test_workers_reserve_every_gpu_and_stop_gracefully(compose):
    workers = compose["services"]["workers"]
    device = workers["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert device["count"] == "all"
    grace = int(workers["stop_grace_period"].rstrip("s"))
    assert grace > 10  # workers hand their trials back within 10 s of SIGTERM


@pytest.mark.parametrize("service", ["dashboard", "workers"])
def test_service_commands_parse_with_the_hpo_cli(compose, service):
    command = [re.sub(r"\$\{STUDY:-([^}]*)\}", r"\1", c)
               for c in compose["services"][service]["command"]]
    args = _parser().parse_args(command)
    assert args.command == command[0]
    if service == "workers":
        assert args.gpus == "all" and str(args.checkpoint_dir) == "/checkpoints"
        assert (ROOT / args.study_file).is_file()
    else:
        assert args.host == "0.0.0.0"


def test_dockerfile_installs_the_project_with_the_hpo_entrypoint():
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["hpo"]' in text
    assert text.index("torch") < text.index("pip install --no-cache-dir .")
