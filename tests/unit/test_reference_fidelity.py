"""Rendered objects pinned to upstream Istio (1.2.8, 1.3.8 charts) and the reference operator.

Each test names the upstream source it pins: a file of Istio's Helm chart
(`install/kubernetes/helm/istio/...` at the tag) or of the reference operator
(banzaicloud/istio-operator, branch `release-1.3`; `release-1.2` for the 1.2 family).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from istio_operator.api.crd import generate_crds
from istio_operator.api.parse import load_istio, load_remote_istio
from istio_operator.plan import resolve_primary, resolve_remote
from istio_operator.plan.model import PROXY_RESOURCES
from istio_operator.render import DesiredObject, render_primary

from .render_support import SAMPLE_REMOTE, container, env, find, istio, primary, sample_body

FAMILIES = ("1.2.5", "1.3.0")
SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "samples"


def volumes(obj: DesiredObject) -> dict[str, Any]:
    return {v["name"]: v for v in obj.manifest["spec"]["template"]["spec"].get("volumes", [])}


def mounts(obj: DesiredObject, name: str) -> dict[str, Any]:
    return {m["name"]: m for m in container(obj, name).get("volumeMounts", [])}


# --- 1. multi-mesh EnvoyFilter ---------------------------------------------------------


@pytest.mark.parametrize("version", FAMILIES)
def test_multicluster_filter_runs_after_the_sni_cluster_filter(version: str) -> None:
    """Banzai `pkg/resources/gateways/multimesh.go` (`multimeshEnvoyFilter`) and Istio's
    `gateways/templates/preconfigured.yaml`: the `tcp_cluster_rewrite` filter of
    `istio-multicluster-ingressgateway` is inserted AFTER `envoy.filters.network.sni_cluster`,
    whose cluster name it rewrites from `.global` to `.svc.<domain>`."""
    objects = primary(version, multiMesh=True)
    (rewrite,) = find(objects, "EnvoyFilter", "istio-multicluster-ingressgateway").manifest["spec"][
        "filters"
    ]
    assert rewrite["insertPosition"] == {
        "index": "AFTER",
        "relativeTo": "envoy.filters.network.sni_cluster",
    }
    assert rewrite["filterName"] == "envoy.filters.network.tcp_cluster_rewrite"
    assert rewrite["listenerMatch"] == {"portNumber": 15443, "listenerType": "GATEWAY"}


def test_the_references_multimesh_sample_routes_global_names() -> None:
    """The reference's `config/samples/istio_v1beta1_istio_multimesh.yaml`, rendered: its
    rewrite of `.global` names comes after `sni_cluster`, so it applies."""
    body = yaml.safe_load((SAMPLES / "istio_v1beta1_istio_multimesh.yaml").read_text())
    body["metadata"]["namespace"] = "istio-system"
    objects = render_primary(load_istio(body).resource)
    spec = find(objects, "EnvoyFilter", "istio-multicluster-ingressgateway").manifest["spec"]
    assert [f["insertPosition"]["relativeTo"] for f in spec["filters"]] == [
        "envoy.filters.network.sni_cluster"
    ]


# --- 3. Mixer telemetry ----------------------------------------------------------------

# `mixer/templates/config.yaml` of Istio 1.3.8 (and 1.2.8: the same names; only
# `destination_service`'s expression differs between the two).
TCP_LABELS = {
    "reporter",
    "source_app",
    "source_principal",
    "source_workload",
    "source_workload_namespace",
    "source_version",
    "destination_app",
    "destination_principal",
    "destination_workload",
    "destination_workload_namespace",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "connection_security_policy",
    "response_flags",
}
HTTP_LABELS = TCP_LABELS | {
    "request_protocol",
    "response_code",
    "permissive_response_code",
    "permissive_response_policyid",
}
HTTP_INSTANCES = ("requestcount", "requestduration", "requestsize", "responsesize")
TCP_INSTANCES = ("tcpbytesent", "tcpbytereceived", "tcpconnectionsopened", "tcpconnectionsclosed")


@pytest.mark.parametrize("version", FAMILIES)
def test_metric_dimensions_are_istio_1_3_8s(version: str) -> None:
    """Istio 1.3.8 / 1.2.8 `mixer/templates/config.yaml`: the HTTP metric instances carry
    `request_protocol`, `response_code` and the RBAC permissive-mode outcome
    (`permissive_response_code` from `rbac.permissive.response_code`,
    `permissive_response_policyid` from `rbac.permissive.effective_policy_id`, both
    defaulting to "none"); the TCP ones none of these. `grpc_response_status` is an
    Istio 1.5 label, not in either chart."""
    objects = primary(version)
    for name in HTTP_INSTANCES:
        dimensions = find(objects, "instance", name).manifest["spec"]["params"]["dimensions"]
        assert set(dimensions) == HTTP_LABELS, name
        assert dimensions["permissive_response_code"] == 'rbac.permissive.response_code | "none"'
        assert dimensions["permissive_response_policyid"] == (
            'rbac.permissive.effective_policy_id | "none"'
        )
    for name in TCP_INSTANCES:
        dimensions = find(objects, "instance", name).manifest["spec"]["params"]["dimensions"]
        assert set(dimensions) == TCP_LABELS, name


@pytest.mark.parametrize("version", FAMILIES)
def test_prometheus_labels_are_the_instance_dimensions(version: str) -> None:
    """Istio 1.3.8 / 1.2.8 `mixer/templates/config.yaml`, handler `prometheus`: each metric's
    `label_names` are exactly its instance's dimensions (the HTTP set for the four request
    metrics, the TCP set for the four TCP metrics)."""
    metrics = find(primary(version), "handler", "prometheus").manifest["spec"]["params"]["metrics"]
    labels = {m["instance_name"].split(".")[0]: set(m["label_names"]) for m in metrics}
    assert labels == {
        **dict.fromkeys(HTTP_INSTANCES, HTTP_LABELS),
        **dict.fromkeys(TCP_INSTANCES, TCP_LABELS),
    }


@pytest.mark.parametrize("version", FAMILIES)
def test_cluster_id_attributes_are_declared_where_they_are_bound(version: str) -> None:
    """Banzai `pkg/resources/mixer/attributes.go` declares `source.cluster.id` and
    `destination.cluster.id` in the `kubernetes` attributemanifest, which
    `mixer.multiClusterSupport` binds (`kubernetes.go`, instance `attributes`); mixer
    rejects a binding of an undeclared attribute. Without the setting, the manifest is
    Istio 1.3.8's, which declares neither."""
    cluster_ids = {"source.cluster.id", "destination.cluster.id"}
    with_support = primary(version, mixer__multiClusterSupport=True)
    manifest = find(with_support, "attributemanifest", "kubernetes").manifest["spec"]
    bindings = find(with_support, "instance", "attributes").manifest["spec"]["attributeBindings"]
    assert cluster_ids <= set(bindings)
    for name in cluster_ids:
        assert manifest["attributes"][name] == {"valueType": "STRING"}
    plain = find(primary(version), "attributemanifest", "kubernetes").manifest["spec"]
    assert not cluster_ids & set(plain["attributes"])


