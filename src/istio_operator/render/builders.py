"""Shared builders for the Kubernetes objects every component renders.

Components describe what differs (names, labels, containers, rules); these
functions produce the objects in today's API versions, so no component spells
out a Deployment, Service, HPA, PDB or RBAC object by hand.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Manifest = dict[str, Any]

# Pod annotations every control-plane pod carries: never inject a sidecar into it.
CONTROL_PLANE_POD_ANNOTATIONS = {"sidecar.istio.io/inject": "false"}
# The rolling strategy of control-plane Deployments: surge one, never go below the count.
SURGE_ONE = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
HPA_CPU_TARGET = 80


def metadata(
    name: str,
    namespace: str | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Manifest:
    meta: Manifest = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def kube_object(
    api_version: str,
    kind: str,
    name: str,
    namespace: str | None,
    labels: Mapping[str, str] | None,
    **body: Any,
) -> Manifest:
    """An object of `kind`: its type, its metadata, then `body`'s fields in their order."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": metadata(name, namespace, labels),
        **body,
    }


RBAC_API = "rbac.authorization.k8s.io/v1"


# --- RBAC -------------------------------------------------------------------


def rule(api_groups: Sequence[str], resources: Sequence[str], verbs: Sequence[str]) -> Manifest:
    return {"apiGroups": list(api_groups), "resources": list(resources), "verbs": list(verbs)}


READ = ("get", "list", "watch")


def service_account(name: str, namespace: str, labels: Mapping[str, str]) -> Manifest:
    return kube_object("v1", "ServiceAccount", name, namespace, labels)


def cluster_role(name: str, labels: Mapping[str, str], rules: Iterable[Manifest]) -> Manifest:
    return kube_object(RBAC_API, "ClusterRole", name, None, labels, rules=list(rules))


def _binding(
    kind: str,
    name: str,
    namespace: str | None,
    labels: Mapping[str, str],
    role_kind: str,
    role: str,
    service_account_name: str,
    service_account_namespace: str,
) -> Manifest:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": metadata(name, namespace, labels),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [
            {
                "kind": "ServiceAccount",
                "name": service_account_name,
                "namespace": service_account_namespace,
            }
        ],
    }


def cluster_role_binding(
    name: str, labels: Mapping[str, str], role: str, service_account_name: str, namespace: str
) -> Manifest:
    return _binding(
        "ClusterRoleBinding",
        name,
        None,
        labels,
        "ClusterRole",
        role,
        service_account_name,
        namespace,
    )


def role(
    name: str, namespace: str, labels: Mapping[str, str], rules: Iterable[Manifest]
) -> Manifest:
    return kube_object(RBAC_API, "Role", name, namespace, labels, rules=list(rules))


def role_binding(
    name: str, namespace: str, labels: Mapping[str, str], role: str, service_account_name: str
) -> Manifest:
    return _binding(
        "RoleBinding", name, namespace, labels, "Role", role, service_account_name, namespace
    )


def rbac_for(
    service_account_name: str,
    role_name: str,
    binding_name: str,
    namespace: str,
    labels: Mapping[str, str],
    rules: Iterable[Manifest],
) -> list[Manifest]:
    """A ServiceAccount, a ClusterRole and the ClusterRoleBinding joining them."""
    return [
        service_account(service_account_name, namespace, labels),
        cluster_role(role_name, labels, rules),
        cluster_role_binding(binding_name, labels, role_name, service_account_name, namespace),
    ]


def role_names(prefix: str) -> tuple[str, str]:
    """The usual names of a component's ClusterRole and of its binding."""
    return f"{prefix}-cluster-role", f"{prefix}-cluster-role-binding"


# --- containers and pods ------------------------------------------------------


def env(name: str, value: object) -> Manifest:
    if isinstance(value, bool):
        value = "true" if value else "false"
    return {"name": name, "value": str(value)}


def env_field(name: str, field_path: str) -> Manifest:
    return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": field_path}}}


POD_NAME = env_field("POD_NAME", "metadata.name")
POD_NAMESPACE = env_field("POD_NAMESPACE", "metadata.namespace")
INSTANCE_IP = env_field("INSTANCE_IP", "status.podIP")
HOST_IP = env_field("HOST_IP", "status.hostIP")


def unique_env(variables: Iterable[Manifest]) -> list[Manifest]:
    """Env vars with later definitions of a name replacing earlier ones, in place.

    A container's env is keyed by name under server-side apply, so a name may
    appear only once; the value the kubelet would have used (the last) is kept.
    """
    by_name: dict[str, Manifest] = {}
    for variable in variables:
        by_name.pop(variable["name"], None)
        by_name[variable["name"]] = variable
    return list(by_name.values())


