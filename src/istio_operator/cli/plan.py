"""`istio-operator plan`: what a change of an Istio resource would do on every cluster of
its mesh, read-only. Exit status: 0 no change, 3 changes, 4 refused (1 the plan could not
be made, 2 a usage error), so that a pipeline can gate on it."""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from istio_operator.cli.clusters import add_mesh_arguments, mesh_clients, report
from istio_operator.kube.client import ClusterUnreachableError, KubeconfigError
from istio_operator.kube.objects import MISSING, FieldChange
from istio_operator.operations.planning import PlannedWrite, by_phase
from istio_operator.operations.upgrade_plan import (
    ClusterPlan,
    PlanInputError,
    UpgradePlan,
    make_plan,
)

NO_CHANGE, CHANGES, REFUSED = 0, 3, 4
SYMBOLS = {"create": "+", "change": "~", "restart": "↻", "delete": "-"}
# A value longer than this is shown as a line diff (a ConfigMap key) or shortened.
INLINE_LIMIT = 80
DIFF_LINES = 12


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "plan",
        help="show what a change of an Istio resource would do on every cluster (read-only)",
        description="Run the operator's reconcile of an edited Istio resource (-f; its "
        "RemoteIstios too if the file has them) or of the live one, against the primary and "
        "every remote, without writing anything: per cluster and phase, the objects it would "
        "create, change (field by field) and delete, the workloads that would roll, the "
        "data-plane workloads left on an older proxy, and the checks that would refuse the "
        f"change. Exit status {NO_CHANGE}: no change, {CHANGES}: changes, {REFUSED}: refused.",
    )
    parser.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        default=[],
        help="an edited Istio (and RemoteIstio) manifest, '-' for stdin; repeatable",
    )
    parser.add_argument("--name", default=None, help="the live Istio resource to plan")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    add_mesh_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        edited = [doc for source in args.files for doc in _documents(source)]
        plan = asyncio.run(_plan(args.kubeconfig, args.namespace, args.name, edited))
    except (PlanInputError, KubeconfigError, OSError, yaml.YAMLError) as error:
        return report(error)
    except ClusterUnreachableError as error:
        return report(error)
    print(json.dumps(as_json(plan), indent=2) if args.output == "json" else as_text(plan))
    return exit_status(plan)


async def _plan(
    kubeconfig: str | None, namespace: str, name: str | None, edited: list[dict[str, Any]]
) -> UpgradePlan:
    async with mesh_clients(kubeconfig) as (primary, _):
        return await make_plan(primary, namespace, name, edited)


def _documents(source: str) -> Iterator[dict[str, Any]]:
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        if not isinstance(doc, dict) or doc.get("kind") not in ("Istio", "RemoteIstio"):
            raise PlanInputError(f"{source}: only Istio and RemoteIstio resources can be planned")
        yield doc


def exit_status(plan: UpgradePlan) -> int:
    if plan.refused:
        return REFUSED
    return CHANGES if plan.changed else NO_CHANGE


# -- text --------------------------------------------------------------------------------------


def as_text(plan: UpgradePlan) -> str:
    lines = [_headline(plan)]
    lines += [f"refused: {why}" for why in plan.refusals]
    lines += [f"warning: {warning}" for warning in plan.warnings]
    for cluster in plan.clusters:
        lines += ["", *_cluster_text(cluster)]
    if not plan.settled:
        lines += ["", "note: the simulated rollout had not come to rest; later passes may do more"]
    lines += ["", _verdict(plan)]
    return "\n".join(lines)


def _headline(plan: UpgradePlan) -> str:
    where = f"Istio {plan.istio.namespace}/{plan.istio.name}"
    if not plan.version_before:
        return f"{where}: install {plan.version_after}"
    if plan.version_before == plan.version_after:
        return f"{where}: {plan.version_after} (version unchanged)"
    return f"{where}: {plan.version_before} → {plan.version_after}"


def _cluster_text(cluster: ClusterPlan) -> list[str]:
    title = cluster.name if cluster.name == "primary" else f"remote {cluster.name}"
    lines = [f"{title}" + (f" ({cluster.server})" if cluster.server else "")]
    if cluster.refusal:
        lines.append(f"  refused: {cluster.refusal}")
    if not cluster.writes:
        lines.append("  no change")
    for phase, writes in by_phase(cluster.writes):
        lines.append(f"  phase {phase}:")
        for write in writes:
            lines += _write_text(write)
    if cluster.waiting:
        lines.append(f"  would wait: {cluster.waiting}")
    if cluster.rolls:
        rolled = ", ".join(f"{w.key.kind}/{w.key.name}" for w in cluster.rolls)
        lines.append(f"  workloads that roll: {rolled}")
    lines += _behind_text(cluster)
    return lines