@pytest.mark.parametrize("version", FAMILIES)
def test_mixer_adapter_secrets_are_mounted_as_in_istios_chart(version: str) -> None:
    """Istio 1.3.8 / 1.2.8 `mixer/templates/deployment.yaml`: the optional secret
    `policy-adapter-secret` is mounted read-only at /var/run/secrets/istio.io/policy/adapter
    in the policy pod's istio-proxy, `telemetry-adapter-secret` at
    /var/run/secrets/istio.io/telemetry/adapter in the telemetry pod's mixer container."""
    objects = primary(version)
    for kind, mounted_in in (("policy", "istio-proxy"), ("telemetry", "mixer")):
        deployment = find(objects, "Deployment", f"istio-{kind}")
        name = f"{kind}-adapter-secret"
        assert volumes(deployment)[name] == {
            "name": name,
            "secret": {"secretName": name, "optional": True},
        }
        assert mounts(deployment, mounted_in)[name] == {
            "name": name,
            "mountPath": f"/var/run/secrets/istio.io/{kind}/adapter",
            "readOnly": True,
        }
        other = "mixer" if mounted_in == "istio-proxy" else "istio-proxy"
        assert name not in mounts(deployment, other)


@pytest.mark.parametrize("version", FAMILIES)
def test_both_mixers_expose_42422_and_only_telemetrys_service_serves_it(version: str) -> None:
    """Istio's `mixer/templates/deployment.yaml` gives the mixer container of policy and of
    telemetry the ports 15014 and 42422; `mixer/templates/service.yaml` (and the reference's
    `service.go`) adds `prometheus` 42422 to the telemetry Service only."""
    objects = primary(version)
    for kind in ("policy", "telemetry"):
        mixer = container(find(objects, "Deployment", f"istio-{kind}"), "mixer")
        assert [p["containerPort"] for p in mixer["ports"]] == [15014, 42422]
        ports = {
            p["port"] for p in find(objects, "Service", f"istio-{kind}").manifest["spec"]["ports"]
        }
        assert (42422 in ports) is (kind == "telemetry")


