"""kwokctl configuration for one local cluster (pure: no processes, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from istio_operator.localcluster.binaries import KUBE_VERSION, Binaries

LOAD_BALANCER_STAGE_NAME = "service-load-balancer"


@dataclass(frozen=True)
class Ports:
    """The ports one cluster binds on 127.0.0.1; fixed so a stopped cluster can restart."""

    etcd: int
    etcd_peer: int
    kube_apiserver: int
    kube_controller_manager: int
    kube_scheduler: int
    kwok_controller: int


# Write requests only, at Metadata level: enough to count and attribute every change.
AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "Metadata", "verbs": ["create", "update", "patch", "delete", "deletecollection"]},
        {"level": "None"},
    ],
}


# Admission plugins that call webhooks: off in a cluster made `admission_webhooks=False`.
WEBHOOK_ADMISSION_PLUGINS = "MutatingAdmissionWebhook,ValidatingAdmissionWebhook"


def kwokctl_configuration(
    binaries: Binaries, ports: Ports, audit_policy: str, admission_webhooks: bool = True
) -> dict[str, Any]:
    """The KwokctlConfiguration: binary runtime, our binaries, loopback only, fixed ports."""
    bin_dir = binaries["kube-apiserver"].parent
    return {
        "kind": "KwokctlConfiguration",
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "options": {
            "runtime": "binary",
            "kubeVersion": KUBE_VERSION,
            "bindAddress": "127.0.0.1",
            "kubeBinaryPrefix": str(bin_dir),
            "kubeApiserverBinary": str(binaries["kube-apiserver"]),
            "kubeControllerManagerBinary": str(binaries["kube-controller-manager"]),
            "kubeSchedulerBinary": str(binaries["kube-scheduler"]),
            "kubectlBinary": str(binaries["kubectl"]),
            "etcdBinary": str(binaries["etcd"]),
            "kwokControllerBinary": str(binaries["kwok"]),
            "etcdPort": ports.etcd,
            "etcdPeerPort": ports.etcd_peer,
            "kubeApiserverPort": ports.kube_apiserver,
            "kubeControllerManagerPort": ports.kube_controller_manager,
            "kubeSchedulerPort": ports.kube_scheduler,
            "kwokControllerPort": ports.kwok_controller,
            # Kubelet-like timings: nodes go NotReady after a real outage, not minutes later.
            "heartbeatFactor": 1,
            "kubeAuditPolicy": audit_policy,
        },
        "componentsPatches": [
            # A loopback advertise address cannot be an Endpoints IP: skip that reconciler.
            {
                "name": "kube-apiserver",
                "extraArgs": [
                    {"key": "endpoint-reconciler-type", "value": "none"},
                    *(
                        []
                        if admission_webhooks
                        else [
                            {"key": "disable-admission-plugins", "value": WEBHOOK_ADMISSION_PLUGINS}
                        ]
                    ),
                ],
            },
            # One instance each: no need to wait for a lease after a restart.
            {
                "name": "kube-controller-manager",
                "extraArgs": [{"key": "leader-elect", "value": "false"}],
            },
            {
                "name": "kube-scheduler",
                "extraArgs": [{"key": "leader-elect", "value": "false"}],
            },
        ],
    }


def load_balancer_stage(address_prefix: str) -> dict[str, Any]:
    """A kwok Stage standing in for a cloud load-balancer controller.

    A ``type: LoadBalancer`` Service without an address gets
    ``<address_prefix>.<third>.<fourth octet of its ClusterIP>``: stable, unique within
    the cluster, and distinct across clusters given distinct prefixes (``100.64``, ``100.65``).
    """
    octets = '(splitList "." .spec.clusterIP)'
    address = f"{address_prefix}.{{{{ index {octets} 2 }}}}.{{{{ index {octets} 3 }}}}"
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": LOAD_BALANCER_STAGE_NAME},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Service"},
            "selector": {
                "matchExpressions": [
                    {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                    {"key": ".spec.type", "operator": "In", "values": ["LoadBalancer"]},
                    {"key": ".status.loadBalancer.ingress", "operator": "DoesNotExist"},
                ]
            },
            "steps": [
                {
                    "patch": {
                        "subresource": "status",
                        "root": "status",
                        "template": f'loadBalancer:\n  ingress:\n  - ip: "{address}"\n',
                    }
                }
            ],
        },
    }
