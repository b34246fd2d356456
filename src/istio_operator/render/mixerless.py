"""Mixer-less telemetry (1.3 family): in-proxy stats through the null-VM wasm filters."""

from __future__ import annotations

import json

from istio_operator.render import builders as b
from istio_operator.render.builders import Manifest
from istio_operator.render.context import Context
from istio_operator.render.objects import DesiredObject
from istio_operator.render.phases import Phase

CONTEXTS = ("SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "GATEWAY")
LABELS = {"app": "istio-proxy", "istio": "mixerless-telemetry"}
FILTERS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("mixerless-telemetry-metadata-exchange", "envoy.wasm.metadata_exchange", {}),
    ("mixerless-telemetry-stats", "envoy.wasm.stats", {"stat_prefix": "istio"}),
)


def patch(context: str, code: str, configuration: dict[str, str]) -> Manifest:
    return {
        "applyTo": "HTTP_FILTER",
        "match": {
            "context": context,
            "listener": {
                "filterChain": {
                    "filter": {
                        "name": "envoy.http_connection_manager",
                        "subFilter": {"name": "envoy.router"},
                    }
                }
            },
        },
        "patch": {
            "operation": "INSERT_BEFORE",
            "value": {
                "name": "envoy.wasm",
                "config": {
                    "config": {
                        "configuration": json.dumps(configuration, sort_keys=True),
                        "vm_config": {"vm": "envoy.wasm.vm.null", "code": {"inline_string": code}},
                    }
                },
            },
        },
    }


def envoy_filter(ctx: Context, name: str, code: str, configuration: dict[str, str]) -> Manifest:
    return b.istio_object(
        "networking.istio.io/v1alpha3",
        "EnvoyFilter",
        name,
        ctx.namespace,
        LABELS,
        {"configPatches": [patch(context, code, configuration) for context in CONTEXTS]},
    )


def render(ctx: Context) -> list[DesiredObject]:
    telemetry = ctx.plan.mixerlessTelemetry
    if not telemetry.enabled:
        return []
    return ctx.emit(
        Phase.ADDONS,
        [envoy_filter(ctx, name, code, config) for name, code, config in FILTERS],
    )