def container_port(port: int, name: str | None = None, protocol: str = "TCP") -> Manifest:
    result: Manifest = {"containerPort": port, "protocol": protocol}
    if name:
        result["name"] = name
    return result


def unique_container_ports(ports: Iterable[Manifest]) -> list[Manifest]:
    """Container ports with duplicates of (containerPort, protocol) dropped."""
    seen: set[tuple[int, str]] = set()
    result = []
    for port in ports:
        key = (port["containerPort"], port.get("protocol", "TCP"))
        if key not in seen:
            seen.add(key)
            result.append(port)
    return result


def http_probe(
    path: str,
    port: int,
    initial_delay: int,
    period: int,
    timeout: int = 1,
    failure_threshold: int | None = None,
) -> Manifest:
    probe: Manifest = {
        "httpGet": {"path": path, "port": port, "scheme": "HTTP"},
        "initialDelaySeconds": initial_delay,
        "periodSeconds": period,
        "timeoutSeconds": timeout,
    }
    if failure_threshold is not None:
        probe["failureThreshold"] = failure_threshold
    return probe


def exec_probe(command: Sequence[str], initial_delay: int, period: int) -> Manifest:
    return {
        "exec": {"command": list(command)},
        "initialDelaySeconds": initial_delay,
        "periodSeconds": period,
    }


def container(
    name: str,
    image: str,
    pull_policy: str,
    *,
    args: Sequence[str] = (),
    command: Sequence[str] = (),
    ports: Iterable[Manifest] = (),
    env_vars: Iterable[Manifest] = (),
    resources: Mapping[str, Any] | None = None,
    mounts: Iterable[Manifest] = (),
    readiness: Manifest | None = None,
    liveness: Manifest | None = None,
    security_context: Manifest | None = None,
) -> Manifest:
    result: Manifest = {"name": name, "image": image, "imagePullPolicy": pull_policy}
    if command:
        result["command"] = list(command)
    if args:
        result["args"] = list(args)
    port_list = unique_container_ports(ports)
    if port_list:
        result["ports"] = port_list
    env_list = unique_env(env_vars)
    if env_list:
        result["env"] = env_list
    if resources:
        result["resources"] = dict(resources)
    mount_list = list(mounts)
    if mount_list:
        result["volumeMounts"] = mount_list
    if readiness:
        result["readinessProbe"] = readiness
    if liveness:
        result["livenessProbe"] = liveness
    if security_context:
        result["securityContext"] = security_context
    return result


def mount(name: str, path: str, read_only: bool = False) -> Manifest:
    result: Manifest = {"name": name, "mountPath": path}
    if read_only:
        result["readOnly"] = True
    return result


def secret_volume(name: str, secret: str, optional: bool = False) -> Manifest:
    source: Manifest = {"secretName": secret}
    if optional:
        source["optional"] = True
    return {"name": name, "secret": source}


def config_map_volume(
    name: str, config_map: str, items: Mapping[str, str] | None = None
) -> Manifest:
    source: Manifest = {"name": config_map}
    if items:
        source["items"] = [{"key": key, "path": path} for key, path in items.items()]
    return {"name": name, "configMap": source}


def host_path_volume(name: str, path: str) -> Manifest:
    return {"name": name, "hostPath": {"path": path}}


def empty_dir_volume(name: str, medium: str | None = None) -> Manifest:
    return {"name": name, "emptyDir": {"medium": medium} if medium else {}}


def token_volume(name: str, audience: str, path: str, expiration: int = 43200) -> Manifest:
    return {
        "name": name,
        "projected": {
            "sources": [
                {
                    "serviceAccountToken": {
                        "audience": audience,
                        "expirationSeconds": expiration,
                        "path": path,
                    }
                }
            ]
        },
    }


