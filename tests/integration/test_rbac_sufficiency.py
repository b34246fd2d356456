"""The operator's RBAC is sufficient, and no more: the operator, run with a token of its
own ServiceAccount from deploy/base (not the admin), installs Istio 1.2.5 and upgrades it
to 1.3.0 on a primary, and, with the kubeconfig Secret `istio-operator remote-access`
writes (a ServiceAccount with only the remote rules), on a remote too; `status` and
`dataplane-upgrade --all-clusters` run with the same identities without a 403; neither
identity can grant itself more (no `*` role, no binding of a role it does not hold);
deploy/remote applied over `remote-access`'s objects shares their rules without conflict.

Own clusters, so that no other test's Istio resources interfere; deleted at the end."""

from __future__ import annotations

import base64
import functools
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import ApiError, Client, KubeConfig
from lightkube.codecs import load_all_yaml
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.authorization_v1 import ResourceAttributes, SelfSubjectAccessReviewSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import PolicyRule, RoleRef, Subject
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.authorization_v1 import SelfSubjectAccessReview
from lightkube.resources.core_v1 import Namespace, Secret, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import ClusterRole, ClusterRoleBinding

from istio_operator.cli.demo import (
    PRIMARY_COMPONENTS,
    REMOTE_COMPONENTS,
    deploy_echo,
    echo_manifest,
)
from istio_operator.kube.blocking import BlockingClient
from istio_operator.kube.credentials import Token, endpoint_of, token_kubeconfig
from istio_operator.localcluster import LocalCluster, Workspace, find_binaries
from istio_operator.operations.dataplane import RESTARTED_AT
from tests.operator_harness import (
    OPERATOR_ARGS,
    REPO,
    Plane,
    apply_istio,
    apply_remote,
    cli,
    from_dict,
    images,
    istio_body,
    istio_status,
    labels_of,
    meta,
    name_of,
    operator_plane,
    remote_access,
    remote_mesh_at,
    wait_established,
    wait_for,
    write_requests,
)

pytestmark = pytest.mark.cluster

PRIMARY_NAME, REMOTE_NAME = "rbac-primary", "rbac-remote"
REMOTE = "remote"  # the RemoteIstio, its Secret and the Secret's key
OPERATOR_NAMESPACE = "istio-operator"  # deploy/base's namespace
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:istio-operator"
REMOTE_USER = "system:serviceaccount:istio-system:istio-operator"
# The operator's own workload in deploy/base: the operator runs here as a process instead.
WORKLOAD_KINDS = ("Deployment", "PodDisruptionBudget", "Service")


