"""Checks of the kustomize tree: every overlay renders, validates offline and keeps its promises."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest
from deploy_support import OVERLAYS, SERVICES, Manifest, docroute_deployments, find, generated, one

# The Kubernetes version the manifests target (kubectl here is 1.32; kubernetes-validate ships its schemas).
K8S_VERSION = "1.32.0"

# Custom resources have no schema in kubernetes-validate; they are skipped, and only these may be.
CRDS_WITHOUT_SCHEMA = {
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"),  # RabbitMQ Cluster Operator
    ("rabbitmq.com/v1beta1", "Vhost"),  # Messaging Topology Operator (this and the next four)
    ("rabbitmq.com/v1beta1", "Exchange"),
    ("rabbitmq.com/v1beta1", "Policy"),
    ("rabbitmq.com/v1beta1", "User"),
    ("rabbitmq.com/v1beta1", "Permission"),
    ("monitoring.coreos.com/v1", "PodMonitor"),  # Prometheus Operator
    ("external-secrets.io/v1beta1", "ExternalSecret"),  # External Secrets Operator (production)
    ("cert-manager.io/v1", "Certificate"),  # cert-manager (production)
    ("keda.sh/v1alpha1", "ScaledObject"),  # KEDA (components/keda, production)
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
}

Render = Callable[[str], list[Manifest]]


def _containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod_spec.get("initContainers", [])) + list(pod_spec["containers"])


def _pod_specs(manifests: list[Manifest]) -> list[tuple[str, dict[str, Any]]]:
    specs = []
    for m in manifests:
        if m["kind"] in {"Deployment", "StatefulSet", "Job"}:
            specs.append((f"{m['kind']}/{m['metadata']['name']}", m["spec"]["template"]["spec"]))
    return specs


@pytest.mark.parametrize("overlay", ["base", *OVERLAYS])
def test_overlay_validates_against_the_kubernetes_schemas(rendered: Render, overlay: str) -> None:
    manifests = rendered(overlay)
    skipped = set()
    errors = []
    for m in manifests:
        key = (m["apiVersion"], m["kind"])
        if key in CRDS_WITHOUT_SCHEMA:
            skipped.add(key)
            continue
        try:
            kubernetes_validate.validate(m, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors.append(f"{m['kind']}/{m['metadata']['name']}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{m['kind']} ({m['apiVersion']}) has no schema and is not a listed CRD")
    assert not errors, "\n".join(errors)
    assert len(manifests) > len(skipped)


def test_a_field_the_schema_does_not_know_is_reported(rendered: Render) -> None:
    # Guards the check above: strict validation really rejects a misspelt field.
    deployment = dict(one(rendered("dev"), "Deployment", "intake-api"))
    deployment["spec"] = {**deployment["spec"], "replica": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_has_an_api_and_a_worker_from_one_image(rendered: Render, overlay: str) -> None:
    manifests = rendered(overlay)
    for svc, port in SERVICES.items():
        api = one(manifests, "Deployment", f"{svc}-api")["spec"]["template"]["spec"]
        worker = one(manifests, "Deployment", f"{svc}-worker")["spec"]["template"]["spec"]
        (api_container,) = api["containers"]
        (worker_container,) = worker["containers"]
        assert api_container["image"] == worker_container["image"]
        assert api_container["image"].split(":")[0].endswith(f"docroute/{svc}")
        assert "command" not in api_container, "the API runs the image's default command (gunicorn)"
        assert worker_container["command"] == ["python", "-m", f"{svc}.worker"]
        assert api_container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        service = one(manifests, "Service", svc)
        assert service["spec"]["ports"][0]["port"] == port
        assert service["spec"]["selector"] == {
            "app.kubernetes.io/name": svc,
            "app.kubernetes.io/component": "api",
        }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_apis_are_probed_on_healthz_and_readyz(rendered: Render, overlay: str) -> None:
    for svc in SERVICES:
        spec = one(rendered(overlay), "Deployment", f"{svc}-api")["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


@pytest.mark.parametrize("overlay", ["base", *OVERLAYS])
def test_workers_are_ready_on_the_readyz_of_their_metrics_port(rendered: Render, overlay: str) -> None:
    """Each worker serves /readyz (503 while a dependency its consumers wait for is down) on the port
    DOCROUTE_METRICS_PORT names; its readinessProbe asks there."""
    for svc in SERVICES:
        spec = one(rendered(overlay), "Deployment", f"{svc}-worker")["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        probe = container["readinessProbe"]
        assert probe["httpGet"] == {"path": "/readyz", "port": "metrics"}, svc
        assert probe["timeoutSeconds"] < probe["periodSeconds"], svc
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert str(ports["metrics"]) == env["DOCROUTE_METRICS_PORT"], svc


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migrations_run_before_every_pod_of_a_service(rendered: Render, overlay: str) -> None:
    for deployment in docroute_deployments(rendered(overlay)):
        svc = deployment["metadata"]["labels"]["app.kubernetes.io/name"]
        spec = deployment["spec"]["template"]["spec"]
        if svc == "console":
            # No database, nothing to migrate.
            assert not spec.get("initContainers")
            continue
        (init,) = spec["initContainers"]
        assert init["command"] == ["docroute", "migrate", "--service", svc]
        assert init["image"] == spec["containers"][0]["image"]
        assert init["envFrom"] == spec["containers"][0]["envFrom"], "migrations must see the same settings"
        # The rollout never takes capacity away while a new pod migrates and starts.
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_restricted(rendered: Render, overlay: str) -> None:
    for where, spec in _pod_specs(rendered(overlay)):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        mounts_by_container = {}
        for container in _containers(spec):
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["capabilities"] == {"drop": ["ALL"]}, where
            assert set(container["resources"]) == {"requests", "limits"}, where
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), where
            mounts_by_container[container["name"]] = {v["mountPath"] for v in container["volumeMounts"]}
        assert all("/tmp" in mounts for mounts in mounts_by_container.values()), where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_pods_get_writable_tmp_and_metrics_dirs(rendered: Render, overlay: str) -> None:
    manifests = rendered(overlay)
    multiproc = _config(manifests)["PROMETHEUS_MULTIPROC_DIR"]
    for deployment in docroute_deployments(manifests):
        spec = deployment["spec"]["template"]["spec"]
        empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        mounts = {v["mountPath"]: v["name"] for v in spec["containers"][0]["volumeMounts"]}
        assert mounts["/tmp"] in empty_dirs
        assert mounts[multiproc] in empty_dirs


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_cover_every_deployment(rendered: Render, overlay: str) -> None:
    manifests = rendered(overlay)
    selectors = [pdb["spec"]["selector"]["matchLabels"] for pdb in find(manifests, "PodDisruptionBudget")]
    for deployment in docroute_deployments(manifests):
        assert deployment["spec"]["selector"]["matchLabels"] in selectors, deployment["metadata"]["name"]


def test_dev_runs_one_replica_without_autoscaling(rendered: Render) -> None:
    manifests = rendered("dev")
    assert not find(manifests, "HorizontalPodAutoscaler")
    assert {d["spec"]["replicas"] for d in docroute_deployments(manifests)} == {1}
    assert one(manifests, "RabbitmqCluster", "docroute-rabbitmq")["spec"]["replicas"] == 1


def test_production_autoscales_every_api(rendered: Render) -> None:
    manifests = rendered("production")
    targets = {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"] for h in find(manifests, "HorizontalPodAutoscaler")
    }
    assert set(targets) == {f"{svc}-api" for svc in SERVICES}
    for name, spec in targets.items():
        replicas = one(manifests, "Deployment", name)["spec"]["replicas"]
        assert spec["minReplicas"] >= 3 and spec["maxReplicas"] > spec["minReplicas"]
        assert spec["minReplicas"] <= replicas <= spec["maxReplicas"]
    # Workers have no fixed count in production: KEDA keeps at least two (test_deploy_autoscaling.py).
    apis = [
        d
        for d in docroute_deployments(manifests)
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "api"
    ]
    assert all(d["spec"]["replicas"] >= 2 for d in apis)
    assert one(manifests, "RabbitmqCluster", "docroute-rabbitmq")["spec"]["replicas"] == 3


def _config(manifests: list[Manifest]) -> dict[str, str]:
    return dict(generated(manifests, "ConfigMap", "docroute-common")["data"])


def _secret_values(manifests: list[Manifest], name: str) -> dict[str, str]:
    if not find(manifests, "ExternalSecret", name):
        secret = generated(manifests, "Secret", name)
        return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
    external = one(manifests, "ExternalSecret", name)
    return dict(external["spec"]["target"]["template"]["data"])


def test_dev_uses_governance_lock_and_hs256_from_a_secret(rendered: Render) -> None:
    manifests = rendered("dev")
    config = _config(manifests)
    assert config["DOCROUTE_LOCK_MODE"] == "GOVERNANCE"
    assert config["DOCROUTE_JWT_ALGORITHM"] == "HS256"
    assert config["DOCROUTE_ENV"] == "development"
    jwt = generated(manifests, "Secret", "docroute-jwt")
    assert "DOCROUTE_JWT_SECRET" in jwt["data"]
    for deployment in docroute_deployments(manifests):
        env_from = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        refs = [e["secretRef"]["name"] for e in env_from if "secretRef" in e]
        assert jwt["metadata"]["name"] in refs


def test_production_uses_compliance_lock_rs256_and_tls_everywhere(rendered: Render) -> None:
    manifests = rendered("production")
    config = _config(manifests)
    assert config["DOCROUTE_LOCK_MODE"] == "COMPLIANCE"
    assert config["DOCROUTE_JWT_ALGORITHM"] == "RS256"
    assert config["DOCROUTE_JWT_JWKS_URL"].startswith("https://")
    assert config["DOCROUTE_S3_SECURE"] == "true"
    assert not [s for s in find(manifests, "Secret") if s["metadata"]["name"].startswith("docroute-jwt")]
    for svc in SERVICES:
        values = _secret_values(manifests, f"docroute-{svc}")
        assert values["DOCROUTE_AMQP_URL"].startswith("amqps://")
        assert "sslmode=verify-full" in values[f"DOCROUTE_{svc.upper()}_DATABASE_URL"]
    tls = one(manifests, "RabbitmqCluster", "docroute-rabbitmq")["spec"]["tls"]
    assert tls == {"secretName": "docroute-rabbitmq-tls", "disableNonTLSListeners": True}
    minio = one(manifests, "StatefulSet", "docroute-minio")["spec"]["template"]["spec"]
    certs = next(v for v in minio["volumes"] if v["name"] == "certs")
    assert certs["secret"]["secretName"] == "docroute-minio-tls"


def test_each_service_gets_only_its_own_database(rendered: Render) -> None:
    manifests = rendered("dev")
    init_script = one(manifests, "ConfigMap", "docroute-postgresql-init")["data"]["10-docroute-databases.sh"]
    assert "for svc in intake routing archive" in init_script
    for svc in SERVICES:
        values = _secret_values(manifests, f"docroute-{svc}")
        db_vars = {k for k in values if k.endswith("_DATABASE_URL")}
        assert db_vars == {f"DOCROUTE_{svc.upper()}_DATABASE_URL"}
        url = values[f"DOCROUTE_{svc.upper()}_DATABASE_URL"]
        assert re.fullmatch(rf"postgresql\+psycopg://{svc}:[^@]+@docroute-postgresql:5432/{svc}", url)


def test_only_the_ingress_controller_reaches_the_apis(rendered: Render) -> None:
    manifests = rendered("dev")
    policies = {p["metadata"]["name"]: p["spec"] for p in find(manifests, "NetworkPolicy")}
    deny = policies["docroute-default-deny"]
    assert deny["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny and "egress" not in deny
    api_ingress = [
        spec
        for spec in policies.values()
        if "Ingress" in spec["policyTypes"]
        and spec["podSelector"]["matchLabels"].get("app.kubernetes.io/part-of") == "docroute"
        and spec.get("ingress")
    ]
    sources = [
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        if "namespaceSelector" in peer
        else peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        for spec in api_ingress
        for rule in spec["ingress"]
        for peer in rule["from"]
    ]
    # The ingress controller and Prometheus to the APIs, Prometheus to the workers' metrics, the ingress
    # controller to the console and the console (a pod of this namespace) to the APIs; never open.
    assert sorted(sources) == ["console", "ingress-nginx", "ingress-nginx", "monitoring", "monitoring"]
    for spec in api_ingress:
        component = spec["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
        allowed = {"api": "http", "worker": "metrics", "web": "http"}[component]
        assert all(rule.get("ports") == [{"port": allowed, "protocol": "TCP"}] for rule in spec["ingress"])
    console_in = policies["docroute-api-from-console"]
    assert console_in["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "api"
    assert console_in["ingress"][0]["from"] == [
        {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/name": "console", "app.kubernetes.io/component": "web"}
            }
        }
    ]


WEBHOOK_EGRESS = "intake-worker-webhook-egress"


def test_services_reach_only_broker_database_object_store_and_dns(rendered: Render) -> None:
    manifests = rendered("dev")
    egress = [
        p["spec"]
        for p in find(manifests, "NetworkPolicy")
        if "Egress" in p["spec"]["policyTypes"]
        and p["spec"].get("egress")
        and p["metadata"]["name"] != WEBHOOK_EGRESS
    ]
    ports = sorted(port["port"] for spec in egress for rule in spec["egress"] for port in rule["ports"])
    # ... and the console the three APIs' ports, to those pods only.
    assert ports == [53, 53, 5432, 5671, 5672, 8001, 8002, 8003, 9000]
    console_out = one(manifests, "NetworkPolicy", "docroute-console-to-apis")["spec"]
    assert console_out["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "console"
    (rule,) = console_out["egress"]
    assert rule["to"] == [
        {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/part-of": "docroute", "app.kubernetes.io/component": "api"}
            }
        }
    ]
    assert sorted(p["port"] for p in rule["ports"]) == list(SERVICES.values())
    for spec in egress:
        for rule in spec["egress"]:
            assert all("ipBlock" not in peer for peer in rule["to"]), "no open egress to addresses"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_intake_worker_leaves_the_cluster_to_public_https_for_webhooks(
    rendered: Render, overlay: str
) -> None:
    import ipaddress

    manifests = rendered(overlay)
    opened = [
        p
        for p in find(manifests, "NetworkPolicy")
        for rule in p["spec"].get("egress", [])
        for peer in rule["to"]
        if "ipBlock" in peer
    ]
    assert {p["metadata"]["name"] for p in opened} == {WEBHOOK_EGRESS}
    (policy,) = find(manifests, "NetworkPolicy", WEBHOOK_EGRESS)
    spec = policy["spec"]
    # The worker pods only (the APIs never call out), and the worker Deployment's pods match it.
    assert spec["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "intake",
        "app.kubernetes.io/component": "worker",
    }
    worker = one(manifests, "Deployment", "intake-worker")
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"].items() <= labels.items()
    (rule,) = spec["egress"]
    assert rule["ports"] == [{"port": 443, "protocol": "TCP"}]
    blocks = [peer["ipBlock"] for peer in rule["to"]]
    assert {block["cidr"] for block in blocks} == {"0.0.0.0/0", "::/0"}
    excepted = [ipaddress.ip_network(cidr) for block in blocks for cidr in block["except"]]
    # Every address the delivery code calls inside is outside this policy too.
    for inside in (
        "10.1.2.3",
        "172.20.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.169.254",
        "100.100.100.200",
        "::1",
        "fd00:ec2::254",
        "fe80::1",
        "::ffff:10.0.0.1",
    ):
        address = ipaddress.ip_address(inside)
        assert any(address in net for net in excepted if net.version == address.version), inside
    for public in ("203.0.113.7", "8.8.8.8", "2001:4860:4860::8888"):
        address = ipaddress.ip_address(public)
        assert not any(address in net for net in excepted if net.version == address.version), public


def test_the_webhook_secret_keys_reach_intake_in_every_overlay(rendered: Render) -> None:
    dev = generated(rendered("dev"), "Secret", "docroute-intake")
    key = base64.b64decode(dev["data"]["DOCROUTE_WEBHOOK_SECRET_KEYS"]).decode()
    assert len(base64.urlsafe_b64decode(key)) == 32  # a Fernet key
    production = one(rendered("production"), "ExternalSecret", "docroute-intake")
    assert "DOCROUTE_WEBHOOK_SECRET_KEYS" in production["spec"]["target"]["template"]["data"]


def test_ingress_routes_each_host_to_its_service_and_hides_metrics(rendered: Render) -> None:
    ingress = one(rendered("production"), "Ingress", "docroute")
    backends = {}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["path"] in {"/v1", "/openapi.json", "/docs"}
            backends[rule["host"].split(".")[0]] = path["backend"]["service"]["name"]
    assert backends == {svc: svc for svc in SERVICES}
    assert ingress["spec"]["tls"][0]["hosts"] == [r["host"] for r in ingress["spec"]["rules"]]


def test_broker_topology_declares_exchanges_quorum_and_dead_lettering(rendered: Render) -> None:
    manifests = rendered("dev")
    exchanges = {e["spec"]["name"]: e["spec"]["type"] for e in find(manifests, "Exchange")}
    assert exchanges == {
        "intake.events": "topic",
        "routing.events": "topic",
        "archive.events": "topic",
        "intake.events.unrouted": "fanout",
        "routing.events.unrouted": "fanout",
        "archive.events.unrouted": "fanout",
        "routing.tasks": "direct",
        "docroute.dlx": "direct",
    }
    # The services declare events exchanges with an alternate exchange; the operator must declare the same.
    for exchange in find(manifests, "Exchange"):
        name = exchange["spec"]["name"]
        if name.endswith(".events"):
            assert exchange["spec"]["arguments"] == {"alternate-exchange": f"{name}.unrouted"}
    assert one(manifests, "Vhost", "docroute")["spec"]["defaultQueueType"] == "quorum"
    policy = one(manifests, "Policy", "docroute-delivery-limit")["spec"]
    assert policy["definition"]["dead-letter-exchange"] == "docroute.dlx"
    # The broker's limit and the consumers' limit are one number.
    assert policy["definition"]["delivery-limit"] == int(_config(manifests)["DOCROUTE_DELIVERY_LIMIT"])
    pattern = re.compile(policy["pattern"])
    assert pattern.search("routing.intake.directive_registered")
    assert pattern.search("routing.tasks.PVHTT.DONGXOAI")
    assert not pattern.search("archive.events.unrouted")
    assert not pattern.search("routing.intake.directive_registered.dlq")


def test_unit_broker_users_read_only_their_own_queue(rendered: Render) -> None:
    manifests = rendered("dev")
    unit_permissions = [p for p in find(manifests, "Permission") if p["metadata"]["name"].startswith("unit-")]
    assert len(unit_permissions) >= 2
    for permission in unit_permissions:
        unit = permission["metadata"]["labels"]["docroute.example/unit"]
        rights = permission["spec"]["permissions"]
        assert rights["configure"] == "^$" and rights["write"] == "^$"
        read = re.compile(rights["read"])
        assert read.fullmatch(f"routing.tasks.{unit}")
        assert not read.fullmatch("routing.tasks.SYT")
        assert not read.fullmatch(f"routing.tasks.{unit}.dlq")
        user = one(manifests, "User", permission["spec"]["userReference"]["name"])
        secret = _secret_values(manifests, user["spec"]["importCredentialsSecret"]["name"])
        assert secret["username"] == f"unit.{unit}"


def test_object_store_buckets_are_created_with_object_lock(rendered: Render) -> None:
    manifests = rendered("dev")
    job = one(manifests, "Job", "docroute-minio-setup")
    script = one(manifests, "ConfigMap", "docroute-minio-policies")["data"]["setup.sh"]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["/bin/sh", "/policies/setup.sh"]
    assert "for bucket in docroute-staging docroute-archive" in script
    assert 'mc mb --ignore-existing --with-lock "docroute/$bucket"' in script
    config = _config(manifests)
    assert {config["DOCROUTE_STAGING_BUCKET"], config["DOCROUTE_ARCHIVE_BUCKET"]} == {
        "docroute-staging",
        "docroute-archive",
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_console_is_served_at_the_root_of_its_own_host_over_the_apis_services(
    rendered: Render, overlay: str
) -> None:
    manifests = rendered(overlay)
    deployment = one(manifests, "Deployment", "console")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["image"].endswith("docroute/console:0.1.0")
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    service = one(manifests, "Service", "console")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["port"] == 8000
    (rule,) = one(manifests, "Ingress", "docroute-console")["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    assert path["backend"]["service"] == {"name": "console", "port": {"name": "http"}}
    api_hosts = {r["host"] for r in one(manifests, "Ingress", "docroute")["spec"]["rules"]}
    assert rule["host"] not in api_hosts, "the APIs keep their own hosts and paths"
    # Its settings: the common ones, its own ConfigMap, its own Secret; the APIs by their Services.
    refs = [next(iter(e.values()))["name"] for e in container["envFrom"]]
    config = generated(manifests, "ConfigMap", "console-config")
    assert refs[:3] == [
        generated(manifests, "ConfigMap", "docroute-common")["metadata"]["name"],
        config["metadata"]["name"],
        "docroute-console"
        if overlay == "production"
        else generated(manifests, "Secret", "docroute-console")["metadata"]["name"],
    ]
    for svc, port in SERVICES.items():
        assert config["data"][f"DOCROUTE_CONSOLE_{svc.upper()}_URL"] == f"http://{svc}:{port}"
        assert one(manifests, "Service", svc)["spec"]["ports"][0]["port"] == port
    values = _secret_values(manifests, "docroute-console") if overlay == "dev" else {}
    if overlay == "production":
        # OpenID Connect at the provider whose tokens the APIs accept; secrets from the secret store.
        assert config["data"]["DOCROUTE_CONSOLE_OIDC_CLIENT_ID"]
        assert config["data"]["DOCROUTE_CONSOLE_PUBLIC_URL"] == f"https://{rule['host']}"
        keys = {d["secretKey"] for d in one(manifests, "ExternalSecret", "docroute-console")["spec"]["data"]}
        assert keys == {"DOCROUTE_CONSOLE_SESSION_KEY", "DOCROUTE_CONSOLE_OIDC_CLIENT_SECRET"}
        tls = one(manifests, "Ingress", "docroute-console")["spec"]["tls"]
        assert tls[0]["hosts"] == [rule["host"]]
        # The provider is reached over TLS trusting the organisation's bundle, by requests too.
        bundle = generated(manifests, "ConfigMap", "docroute-common")["data"]["SSL_CERT_FILE"]
        assert {"name": "REQUESTS_CA_BUNDLE", "value": bundle} in container["env"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert bundle.rsplit("/", 1)[0] in mounts
    else:
        # Development identities: no OIDC client, a session key from the dev Secret.
        assert "DOCROUTE_CONSOLE_OIDC_CLIENT_ID" not in config["data"]
        assert len(values["DOCROUTE_CONSOLE_SESSION_KEY"]) >= 32