def pod_spec(
    service_account_name: str,
    containers: Sequence[Manifest],
    *,
    init_containers: Sequence[Manifest] = (),
    volumes: Iterable[Manifest] = (),
    node_selector: Mapping[str, str] | None = None,
    affinity: Mapping[str, Any] | None = None,
    tolerations: Sequence[Mapping[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Manifest:
    spec: Manifest = {"serviceAccountName": service_account_name}
    if extra:
        spec.update(extra)
    if init_containers:
        spec["initContainers"] = list(init_containers)
    spec["containers"] = list(containers)
    volume_list = list(volumes)
    if volume_list:
        spec["volumes"] = volume_list
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if affinity:
        spec["affinity"] = dict(affinity)
    if tolerations:
        spec["tolerations"] = [dict(t) for t in tolerations]
    return spec


def _template(
    pod_labels: Mapping[str, str], annotations: Mapping[str, str], spec: Manifest
) -> Manifest:
    meta: Manifest = {"labels": dict(pod_labels)}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"metadata": meta, "spec": spec}


def deployment(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    selector: Mapping[str, str],
    pod: Manifest,
    *,
    replicas: int | None,
    strategy: Mapping[str, Any] | None = SURGE_ONE,
    pod_labels: Mapping[str, str] | None = None,
    pod_annotations: Mapping[str, str] = CONTROL_PLANE_POD_ANNOTATIONS,
) -> Manifest:
    """A Deployment; `replicas=None` leaves the count to an HPA."""
    spec: Manifest = {}
    if replicas is not None:
        spec["replicas"] = replicas
    spec["selector"] = {"matchLabels": dict(selector)}
    if strategy is not None:
        spec["strategy"] = dict(strategy)
    spec["template"] = _template({**selector, **(pod_labels or {})}, pod_annotations, pod)
    return kube_object("apps/v1", "Deployment", name, namespace, labels, spec=spec)


# DaemonSets replace one node's pod at a time.
NODE_BY_NODE = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}


def daemon_set(
    name: str, namespace: str, labels: Mapping[str, str], selector: Mapping[str, str], pod: Manifest
) -> Manifest:
    template = _template(selector, CONTROL_PLANE_POD_ANNOTATIONS, pod)
    spec = {
        "selector": {"matchLabels": dict(selector)},
        "updateStrategy": copy.deepcopy(NODE_BY_NODE),
        "template": template,
    }
    return kube_object("apps/v1", "DaemonSet", name, namespace, labels, spec=spec)


# --- services, scaling, disruption ---------------------------------------------


def service_port(
    name: str | None,
    port: int,
    *,
    target_port: int | str | None = None,
    protocol: str = "TCP",
    node_port: int | None = None,
) -> Manifest:
    result: Manifest = {}
    if name:
        result["name"] = name
    result["port"] = port
    result["protocol"] = protocol
    result["targetPort"] = port if target_port is None else target_port
    if node_port:
        result["nodePort"] = node_port
    return result


def named_ports(*ports: tuple[str, int]) -> list[Manifest]:
    """TCP Service ports from (name, port) pairs, each targeting its own number."""
    return [service_port(name, port) for name, port in ports]


def service(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    selector: Mapping[str, str] | None,
    ports: Iterable[Manifest],
    *,
    service_type: str = "ClusterIP",
    annotations: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Manifest:
    port_list = []
    seen: set[tuple[int, str]] = set()
    for port in ports:
        key = (port["port"], port.get("protocol", "TCP"))
        if key in seen:
            continue
        seen.add(key)
        if service_type == "ClusterIP":
            # The API server refuses node ports on a ClusterIP Service.
            port_list.append({k: v for k, v in port.items() if k != "nodePort"})
        else:
            port_list.append(port)
    spec: Manifest = {"type": service_type}
    if selector is not None:
        spec["selector"] = dict(selector)
    spec["ports"] = port_list
    if extra:
        spec.update(extra)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, namespace, labels, annotations),
        "spec": spec,
    }


def horizontal_pod_autoscaler(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    deployment_name: str,
    min_replicas: int,
    max_replicas: int,
) -> Manifest:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(name, namespace, labels),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": deployment_name,
            },
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": HPA_CPU_TARGET},
                    },
                }
            ],
        },
    }


def pod_disruption_budget(
    name: str, namespace: str, labels: Mapping[str, str], selector: Mapping[str, str]
) -> Manifest:
    spec = {"minAvailable": 1, "selector": {"matchLabels": dict(selector)}}
    return kube_object("policy/v1", "PodDisruptionBudget", name, namespace, labels, spec=spec)


def config_map(
    name: str, namespace: str, labels: Mapping[str, str], data: Mapping[str, str]
) -> Manifest:
    return kube_object("v1", "ConfigMap", name, namespace, labels, data=dict(data))


def istio_object(
    api_version: str,
    kind: str,
    name: str,
    namespace: str | None,
    labels: Mapping[str, str],
    spec: Manifest,
) -> Manifest:
    """A custom resource of one of Istio's own CRDs."""
    return kube_object(api_version, kind, name, namespace, labels, spec=spec)


def mesh_expansion_route(
    name: str, namespace: str, labels: Mapping[str, str], host: str, port: int
) -> Manifest:
    """A VirtualService sending TCP `port` of the mesh-expansion gateway to `host`."""
    route = {"destination": {"host": host, "port": {"number": port}}}
    return istio_object(
        "networking.istio.io/v1alpha3",
        "VirtualService",
        name,
        namespace,
        labels,
        {
            "hosts": [host],
            "gateways": ["meshexpansion-gateway"],
            "tcp": [{"match": [{"port": port}], "route": [route]}],
        },
    )