# --- 4. ISTIO_META_POD_PORTS of the injection template ----------------------------------

_GO_EXECUTOR = """
package main

import (
	"encoding/json"
	"os"
	"text/template"
)

// structToJSON as Istio 1.3.8's injector defines it (pilot/pkg/kube/inject/inject.go).
func structToJSON(v interface{}) string {
	if v == nil {
		return "{}"
	}
	ba, err := json.Marshal(v)
	if err != nil {
		return "{}"
	}
	return string(ba)
}

func main() {
	source, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	var data map[string]interface{}
	if err := json.NewDecoder(os.Stdin).Decode(&data); err != nil {
		panic(err)
	}
	funcs := template.FuncMap{"structToJSON": structToJSON}
	tmpl := template.Must(template.New("pod-ports").Funcs(funcs).Parse(string(source)))
	if err := tmpl.Execute(os.Stdout, data); err != nil {
		panic(err)
	}
}
"""


def injection_template(version: str) -> str:
    config_map = find(primary(version), "ConfigMap", "istio-sidecar-injector")
    template: str = yaml.safe_load(config_map.manifest["data"]["config"])["template"]
    return template


def pod_ports_fragment(template: str) -> str:
    """The value of ISTIO_META_POD_PORTS: the block scalar after its `value: |-`."""
    lines = template.splitlines()
    start = lines.index("  - name: ISTIO_META_POD_PORTS") + 1
    assert lines[start].strip() == "value: |-"
    body = []
    for line in lines[start + 1 :]:
        if line.startswith("  - name:"):
            break
        body.append(line)
    return "\n".join(body)


@pytest.fixture(scope="module")
def go_executor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go is not installed: the template is executed by Go's text/template")
    root = tmp_path_factory.mktemp("gotemplate")
    (root / "main.go").write_text(_GO_EXECUTOR)
    environ = {
        **os.environ,
        "GOCACHE": str(root / "cache"),
        "GOPATH": str(root / "gopath"),
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "",
        "GO111MODULE": "off",
    }
    subprocess.run(
        [go, "build", "-o", str(root / "run"), str(root / "main.go")],
        check=True,
        env=environ,
        cwd=root,
        capture_output=True,
        timeout=300,
    )
    return root / "run"


