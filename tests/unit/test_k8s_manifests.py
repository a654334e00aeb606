"""deploy/k8s, checked without a cluster: every resource against Kubernetes' own schemas
(kubernetes-validate, strict: an unknown or misspelt field is an error), and the properties
a user relies on: the storage URL only from the Secret, GPUs for the workers, a trial handed
back before SIGKILL, and a dashboard that is never exposed outside the cluster."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest
import yaml
from conftest import ROOT

from hpo.cli import _parser

K8S = ROOT / "deploy" / "k8s"
PLACEHOLDER = "postgresql+psycopg2://hpo:CHANGE-ME@postgres.example.internal:5432/hpo"
# Kubernetes versions the manifests must be valid for: the oldest with podFailurePolicy and
# podReplacementPolicy generally available (1.31), and the newest the validator knows.
VERSIONS = ["1.31.0", kubernetes_validate.latest_version()]


def manifests() -> dict[str, list[dict]]:
    return {p.name: [d for d in yaml.safe_load_all(p.read_text()) if d]
            for p in sorted(K8S.glob("*.yaml"))}


def resources() -> list[dict]:
    return [d for name, docs in manifests().items() if name != "kustomization.yaml"
            for d in docs]


def one(kind: str) -> dict:
    (found,) = [r for r in resources() if r["kind"] == kind]
    return found


def containers() -> list[dict]:
    return [c for r in resources() if r["kind"] in ("Job", "Deployment")
            for c in r["spec"]["template"]["spec"]["containers"]]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("resource", resources(),
                         ids=lambda r: f"{r['kind']}/{r['metadata']['name']}")
def test_every_resource_is_valid_kubernetes(resource, version):
    kubernetes_validate.validate(resource, version, strict=True)


def test_kustomization_applies_everything_but_the_secret():
    kustomization = manifests()["kustomization.yaml"][0]
    assert sorted(kustomization["resources"]) == sorted(
        set(manifests()) - {"kustomization.yaml", "secret.yaml"})
    assert [i["name"] for i in kustomization["images"]] == ["hpo"]


def test_the_storage_url_comes_only_from_the_secret_whose_value_is_the_placeholder():
    secret = one("Secret")
    assert secret["stringData"] == {"url": PLACEHOLDER}
    for container in containers():
        (storage,) = [e for e in container["env"] if e["name"] == "HPO_STORAGE"]
        assert storage["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"],
                                                         "key": "url"}
    # No other URL with a password, and no password-like value, anywhere in deploy/k8s.
    for path in K8S.glob("*.yaml"):
        text = path.read_text()
        for match in re.finditer(r"://[^\s/@:]+:([^\s@]+)@", text):
            assert path.name == "secret.yaml" and match.group(1) == "CHANGE-ME", path
        assert not re.search(r"(?i)^\s*\w*password\w*:\s*\S", text, re.MULTILINE), path


def test_workers_are_an_indexed_job_with_a_gpu_each_that_hands_trials_back():
    job = one("Job")
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["parallelism"] == spec["completions"] >= 1
    (worker,) = pod["containers"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    # Workers hand their trials back within 10 s of SIGTERM (docs/running.md).
    assert pod["terminationGracePeriodSeconds"] >= 30
    assert pod["restartPolicy"] == "Never"
    rules = spec["podFailurePolicy"]["rules"]
    assert {"action": "FailJob", "onExitCodes": {"containerName": "worker", "operator": "In",
                                                 "values": [2]}} in rules
    host = next(e for e in worker["env"] if e["name"] == "HPO_HOST")
    assert host["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_container_commands_parse_with_the_hpo_cli():
    by_name = {c["name"]: c for c in containers()}
    worker = _parser().parse_args(by_name["worker"]["args"])
    assert worker.command == "worker" and worker.storage is None
    assert str(worker.study_file).startswith("/studies/")
    mounts = {m["mountPath"] for m in by_name["worker"]["volumeMounts"]}
    assert {"/studies", str(worker.checkpoint_dir)} <= mounts
    dashboard = _parser().parse_args(by_name["dashboard"]["args"])
    assert dashboard.command == "dashboard" and dashboard.storage is None
    assert dashboard.port == by_name["dashboard"]["ports"][0]["containerPort"]
    # One image, the repository's Dockerfile's (ENTRYPOINT hpo), for both.
    assert {c["image"] for c in containers()} == {"hpo"}
    assert 'ENTRYPOINT ["hpo"]' in (ROOT / "Dockerfile").read_text()


def test_the_dashboard_is_never_exposed_outside_the_cluster():
    services = [r for r in resources() if r["kind"] == "Service"]
    assert services and all(s["spec"]["type"] == "ClusterIP" for s in services)
    assert not [r for r in resources() if r["kind"] == "Ingress"]
    for r in resources():
        pod = r.get("spec", {}).get("template", {}).get("spec", {})
        assert not pod.get("hostNetwork")
        for c in pod.get("containers", []):
            assert all("hostPort" not in p for p in c.get("ports", []))
    policy = one("NetworkPolicy")
    deployment = one("Deployment")
    assert policy["spec"]["podSelector"]["matchLabels"] == \
        deployment["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["policyTypes"] == ["Ingress"] and policy["spec"]["ingress"] == []
    (service,) = services
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