def apply_operator_identity(client: Client) -> None:
    """deploy/base's CRDs, namespace, ServiceAccount, ClusterRole, leader-election Role and
    bindings (in kustomize's order: namespaces and CRDs first)."""
    kubectl = find_binaries()["kubectl"]
    rendered = subprocess.run(
        [str(kubectl), "kustomize", str(REPO / "deploy/base")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    objects = [o for o in load_all_yaml(rendered) if o.kind not in WORKLOAD_KINDS]
    for obj in objects:
        client.apply(obj, force=True)
    wait_established(client, [name_of(o) for o in objects if o.kind == "CustomResourceDefinition"])


def service_account_kubeconfig(cluster: LocalCluster, client: Client, path: Path) -> Path:
    """A kubeconfig of the operator's ServiceAccount: the cluster's server and CA, a
    TokenRequest token as the user."""
    request = ServiceAccount.Token(
        metadata=ObjectMeta(name="istio-operator", namespace=OPERATOR_NAMESPACE),
        spec=TokenRequestSpec(audiences=[], expirationSeconds=3600),
    )
    answer = client.create(request, "istio-operator", namespace=OPERATOR_NAMESPACE)
    assert answer.status is not None
    token = Token(str(answer.status.token), "")
    endpoint = endpoint_of(KubeConfig.from_file(str(cluster.kubeconfig)))
    path.write_text(token_kubeconfig(cluster.name, endpoint, "istio-operator", token))
    return path


def grant_remote_access(
    remote: LocalCluster, primary: LocalCluster
) -> subprocess.CompletedProcess[str]:
    """`istio-operator remote-access` for the remote, its Secret written on the primary."""
    return remote_access(primary, remote.kubeconfig, REMOTE)


@pytest.fixture(scope="module")
def mesh(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    directory = tmp_path_factory.mktemp("rbac")
    with operator_plane(
        workspace,
        directory,
        PRIMARY_NAME,
        {REMOTE: REMOTE_NAME},
        install=apply_operator_identity,
        remote_namespaces=(),
        citadel_ca=True,
        operator_args=(*OPERATOR_ARGS, "--leader-election-namespace", OPERATOR_NAMESPACE),
        tail=150,
    ) as mesh:
        access = grant_remote_access(mesh.remote_cluster, mesh.primary_cluster)
        assert access.returncode == 0, access.stderr
        print(access.stdout)
        mesh.operator.kubeconfig = service_account_kubeconfig(
            mesh.primary_cluster, mesh.primary, directory / "operator-kubeconfig.yaml"
        )
        mesh.operator.start()
        yield mesh


def mesh_available_at(mesh: Plane, version: str) -> bool:
    return remote_mesh_at(mesh.primary, mesh.remote, REMOTE, version)


def assert_nothing_forbidden(mesh: Plane) -> None:
    mesh.operator.assert_running()
    log = mesh.operator.log.read_text(errors="replace").lower()
    assert "forbidden" not in log, mesh.operator.tail(100)


def writers(cluster: LocalCluster, since: float, namespace: str) -> set[str]:
    """Who wrote the operator's objects in the namespace."""
    return {
        e["user"]["username"]
        for e in write_requests(cluster, since)
        if (e.get("objectRef") or {}).get("namespace") == namespace
        and (e.get("objectRef") or {}).get("resource") in {"deployments", "configmaps", "services"}
    }


def test_the_service_accounts_install_1_2_5_on_the_primary_and_the_remote(mesh: Plane) -> None:
    deploy_echo(BlockingClient(mesh.primary), "1.2.5", replicas=1)
    deploy_echo(BlockingClient(mesh.remote), "1.2.5", replicas=1)
    apply_istio(mesh.primary, istio_body("1.2.5", meshExpansion=True))
    apply_remote(mesh.primary, REMOTE)
    wait_for("the mesh at 1.2.5", lambda: mesh_available_at(mesh, "1.2.5"), timeout=240)
    wait_for(  # the Istio resource's summary of its remotes follows the RemoteIstio's status
        "the remote Available in the Istio status",
        lambda: istio_status(mesh.primary).get("remotes") == {REMOTE: "Available"},
    )
    assert_nothing_forbidden(mesh)
    started = mesh.operator.started_at
    assert writers(mesh.primary_cluster, started, "istio-system") == {OPERATOR_USER}
    assert writers(mesh.remote_cluster, started, "istio-system") == {REMOTE_USER}


def test_the_service_accounts_upgrade_to_1_3_0(mesh: Plane) -> None:
    wait_for("the mesh at 1.2.5", lambda: mesh_available_at(mesh, "1.2.5"), timeout=240)
    apply_istio(mesh.primary, istio_body("1.3.0", meshExpansion=True))
    wait_for("the mesh at 1.3.0", lambda: mesh_available_at(mesh, "1.3.0"), timeout=240)
    assert_nothing_forbidden(mesh)


def test_status_reads_the_remote_with_the_remote_access_identity(mesh: Plane) -> None:
    wait_for("the mesh at 1.3.0", lambda: mesh_available_at(mesh, "1.3.0"), timeout=240)
    result = cli("status", "--kubeconfig", str(mesh.primary_cluster.kubeconfig), "-o", "json")
    assert result.returncode == 0, result.stderr
    primary, remote = json.loads(result.stdout)["clusters"]
    assert (remote["name"], remote["reachable"], remote["dataPlaneError"]) == (REMOTE, True, None)
    assert remote["resource"]["status"] == "Available"
    for cluster, expected in ((primary, PRIMARY_COMPONENTS), (remote, REMOTE_COMPONENTS)):
        assert {i for c in cluster["components"] for i in c["images"]} == images(expected, "1.3.0")
        assert all(c["current"] and c["state"] == "Available" for c in cluster["components"])
        (sidecars,) = [g for g in cluster["dataPlane"] if g["namespace"] == "echo"]
        assert (sidecars["version"], sidecars["current"]) == ("1.2.5", False)
    print(cli("status", "--kubeconfig", str(mesh.primary_cluster.kubeconfig)).stdout)


def test_remote_access_again_renews_the_token_and_keeps_the_mesh(mesh: Plane) -> None:
    again = grant_remote_access(mesh.remote_cluster, mesh.primary_cluster)
    assert again.returncode == 0, again.stderr
    secret = mesh.primary.get(Secret, REMOTE, namespace="istio-system")
    kubeconfig = yaml.safe_load(base64.b64decode((secret.data or {})[REMOTE]))
    token = kubeconfig["users"][0]["user"]["token"]
    assert token not in again.stdout + again.stderr
    assert kubeconfig["clusters"][0]["cluster"]["server"] in again.stdout
    assert labels_of(secret).get("istio/multiCluster") == "true"  # the operator's, kept
    wait_for("the mesh at 1.3.0", lambda: mesh_available_at(mesh, "1.3.0"), timeout=120)
    assert_nothing_forbidden(mesh)


# -- the commands, with the operator's identities ----------------------------------------------

STATEFUL = "echo-sts"  # a namespace with a StatefulSet whose sidecar is outdated


def deploy_stateful_echo(client: Client, proxy_version: str) -> None:
    """The echo as a StatefulSet: `dataplane-upgrade` reaches its pods without ReplicaSets."""
    manifest = echo_manifest(proxy_version, replicas=1)
    manifest["kind"] = "StatefulSet"
    manifest["metadata"]["namespace"] = STATEFUL
    manifest["spec"]["serviceName"] = "echo"
    client.apply(Namespace(metadata=ObjectMeta(name=STATEFUL)))
    client.apply(from_dict(StatefulSet, manifest), force=True)


def stateful_echo_ready(client: Client) -> bool:
    status = client.get(StatefulSet, "echo", namespace=STATEFUL).status
    return bool(status and status.readyReplicas == 1)


def restarted(client: Client, kind: Any, namespace: str) -> bool:
    template = client.get(kind, "echo", namespace=namespace).spec.template
    return RESTARTED_AT in ((template.metadata and template.metadata.annotations) or {})


def as_operator(mesh: Plane, *args: str) -> subprocess.CompletedProcess[str]:
    """A command with the operator's identities: its ServiceAccount on the primary, the
    remote-access token (from the kubeconfig Secret) on the remote."""
    return cli(*args, "--kubeconfig", str(mesh.operator.kubeconfig))


def assert_no_403(result: subprocess.CompletedProcess[str]) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "403" not in output and "forbidden" not in output.lower(), output


def test_status_with_the_operators_identities(mesh: Plane) -> None:
    wait_for("the mesh at 1.3.0", lambda: mesh_available_at(mesh, "1.3.0"), timeout=240)
    result = as_operator(mesh, "status", "-o", "json")
    assert_no_403(result)
    primary, remote = json.loads(result.stdout)["clusters"]
    for cluster in (primary, remote):
        assert (cluster["reachable"], cluster["dataPlaneError"]) == (True, None), cluster
        assert cluster["components"], cluster
        assert [g["version"] for g in cluster["dataPlane"] if g["namespace"] == "echo"] == ["1.2.5"]


def test_dataplane_upgrade_with_the_operators_identities(mesh: Plane) -> None:
    wait_for("the mesh at 1.3.0", lambda: mesh_available_at(mesh, "1.3.0"), timeout=240)
    for client in (mesh.primary, mesh.remote):
        deploy_stateful_echo(client, "1.2.5")
    for client in (mesh.primary, mesh.remote):
        wait_for("the stateful echo ready", functools.partial(stateful_echo_ready, client))

    dry_run = as_operator(mesh, "dataplane-upgrade", "--all-clusters", "--dry-run")
    assert_no_403(dry_run)
    print(dry_run.stdout)
    for cluster in ("primary", f"{REMOTE} (remote)"):
        assert f"CLUSTER {cluster}: control plane 1.3.0, 2 workloads to restart" in dry_run.stdout
    assert dry_run.stdout.count("would restart") == 4, dry_run.stdout

    upgrade = as_operator(mesh, "dataplane-upgrade", "--all-clusters")
    assert_no_403(upgrade)
    print(upgrade.stdout)
    for client in (mesh.primary, mesh.remote):
        assert restarted(client, Deployment, "echo")
        assert restarted(client, StatefulSet, STATEFUL)


# -- no privilege escalation -------------------------------------------------------------------

ISTIO_ROLE = "istio-citadel-cluster-role"  # rendered for the primary and for a remote
RBAC_API = "rbac.authorization.k8s.io"


def remote_access_client(mesh: Plane, directory: Path) -> Client:
    """The remote, as the identity `remote-access` created (the primary's Secret)."""
    secret = mesh.primary.get(Secret, REMOTE, namespace="istio-system")
    path = directory / "remote-access-kubeconfig.yaml"
    path.write_bytes(base64.b64decode((secret.data or {})[REMOTE]))
    return Client(KubeConfig.from_file(str(path)), field_manager="escalation-attempt")


def operator_client(mesh: Plane) -> Client:
    return Client(
        KubeConfig.from_file(str(mesh.operator.kubeconfig)), field_manager="escalation-attempt"
    )


def allowed(client: Client, verb: str, resource: str, group: str = "*", name: str = "") -> bool:
    """`kubectl auth can-i` for the client's own identity."""
    attributes = ResourceAttributes(verb=verb, resource=resource, group=group, name=name or None)
    review = SelfSubjectAccessReview(
        spec=SelfSubjectAccessReviewSpec(resourceAttributes=attributes)
    )
    status = client.create(review).status
    return bool(status and status.allowed)


def everything_role(name: str) -> ClusterRole:
    return ClusterRole(
        metadata=ObjectMeta(name=name),
        rules=[PolicyRule(apiGroups=["*"], resources=["*"], verbs=["*"])],
    )


def binding_to_self(role: str, subject: tuple[str, str]) -> ClusterRoleBinding:
    namespace, name = subject
    return ClusterRoleBinding(
        metadata=ObjectMeta(name=f"escalation-{role}"),
        roleRef=RoleRef(apiGroup=RBAC_API, kind="ClusterRole", name=role),
        subjects=[Subject(kind="ServiceAccount", name=name, namespace=namespace)],
    )


def assert_forbidden(attempt: Callable[[], Any]) -> None:
    with pytest.raises(ApiError) as refused:
        attempt()
    assert refused.value.status.code == 403, refused.value.status


@pytest.mark.parametrize("cluster", ["primary", "remote"])
def test_the_operators_identity_cannot_grant_itself_more(
    mesh: Plane, cluster: str, tmp_path: Path
) -> None:
    wait_for("the mesh at 1.3.0", lambda: mesh_available_at(mesh, "1.3.0"), timeout=240)
    if cluster == "primary":
        client, subject = operator_client(mesh), (OPERATOR_NAMESPACE, "istio-operator")
    else:
        client, subject = remote_access_client(mesh, tmp_path), ("istio-system", "istio-operator")
    assert not allowed(client, "*", "*")
    assert not allowed(client, "escalate", "clusterroles", RBAC_API)
    assert not allowed(client, "bind", "clusterroles", RBAC_API, "cluster-admin")
    assert allowed(client, "bind", "clusterroles", RBAC_API, ISTIO_ROLE)  # what reconcile binds

    # A role with every right, created (POST) or server-side applied, under a new name or
    # under the name of a role the operator renders (dry run: refused or not, nothing
    # changes), is refused: the operator holds no `escalate`.
    assert_forbidden(lambda: client.create(everything_role("escalated")))
    assert_forbidden(lambda: client.apply(everything_role("escalated"), force=True))
    assert_forbidden(lambda: client.apply(everything_role(ISTIO_ROLE), force=True, dry_run=True))
    # Binding a role it does not hold is refused, whichever way.
    assert_forbidden(lambda: client.create(binding_to_self("cluster-admin", subject)))
    assert_forbidden(lambda: client.apply(binding_to_self("cluster-admin", subject), force=True))
    assert not allowed(client, "*", "*")


def test_deploy_remote_applies_over_remote_access_without_conflict(mesh: Plane) -> None:
    """Both write the ClusterRole istio-operator-remote: the same rules, so that a
    server-side apply without --force-conflicts shares the field instead of failing."""
    kubectl = str(find_binaries()["kubectl"])
    remote = ("--kubeconfig", str(mesh.remote_cluster.kubeconfig))
    applied = subprocess.run(
        [kubectl, *remote, "apply", "--server-side", "-k", str(REPO / "deploy/remote")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    role = mesh.remote.get(ClusterRole, "istio-operator-remote")
    owners = {
        m.manager
        for m in meta(role).managedFields or []
        if "f:rules" in json.dumps(m.fieldsV1 or {})
    }
    assert owners == {"kubectl", "istio-operator-remote-access"}, owners
    again = grant_remote_access(mesh.remote_cluster, mesh.primary_cluster)
    assert again.returncode == 0, again.stderr
    wait_for("the mesh at 1.3.0", lambda: mesh_available_at(mesh, "1.3.0"), timeout=120)
    assert_nothing_forbidden(mesh)