def execute(executor: Path, fragment: str, containers: list[dict[str, Any]]) -> str:
    source = executor.parent / "fragment.tpl"
    source.write_text(fragment)
    result = subprocess.run(
        [str(executor), str(source)],
        input=json.dumps({"Spec": {"Containers": containers}}),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout


PORT_A = {"containerPort": 8080, "name": "http", "protocol": "TCP"}
PORT_B = {"containerPort": 9090, "protocol": "TCP"}


@pytest.mark.parametrize(
    ("containers", "expected"),
    [
        ([{"name": "a", "Ports": []}, {"name": "b", "Ports": [PORT_A]}], [PORT_A]),
        ([{"name": "a"}, {"name": "b", "Ports": [PORT_A, PORT_B]}], [PORT_A, PORT_B]),
        ([{"name": "a", "Ports": [PORT_A]}, {"name": "b"}, {"Ports": [PORT_B]}], [PORT_A, PORT_B]),
        ([{"name": "a"}], []),
        ([], []),
    ],
)
def test_pod_ports_are_valid_json_when_the_first_container_has_no_ports(
    go_executor: Path, containers: list[dict[str, Any]], expected: list[dict[str, Any]]
) -> None:
    """Istio 1.3.8 `files/injection-template.yaml`: ISTIO_META_POD_PORTS puts a comma before
    every port but the first one written (`$first`), so a first container without ports
    gives a JSON list, not the earlier logic's `[,{...}]` (comma when either range index
    is not 0). Executed with Go's text/template and the injector's `structToJSON`."""
    fragment = pod_ports_fragment(injection_template("1.3.0"))
    assert "$first" in fragment
    assert json.loads(execute(go_executor, fragment, containers)) == expected


def test_1_2_template_has_no_pod_ports() -> None:
    """Istio 1.2.8 `files/injection-template.yaml` sets no ISTIO_META_POD_PORTS (the
    variable, and the `structToJSON` it needs, arrived in 1.3), so the 1.2 family has no
    such bug to fix and keeps 1.2.8's template."""
    assert "ISTIO_META_POD_PORTS" not in injection_template("1.2.5")
    assert "structToJSON" not in injection_template("1.2.5")


# --- 5. requestedNetworkView -----------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "rendered"),
    [
        ("network-a,network-b", "network-a,network-b"),
        (["network-a", "network-b"], "network-a,network-b"),
    ],
)
def test_requested_network_view_is_the_references_string(given: Any, rendered: str) -> None:
    """Banzai `GatewayConfiguration.RequestedNetworkView` is a string, passed verbatim as
    ISTIO_META_REQUESTED_NETWORK_VIEW (`pkg/resources/gateways/deployment.go`; pilot splits
    it at commas). A list of names is read too and joined with commas."""
    objects = primary("1.3.0", gateways__ingress__requestedNetworkView=given)
    proxy_env = env(find(objects, "Deployment", "istio-ingressgateway"), "istio-proxy")
    assert proxy_env["ISTIO_META_REQUESTED_NETWORK_VIEW"] == rendered


def test_requested_network_view_crd_schema_is_a_string() -> None:
    """Banzai's generated CRD (`config/base/crds/istio_v1beta1_istio.yaml`) types
    `requestedNetworkView` as a string, so the reference's resources are accepted."""
    (istio_crd,) = [crd for crd in generate_crds() if crd["spec"]["names"]["kind"] == "Istio"]
    schema = istio_crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    gateways = schema["properties"]["spec"]["properties"]["gateways"]["properties"]
    for kind in ("ingress", "egress"):
        field = dict(gateways[kind]["properties"]["requestedNetworkView"])
        assert field.pop("description")  # for `kubectl explain`; the type is what is pinned
        assert field == {"type": "string", "nullable": True}


# --- 6. gateways, CoreDNS, galley -------------------------------------------------------


@pytest.mark.parametrize("version", FAMILIES)
def test_gateway_readiness_probe_is_istios(version: str) -> None:
    """Istio's `gateways/templates/deployment.yaml` and Banzai's gateway `deployment.go`:
    readiness `/healthz/ready` on 15020 after 1s, every 2s, failing after 30 attempts."""
    objects = primary(version)
    for name in ("istio-ingressgateway", "istio-egressgateway"):
        probe = container(find(objects, "Deployment", name), "istio-proxy")["readinessProbe"]
        assert probe["httpGet"] == {"path": "/healthz/ready", "port": 15020, "scheme": "HTTP"}
        assert (probe["initialDelaySeconds"], probe["periodSeconds"]) == (1, 2)
        assert probe["failureThreshold"] == 30


def gateway_resources(objects: list[DesiredObject], kind: str) -> Any:
    return container(find(objects, "Deployment", f"istio-{kind}gateway"), "istio-proxy")[
        "resources"
    ]


