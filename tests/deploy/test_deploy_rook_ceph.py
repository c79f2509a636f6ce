"""Checks of the Rook-Ceph object-store component: the dev-rook-ceph overlay renders without MinIO, validates,
gives every service its own RGW user's keys, creates the archive bucket with object lock, and the
CephObjectStore renders into the Rook cluster's namespace."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest
from deploy_support import K8S, SERVICES, Manifest, docroute_deployments, find, generated, one, render

K8S_VERSION = "1.32.0"
CEPH_CRDS = {("ceph.rook.io/v1", "CephObjectStore"), ("ceph.rook.io/v1", "CephObjectStoreUser")}
OTHER_CRDS = {
    ("rabbitmq.com/v1beta1", kind)
    for kind in ("RabbitmqCluster", "Vhost", "Exchange", "Policy", "User", "Permission")
} | {("monitoring.coreos.com/v1", "PodMonitor")}
RGW_ENDPOINT = "rook-ceph-rgw-docroute.rook-ceph.svc:80"


@pytest.fixture(scope="module")
def manifests() -> list[Manifest]:
    return render(K8S / "overlays" / "dev-rook-ceph")


def test_the_overlay_validates_and_has_no_minio_left(manifests):
    errors = []
    for m in manifests:
        if (m["apiVersion"], m["kind"]) in CEPH_CRDS | OTHER_CRDS:
            continue
        try:
            kubernetes_validate.validate(m, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{m['kind']}/{m['metadata']['name']}: {exc.message}")
    assert not errors, "\n".join(errors)
    assert not [m["metadata"]["name"] for m in manifests if "minio" in json.dumps(m).lower()]


def test_services_talk_to_the_gateway_with_their_own_users_keys(manifests):
    config = generated(manifests, "ConfigMap", "docroute-common")["data"]
    assert config["DOCROUTE_S3_ENDPOINT"] == RGW_ENDPOINT
    users = {u["metadata"]["name"]: u for u in find(manifests, "CephObjectStoreUser")}
    assert set(users) == {"docroute-setup", *(f"docroute-{svc}" for svc in SERVICES)}
    assert all(
        u["spec"] == {**u["spec"], "store": "docroute", "clusterNamespace": "rook-ceph"}
        for u in users.values()
    )
    everything = docroute_deployments(manifests)
    deployments = [d for d in everything if d["metadata"]["labels"]["app.kubernetes.io/name"] in SERVICES]
    assert len(deployments) == 2 * len(SERVICES)
    # The console keeps nothing in the object store: it gets no keys at all.
    (console,) = [d for d in everything if d not in deployments]
    assert "S3" not in json.dumps(console["spec"]["template"]["spec"]["containers"][0])
    for deployment in deployments:
        svc = deployment["metadata"]["labels"]["app.kubernetes.io/name"]
        env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        secret = f"rook-ceph-object-user-docroute-docroute-{svc}"
        assert env["DOCROUTE_S3_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
            "name": secret,
            "key": "AccessKey",
        }
        assert env["DOCROUTE_S3_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {
            "name": secret,
            "key": "SecretKey",
        }


def test_the_setup_job_makes_the_archive_bucket_with_object_lock_and_staging_without(manifests):
    job = one(manifests, "Job", "docroute-rgw-setup")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["/bin/sh", "/setup/setup.sh"]
    env = {e["name"]: e for e in container["env"]}
    assert env["S3_ENDPOINT"]["value"] == f"http://{RGW_ENDPOINT}"
    assert (
        env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"]
        == "rook-ceph-object-user-docroute-docroute-setup"
    )
    data = generated(manifests, "ConfigMap", "docroute-rgw-setup")["data"]
    script = data["setup.sh"]
    assert "make docroute-archive lock" in script and "make docroute-staging\n" in script
    assert "make docroute-capability-probe-lock lock" in script
    assert 's3 create-bucket --bucket "$1" --object-lock-enabled-for-bucket' in script
    assert (
        's3 get-object-lock-configuration --bucket "$1"' in script
    )  # a lock bucket made by hand fails loudly


def test_bucket_policies_keep_the_archive_undeletable_even_for_the_archive(manifests):
    data = generated(manifests, "ConfigMap", "docroute-rgw-setup")["data"]
    archive = json.loads(data["archive-policy.json"])["Statement"]
    assert [s["Principal"]["AWS"] for s in archive] == [["arn:aws:iam:::user/docroute-archive"]]
    actions = {a for s in archive for a in s["Action"]}
    assert "s3:PutObjectRetention" in actions and "s3:PutObjectLegalHold" in actions
    assert not actions & {"s3:BypassGovernanceRetention", "s3:DeleteObject", "s3:DeleteObjectVersion"}
    staging = json.loads(data["staging-policy.json"])["Statement"]
    assert {p for s in staging for p in s["Principal"]["AWS"]} == {
        f"arn:aws:iam:::user/docroute-{svc}" for svc in SERVICES
    }
    probe = json.loads(data["probe-policy.json"].replace("BUCKET", "docroute-capability-probe"))["Statement"]
    assert "s3:BypassGovernanceRetention" in probe[0]["Action"]  # only on the probe buckets


def test_services_reach_the_gateway_pods_and_no_minio(manifests):
    egress = one(manifests, "NetworkPolicy", "docroute-egress")["spec"]["egress"]
    ports = sorted(p["port"] for rule in egress for p in rule["ports"])
    assert ports == [53, 53, 5432, 5671, 5672, 8080]
    rgw = egress[2]["to"][0]
    assert rgw["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "rook-ceph"}
    assert rgw["podSelector"]["matchLabels"] == {"app": "rook-ceph-rgw", "rook_object_store": "docroute"}


def test_the_ceph_object_store_renders_into_the_rook_namespace_and_admits_docroute_users():
    store = one(render(K8S / "rook-ceph"), "CephObjectStore", "docroute")
    assert store["metadata"]["namespace"] == "rook-ceph"
    assert store["spec"]["dataPool"]["replicated"]["size"] == 3
    assert {"docroute", "docroute-dev"} <= set(store["spec"]["allowUsersInNamespaces"])
    assert store["spec"]["gateway"]["port"] == 80
