"""render layer: pure functions from a resource to the complete desired object list.

`render_primary` and `render_remote` return every object a cluster should
hold, ordered by rollout phase. Nothing here talks to a cluster: what only a
cluster knows (gateway addresses, the primary's CA, pod IPs) comes in as
`RemoteNetwork` and `PrimaryFacts`.
"""

from istio_operator.render.objects import DesiredObject
from istio_operator.render.phases import Phase
from istio_operator.render.primary import (
    RemoteNetwork,
    mesh_networks,
    render_primary,
    render_primary_plan,
)
from istio_operator.render.remote import PortFact, PrimaryFacts, render_remote, render_remote_plan
from istio_operator.render.serialize import yaml_stream

__all__ = [
    "DesiredObject",
    "Phase",
    "PortFact",
    "PrimaryFacts",
    "RemoteNetwork",
    "mesh_networks",
    "render_primary",
    "render_primary_plan",
    "render_remote",
    "render_remote_plan",
    "yaml_stream",
]