@pytest.mark.parametrize("version", FAMILIES)
def test_unset_gateway_resources_are_the_proxys(version: str) -> None:
    """Banzai's gateway `deployment.go`: the gateway's istio-proxy takes the proxy's
    resources (`GetResourcesRequirementsOrDefault(gateway resources, proxy.resources)`),
    whose default is 100m/128Mi requested, 2000m/1024Mi limit (`defaults.go`), not the
    generic `defaultResources` of 10m. Set gateway resources are still honoured."""
    unset = {f"gateways__{kind}__resources": None for kind in ("ingress", "egress")}
    body_default = primary(version, defaultResources=None, proxy__resources=None, **unset)
    for kind in ("ingress", "egress"):
        assert gateway_resources(body_default, kind) == PROXY_RESOURCES
    own_proxy = {"requests": {"cpu": "300m"}}
    with_proxy = primary(version, proxy__resources=own_proxy, **unset)
    assert gateway_resources(with_proxy, "ingress") == own_proxy
    own_gateway = {"requests": {"cpu": "700m"}}
    honoured = primary(version, gateways__ingress__resources=own_gateway)
    assert gateway_resources(honoured, "ingress") == own_gateway


def test_remote_gateways_take_the_remotes_proxy_resources() -> None:
    """Banzai `pkg/remoteclusters/reconcile_config.go`: the remote's Istio spec is the
    primary's with the RemoteIstio's `proxy.resources`, and its gateways fall back to
    those."""
    body = sample_body("1.3.0")
    body["spec"]["gateways"]["ingress"].pop("resources")
    remote_body = copy.deepcopy(SAMPLE_REMOTE)
    remote_body["spec"]["proxy"] = {"resources": {"requests": {"cpu": "42m"}}}
    plan, _ = resolve_remote(istio(body), load_remote_istio(remote_body).resource)
    assert plan.gateways.ingress.resources == {"requests": {"cpu": "42m"}}
    primary_plan, _ = resolve_primary(istio(body))
    assert primary_plan.gateways.ingress.resources == primary_plan.proxy.resources


def test_istiocoredns_resolves_through_the_node() -> None:
    """Banzai `pkg/resources/istiocoredns/deployment.go` and Istio's `istiocoredns` chart:
    `dnsPolicy: Default`, so the plugin's fallback `/etc/resolv.conf` is the node's, not
    the cluster DNS that forwards `global` back to it."""
    objects = primary("1.3.0", istioCoreDNS__enabled=True)
    pod = find(objects, "Deployment", "istiocoredns").manifest["spec"]["template"]["spec"]
    assert pod["dnsPolicy"] == "Default"


def _read(verbs: tuple[str, ...] = ("get", "list", "watch")) -> list[str]:
    return list(verbs)


def galley_rules(core: list[str], crds: bool) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["validatingwebhookconfigurations"],
            "verbs": ["*"],
        },
        *(
            {"apiGroups": [group], "resources": ["*"], "verbs": _read()}
            for group in (
                "config.istio.io",
                "networking.istio.io",
                "authentication.istio.io",
                "rbac.istio.io",
            )
        ),
        {
            "apiGroups": ["extensions", "apps"],
            "resources": ["deployments"],
            "verbs": ["get"],
            "resourceNames": ["istio-galley"],
        },
        {"apiGroups": [""], "resources": core, "verbs": _read()},
        {"apiGroups": ["extensions"], "resources": ["ingresses"], "verbs": _read()},
        {
            "apiGroups": ["extensions"],
            "resources": ["deployments/finalizers"],
            "verbs": ["update"],
            "resourceNames": ["istio-galley"],
        },
    ]
    if crds:
        rules.append(
            {
                "apiGroups": ["apiextensions.k8s.io"],
                "resources": ["customresourcedefinitions"],
                "verbs": _read(),
            }
        )
    return rules


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1.2.5", galley_rules(["pods", "nodes", "services", "endpoints"], crds=False)),
        (
            "1.3.0",
            galley_rules(["pods", "nodes", "services", "endpoints", "namespaces"], crds=True),
        ),
    ],
)
def test_galley_cluster_role_is_the_references(version: str, expected: list[Any]) -> None:
    """Banzai `pkg/resources/galley/rbac.go` (release-1.2; release-1.3 adds namespaces and
    CRD reads, as Istio 1.3.8's `galley/templates/clusterrole.yaml`): galley may get only
    its own Deployment and update only its finalizers (`resourceNames: [istio-galley]`),
    in the groups the reference names."""
    role = find(primary(version), "ClusterRole", "istio-galley-cluster-role")
    assert role.manifest["rules"] == expected