def _write_text(write: PlannedWrite) -> list[str]:
    where = f"{write.key.namespace}/" if write.key.namespace else ""
    lines = [f"    {SYMBOLS[write.action]} {write.key.kind} {where}{write.key.name}"]
    if write.action == "restart":
        lines[0] += " (restart)"
    elif write.action == "change" and not write.changes:
        lines.append("        fields the operator no longer sets are removed")
    for change in write.changes:
        lines += [f"        {line}" for line in _change_text(change)]
    return lines


def _change_text(change: FieldChange) -> list[str]:
    before, after = change.before, change.after
    if isinstance(before, str) and isinstance(after, str) and "\n" in before + after:
        return [f"{change.path}:", *_line_diff(before, after)]
    if _scalars(before) and _scalars(after):  # args: the ones added and removed
        return [
            f"{change.path}:",
            *_line_diff("\n".join(map(str, before)), "\n".join(map(str, after))),
        ]
    return [f"{change.path}: {_short(before)} → {_short(after)}"]


def _scalars(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str | int | float) for v in value)


def _line_diff(before: str, after: str) -> list[str]:
    diff = [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if not line.startswith(("---", "+++", "@@"))
    ]
    shown = [f"  {line[0]} {line[1:]}" for line in diff[:DIFF_LINES]]
    if len(diff) > DIFF_LINES:
        shown.append(f"  … {len(diff) - DIFF_LINES} more lines")
    return shown


def _short(value: Any) -> str:
    if value is MISSING:
        return "(unset)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= INLINE_LIMIT else text[: INLINE_LIMIT - 1] + "…"


def _behind_text(cluster: ClusterPlan) -> list[str]:
    if cluster.behind_error:
        return [f"  data plane: not read ({cluster.behind_error})"]
    if not cluster.behind:
        return []
    lines = ["  data plane on an older proxy afterwards (istio-operator dataplane-upgrade):"]
    for r in cluster.behind:
        versions = ", ".join(r.proxy_versions)
        lines.append(f"    {r.namespace}/{r.workload}: {r.pods} pod(s) on {versions}")
    return lines


def _verdict(plan: UpgradePlan) -> str:
    if plan.refused:
        return "Refused: nothing would be changed."
    counts = []
    for cluster in plan.clusters:
        tally = {a: sum(1 for w in cluster.writes if w.action == a) for a in SYMBOLS}
        parts = [f"{n} to {a}" for a, n in tally.items() if n]
        counts.append(f"{cluster.name}: {', '.join(parts) or 'no change'}")
    return ("Plan: " if plan.changed else "No change. ") + "; ".join(counts)


# -- json --------------------------------------------------------------------------------------


def as_json(plan: UpgradePlan) -> dict[str, Any]:
    return {
        "istio": f"{plan.istio.namespace}/{plan.istio.name}",
        "versionBefore": plan.version_before,
        "versionAfter": plan.version_after,
        "refused": plan.refused,
        "changed": plan.changed,
        "settled": plan.settled,
        "refusals": plan.refusals,
        "warnings": plan.warnings,
        "clusters": [_cluster_json(c) for c in plan.clusters],
    }


def _cluster_json(cluster: ClusterPlan) -> dict[str, Any]:
    return {
        "name": cluster.name,
        "server": cluster.server,
        "refusal": cluster.refusal,
        "waiting": cluster.waiting,
        "writes": [_write_json(w) for w in cluster.writes],
        "rolls": [f"{w.key.kind}/{w.key.namespace}/{w.key.name}" for w in cluster.rolls],
        "dataPlaneBehind": [
            {
                "namespace": r.namespace,
                "workload": r.workload,
                "pods": r.pods,
                "proxyVersions": list(r.proxy_versions),
            }
            for r in cluster.behind
        ],
    }


def _write_json(write: PlannedWrite) -> Mapping[str, Any]:
    return {
        "action": write.action,
        "phase": write.phase,
        "kind": write.key.kind,
        "namespace": write.key.namespace,
        "name": write.key.name,
        "changes": [
            {
                "path": c.path,
                "before": None if c.before is MISSING else c.before,
                "after": None if c.after is MISSING else c.after,
            }
            for c in write.changes
        ],
    }
