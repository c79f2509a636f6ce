"""Checks of the KEDA component: every worker scales on its own queues, the APIs keep their CPU HPA, the
broker keeps quorum through a drain."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from deploy_support import SERVICES, Manifest, docroute_deployments, find, one
from shared.naming import SUBSCRIPTIONS, queue_name, unit_queue

Render = Callable[[str], list[Manifest]]

# The overlays that use components/keda.
KEDA_OVERLAYS = ("production",)


def _workers(manifests: list[Manifest]) -> list[Manifest]:
    return [
        d
        for d in docroute_deployments(manifests)
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    ]


def _scaled_objects(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    """ScaledObject spec by the name of the Deployment it scales (one each, or the check fails)."""
    specs: dict[str, dict[str, Any]] = {}
    for scaled in find(manifests, "ScaledObject"):
        target = scaled["spec"]["scaleTargetRef"]
        assert target.get("kind", "Deployment") == "Deployment"
        assert target["name"] not in specs, f"two ScaledObjects scale {target['name']}"
        specs[target["name"]] = scaled["spec"]
    return specs


def _consumed_queues(service: str) -> set[str]:
    return {queue_name(c, s, e) for c, s, e, _v in SUBSCRIPTIONS if c == service}


@pytest.mark.parametrize("overlay", KEDA_OVERLAYS)
def test_every_worker_scales_on_the_queues_it_consumes(rendered: Render, overlay: str) -> None:
    manifests = rendered(overlay)
    scaled = _scaled_objects(manifests)
    workers = {d["metadata"]["name"]: d for d in _workers(manifests)}
    assert set(workers) == {f"{svc}-worker" for svc in SERVICES}
    assert set(scaled) == set(workers)
    for name, deployment in workers.items():
        service = deployment["metadata"]["labels"]["app.kubernetes.io/name"]
        spec = scaled[name]
        triggers = spec["triggers"]
        watched = {t["metadata"]["queueName"] for t in triggers if t["type"] == "rabbitmq"}
        # Exactly the queues this service consumes (shared.naming), none of another service's.
        assert watched == _consumed_queues(service), name
        for trigger in triggers:
            if trigger["type"] == "rabbitmq":
                assert trigger["metadata"]["mode"] == "QueueLength"
                assert int(trigger["metadata"]["value"]) > 0
                assert trigger["authenticationRef"]["name"]
            else:
                # The other trigger kind used: the service's own outbox backlog in Prometheus.
                assert trigger["type"] == "prometheus"
                assert trigger["metadata"]["query"] == f'max(docroute_outbox_backlog{{relay="{service}"}})'
                assert float(trigger["metadata"]["threshold"]) > 0
        assert triggers, f"{name} has nothing to scale on"


@pytest.mark.parametrize("overlay", KEDA_OVERLAYS)
def test_worker_replica_bounds_and_cool_downs(rendered: Render, overlay: str) -> None:
    manifests = rendered(overlay)
    for name, spec in _scaled_objects(manifests).items():
        # Never zero: the workers also relay their outbox and run schedulers that no queue shows.
        assert 2 <= spec["minReplicaCount"] <= spec["maxReplicaCount"], name
        assert spec["cooldownPeriod"] >= 60 and spec["pollingInterval"] > 0, name
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 60, name
        assert all(p["value"] >= 1 for p in behavior["scaleDown"]["policies"]), name
        # KEDA owns the count: the manifest must not reset it on every apply.
        assert "replicas" not in one(manifests, "Deployment", name)["spec"], name


@pytest.mark.parametrize("overlay", KEDA_OVERLAYS)
def test_triggers_authenticate_from_a_secret(rendered: Render, overlay: str) -> None:
    manifests = rendered(overlay)
    auths = {a["metadata"]["name"]: a["spec"] for a in find(manifests, "TriggerAuthentication")}
    for spec in _scaled_objects(manifests).values():
        for trigger in spec["triggers"]:
            if trigger["type"] != "rabbitmq":
                continue
            assert "host" not in trigger["metadata"], "broker credentials belong in a Secret"
            refs = {r["parameter"]: r for r in auths[trigger["authenticationRef"]["name"]]["secretTargetRef"]}
            secret = refs["host"]["name"]
            external = one(manifests, "ExternalSecret", secret)["spec"]["target"]["template"]["data"]
            assert re.fullmatch(
                r"amqps://keda:\{\{ \.password \}\}@docroute-rabbitmq:5671/docroute", external["host"]
            )
            assert refs["tls"]["name"] == secret and external["tls"] == "enable"


@pytest.mark.parametrize("overlay", KEDA_OVERLAYS)
def test_keda_broker_user_reads_the_worker_queues_only(rendered: Render, overlay: str) -> None:
    manifests = rendered(overlay)
    permissions = one(manifests, "Permission", "keda")["spec"]["permissions"]
    assert permissions["configure"] == "^$" and permissions["write"] == "^$"
    read = re.compile(permissions["read"])
    for spec in _scaled_objects(manifests).values():
        for trigger in spec["triggers"]:
            if trigger["type"] == "rabbitmq":
                assert read.search(trigger["metadata"]["queueName"])
    for other in (unit_queue("BPTV"), "routing.intake.directive_registered.dlq", "intake.events.unrouted"):
        assert not read.search(other), other


@pytest.mark.parametrize("overlay", KEDA_OVERLAYS)
def test_apis_keep_their_cpu_hpa_and_no_worker_gets_a_second_autoscaler(
    rendered: Render, overlay: str
) -> None:
    manifests = rendered(overlay)
    hpas = find(manifests, "HorizontalPodAutoscaler")
    targets = [h["spec"]["scaleTargetRef"]["name"] for h in hpas]
    assert sorted(targets) == sorted(f"{svc}-api" for svc in SERVICES)
    for hpa in hpas:
        assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    # KEDA makes one HPA per ScaledObject; a hand-written one on the same Deployment would fight it.
    assert not set(targets) & set(_scaled_objects(manifests))


def test_overlays_without_the_component_keep_fixed_worker_replicas(rendered: Render) -> None:
    manifests = rendered("dev")
    assert not find(manifests, "ScaledObject")
    assert all(d["spec"]["replicas"] == 1 for d in _workers(manifests))


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_broker_drain_keeps_quorum(rendered: Render, overlay: str) -> None:
    manifests = rendered(overlay)
    cluster = one(manifests, "RabbitmqCluster", "docroute-rabbitmq")
    replicas = cluster["spec"]["replicas"]
    budget = one(manifests, "PodDisruptionBudget", "docroute-rabbitmq")["spec"]
    # The operator labels its pods app.kubernetes.io/name=<cluster name>.
    assert budget["selector"]["matchLabels"] == {"app.kubernetes.io/name": "docroute-rabbitmq"}
    # The most nodes a drain may take at once, against the majority every quorum queue needs. A one-node dev
    # broker has no quorum to keep and must stay drainable.
    can_lose = budget.get("maxUnavailable", replicas - budget.get("minAvailable", replicas))
    assert can_lose >= 1
    if replicas > 1:
        assert replicas - can_lose >= replicas // 2 + 1


def test_production_broker_runs_three_nodes_with_quorum_queues_on_all_three(rendered: Render) -> None:
    manifests = rendered("production")
    cluster = one(manifests, "RabbitmqCluster", "docroute-rabbitmq")["spec"]
    assert cluster["replicas"] == 3
    assert one(manifests, "Vhost", "docroute")["spec"]["defaultQueueType"] == "quorum"
    config = dict(
        line.split(" = ", 1)
        for line in cluster["rabbitmq"]["additionalConfig"].splitlines()
        if " = " in line and not line.lstrip().startswith("#")
    )
    assert config["quorum_queue.continuous_membership_reconciliation.enabled"] == "true"
    assert (
        int(config["quorum_queue.continuous_membership_reconciliation.target_group_size"])
        == cluster["replicas"]
    )
    # A partitioned or paused node rejoins without an operator (what chaos/scaleout.py measured).
    assert config["cluster_partition_handling"] == "autoheal"
