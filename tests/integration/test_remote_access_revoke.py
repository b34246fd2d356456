"""`istio-operator remote-access --revoke` on two real local clusters (no operator running):
it removes the identity `remote-access` made on the remote and the kubeconfig Secret on the
primary, says what it removed, can be run again, and refuses (changing nothing) while a
RemoteIstio still uses the Secret, unless `--force`."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lightkube import ApiError, Client
from lightkube.resources.core_v1 import Secret, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import ClusterRole, ClusterRoleBinding

from istio_operator.localcluster import LocalCluster, Workspace
from tests.operator_harness import (
    RemoteIstioResource,
    apply_crds,
    apply_remote,
    client_for,
    create_namespaces,
    exists,
    remote_access,
)

pytestmark = pytest.mark.cluster

NAME, NAMESPACE = "east", "istio-system"
ROLE, BINDING = "istio-operator-remote", f"istio-operator-remote-{NAMESPACE}"


@dataclass
class Pair:
    primary_cluster: LocalCluster
    primary: Client
    remote: Client
    remote_kubeconfig: Path  # the remote's own (admin) kubeconfig, as the docs use it


@pytest.fixture(scope="module")
def pair(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    primary = workspace.create("revoke-primary")
    remote = workspace.create("revoke-remote")
    try:
        path = tmp_path_factory.mktemp("revoke") / "remote.yaml"
        path.write_text(remote.standalone_kubeconfig())
        client = client_for(primary)
        apply_crds(client)
        create_namespaces(client, NAMESPACE)
        yield Pair(primary, client, client_for(remote), path)
    finally:
        workspace.delete(primary.name)
        workspace.delete(remote.name)


def access(pair: Pair, *args: str) -> subprocess.CompletedProcess[str]:
    return remote_access(pair.primary_cluster, pair.remote_kubeconfig, NAME, *args)


def cluster_scoped(client: Client, kind: type[ClusterRole | ClusterRoleBinding], name: str) -> bool:
    try:
        client.get(kind, name)
    except ApiError as error:
        if error.status.code == 404:
            return False
        raise
    return True


def granted(pair: Pair) -> dict[str, bool]:
    """Which of the objects `remote-access` makes exist, by name."""
    return {
        "binding": cluster_scoped(pair.remote, ClusterRoleBinding, BINDING),
        "role": cluster_scoped(pair.remote, ClusterRole, ROLE),
        "account": exists(pair.remote, ServiceAccount, "istio-operator"),
        "secret": exists(pair.primary, Secret, NAME),
    }


def test_revoke_removes_what_remote_access_made_and_can_run_again(pair: Pair) -> None:
    made = access(pair)
    assert made.returncode == 0, made.stderr
    assert all(granted(pair).values()), granted(pair)

    revoked = access(pair, "--revoke")
    assert revoked.returncode == 0, revoked.stderr
    assert not any(granted(pair).values()), granted(pair)
    for what in (
        f"deleted ClusterRoleBinding {BINDING}",
        f"deleted ServiceAccount {NAMESPACE}/istio-operator",
        f"deleted ClusterRole {ROLE}",
        f"primary: deleted Secret {NAMESPACE}/{NAME}",
    ):
        assert what in revoked.stdout, revoked.stdout

    again = access(pair, "--revoke")
    assert again.returncode == 0, again.stderr
    assert "deleted" not in again.stdout and "already absent" in again.stdout, again.stdout


def test_revoke_refuses_while_a_remote_istio_uses_the_secret_unless_forced(pair: Pair) -> None:
    assert access(pair).returncode == 0
    apply_remote(pair.primary, NAME)
    try:
        refused = access(pair, "--revoke")
        assert refused.returncode == 1
        assert f"RemoteIstio {NAMESPACE}/{NAME}" in refused.stderr
        assert "nothing was changed" in refused.stderr
        assert all(granted(pair).values()), granted(pair)

        forced = access(pair, "--revoke", "--force")
        assert forced.returncode == 0, forced.stderr
        assert not any(granted(pair).values()), granted(pair)
    finally:
        # No operator runs here to take the finalizer off, should one have been set.
        pair.primary.delete(RemoteIstioResource, NAME, namespace=NAMESPACE)


def test_a_role_another_binding_still_uses_is_kept(pair: Pair) -> None:
    assert access(pair).returncode == 0
    other = "mesh-b"
    create_namespaces(pair.primary, other)
    assert access(pair, "-n", other).returncode == 0
    revoked = access(pair, "--revoke")
    assert revoked.returncode == 0, revoked.stderr
    assert f"kept ClusterRole {ROLE} (still bound by {ROLE}-{other})" in revoked.stdout
    assert cluster_scoped(pair.remote, ClusterRole, ROLE)
    last = access(pair, "--revoke", "-n", other)
    assert last.returncode == 0, last.stderr
    assert not cluster_scoped(pair.remote, ClusterRole, ROLE)
