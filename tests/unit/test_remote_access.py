"""`istio-operator remote-access`: the kubeconfig it writes, the objects it applies, and
that the token never shows up in what it reports."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import KubeConfig

from istio_operator.api.keys import ObjectKey
from istio_operator.kube.credentials import (
    CredentialsError,
    Endpoint,
    Token,
    endpoint_of,
    token_kubeconfig,
)
from istio_operator.kube.remotes import kubeconfig_from_secret
from istio_operator.operations import access
from istio_operator.operations.access import (
    AccessReport,
    grant_remote_access,
    kubeconfig_secret,
    remote_manifests,
)
from istio_operator.operations.rbac import policy_rules, remote_rules

SECRET_TOKEN = "s3cr3t-token-value"
CA_PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def write_kubeconfig(directory: Path, cluster: dict[str, Any]) -> Path:
    path = directory / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": {"token": "admin"}}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "ctx",
            }
        )
    )
    return path


def test_endpoint_reads_a_relative_ca_file_inline(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(CA_PEM)
    path = write_kubeconfig(
        tmp_path, {"server": "https://10.0.0.1:6443", "certificate-authority": "ca.crt"}
    )
    endpoint = endpoint_of(KubeConfig.from_file(path))
    assert endpoint == Endpoint("https://10.0.0.1:6443", base64.b64encode(CA_PEM).decode())


def test_endpoint_keeps_inline_ca_data(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path, {"server": "https://x:443", "certificate-authority-data": "Q0E="}
    )
    assert endpoint_of(KubeConfig.from_file(path)).ca_data == "Q0E="


def test_endpoint_with_a_missing_ca_file_is_a_clear_error(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path, {"server": "https://x", "certificate-authority": "gone"})
    with pytest.raises(CredentialsError, match="CA file"):
        endpoint_of(KubeConfig.from_file(path))


def test_the_secret_holds_a_kubeconfig_the_operator_reads() -> None:
    token = Token(SECRET_TOKEN, "2030-01-01T00:00:00Z")
    text = token_kubeconfig("east", Endpoint("https://10.0.0.1:6443", "Q0E="), "sa", token)
    secret = kubeconfig_secret("east", "istio-system", text)
    assert secret["metadata"] == {"name": "east", "namespace": "istio-system"}
    assert list(secret["data"]) == ["east"]
    config = kubeconfig_from_secret(secret).get()
    assert config is not None
    assert config.cluster.server == "https://10.0.0.1:6443"
    assert config.cluster.certificate_auth_data == "Q0E="
    assert config.user is not None and config.user.token == SECRET_TOKEN


def test_token_repr_hides_the_token() -> None:
    assert SECRET_TOKEN not in repr(Token(SECRET_TOKEN, "2030-01-01T00:00:00Z"))


def test_remote_manifests() -> None:
    service_account, role, binding = remote_manifests("mesh")
    assert service_account["metadata"]["name"] == "istio-operator"
    assert service_account["metadata"]["namespace"] == "mesh"
    assert role["metadata"]["name"] == "istio-operator-remote"
    assert binding["metadata"]["name"] == "istio-operator-remote-mesh"
    assert role["rules"] == policy_rules(remote_rules())


def role_verbs(role: dict[str, Any], resource: str) -> dict[str, list[str]]:
    """verb -> the names it is restricted to ([] for all) on a resource of the role."""
    verbs: dict[str, list[str]] = {}
    for rule in role["rules"]:
        if resource in rule["resources"] and "rbac.authorization.k8s.io" in rule["apiGroups"]:
            for verb in rule["verbs"]:
                verbs.setdefault(verb, []).extend(rule.get("resourceNames", []))
    return verbs


def test_the_remote_role_cannot_escalate_and_binds_only_istio_roles() -> None:
    _, role, _ = remote_manifests("mesh")
    for resource in ("clusterroles", "roles"):
        verbs = role_verbs(role, resource)
        assert "escalate" not in verbs and "*" not in verbs, verbs
        assert verbs["bind"], f"bind on every {resource}"
        assert all(name.startswith("istio") for name in verbs["bind"]), verbs["bind"]
    assert "cluster-admin" not in role_verbs(role, "clusterroles")["bind"]


def test_the_remote_role_lets_status_and_dataplane_upgrade_read_and_restart() -> None:
    _, role, _ = remote_manifests("mesh")
    granted = {
        (resource, verb)
        for rule in role["rules"]
        if "apps" in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    for kind in ("deployments", "statefulsets", "daemonsets"):
        assert {(kind, "list"), (kind, "patch")} <= granted
    assert ("replicasets", "list") in granted


class FakeCluster:
    def __init__(self, existing: set[ObjectKey] | None = None) -> None:
        self.existing = existing or set()
        self.applied: list[dict[str, Any]] = []

    async def get(self, key: ObjectKey) -> dict[str, Any] | None:
        return {"metadata": {"name": key.name}} if key in self.existing else None

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.applied.append(manifest)
        data = dict(manifest.get("data") or {})
        if manifest["kind"] == "Secret":
            data["old-key"] = "eA=="  # a key someone else wrote earlier
        return {**manifest, "data": data}


async def test_grant_applies_remote_objects_then_the_secret_and_never_reports_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def fake_token(cluster: Any, namespace: str, name: str, seconds: int) -> Token:
        assert (namespace, name, seconds) == ("istio-system", "istio-operator", 3600)
        return Token(SECRET_TOKEN, "2030-01-01T00:00:00Z")

    monkeypatch.setattr(access, "request_token", fake_token)
    remote, primary = FakeCluster(), FakeCluster()
    report = await grant_remote_access(
        remote,  # type: ignore[arg-type]
        primary,  # type: ignore[arg-type]
        name="east",
        namespace="istio-system",
        endpoint=Endpoint("https://10.0.0.1:6443", "Q0E="),
        expiration_seconds=3600,
    )
    assert [m["kind"] for m in remote.applied] == [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
    ]
    (secret,) = primary.applied
    assert SECRET_TOKEN in base64.b64decode(secret["data"]["east"]).decode()
    assert isinstance(report, AccessReport)
    assert report.token_expires == "2030-01-01T00:00:00Z"
    assert report.other_secret_keys == ("old-key",)
    assert SECRET_TOKEN not in repr(report)
    assert all(SECRET_TOKEN not in action for action in report.actions)
    assert report.actions[0] == "remote: created Namespace istio-system"


async def test_an_existing_namespace_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake_token(*_: Any) -> Token:
        return Token(SECRET_TOKEN, "")

    monkeypatch.setattr(access, "request_token", fake_token)
    remote = FakeCluster({ObjectKey("v1", "Namespace", "", "istio-system")})
    report = await grant_remote_access(
        remote,  # type: ignore[arg-type]
        FakeCluster(),  # type: ignore[arg-type]
        name="east",
        namespace="istio-system",
        endpoint=Endpoint("https://x"),
    )
    assert "Namespace" not in [m["kind"] for m in remote.applied]
    assert "expires never" in report.actions[-2]


class RevokeCluster:
    """Objects by key; records deletions."""

    def __init__(self, objects: dict[ObjectKey, dict[str, Any]]) -> None:
        self.objects = objects
        self.deleted: list[ObjectKey] = []

    async def get(self, key: ObjectKey) -> dict[str, Any] | None:
        return self.objects.get(key)

    async def delete(self, key: ObjectKey) -> None:
        self.deleted.append(key)
        self.objects.pop(key)

    async def list_all(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        return [o for k, o in self.objects.items() if k.kind == kind]


def granted_remote(namespace: str = "istio-system") -> dict[ObjectKey, dict[str, Any]]:
    return {
        ObjectKey(
            m["apiVersion"], m["kind"], m["metadata"].get("namespace", ""), m["metadata"]["name"]
        ): m
        for m in remote_manifests(namespace)
    }


SECRET_KEY = ObjectKey("v1", "Secret", "istio-system", "east")
REMOTE_ISTIO = ObjectKey("istio.banzaicloud.io/v1beta1", "RemoteIstio", "istio-system", "east")


async def test_revoke_refuses_while_the_remote_istio_exists_and_changes_nothing() -> None:
    remote = RevokeCluster(granted_remote())
    primary = RevokeCluster({SECRET_KEY: {}, REMOTE_ISTIO: {"metadata": {}}})
    with pytest.raises(access.AccessInUseError, match="nothing was changed"):
        await access.revoke_remote_access(
            remote,  # type: ignore[arg-type]
            primary,  # type: ignore[arg-type]
            name="east",
            namespace="istio-system",
        )
    assert remote.deleted == primary.deleted == []


async def test_revoke_keeps_the_role_another_binding_uses_and_what_is_not_its_own() -> None:
    objects = {**granted_remote(), **granted_remote("other")}
    account = ObjectKey("v1", "ServiceAccount", "istio-system", "istio-operator")
    objects[account] = {"metadata": {"name": "istio-operator", "labels": {}}}  # someone else's
    remote, primary = RevokeCluster(objects), RevokeCluster({SECRET_KEY: {}})
    actions = await access.revoke_remote_access(
        remote,  # type: ignore[arg-type]
        primary,  # type: ignore[arg-type]
        name="east",
        namespace="istio-system",
    )
    assert [k.kind for k in remote.deleted] == ["ClusterRoleBinding"]
    assert primary.deleted == [SECRET_KEY]
    assert any("kept ClusterRole istio-operator-remote" in a for a in actions)
    assert any("kept ServiceAccount" in a for a in actions)
