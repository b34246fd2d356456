"""The operator's log, from a real run: an install and an upgrade log what changed, with
full logger names, and no line per successful kopf handler call."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from lightkube import Client

from istio_operator.localcluster import Workspace
from tests.operator_harness import (
    apply_istio,
    istio_available_at,
    istio_body,
    operator_plane,
    wait_for,
)

pytestmark = pytest.mark.cluster

LOGGER_NAME = re.compile(r"^\[[^]]+\] (\S+) \[")


def available(client: Client, version: str) -> Callable[[], bool]:
    return lambda: istio_available_at(client, version)


def test_a_run_logs_changes_quietly_with_full_logger_names(
    workspace: Workspace, tmp_path: Path
) -> None:
    with operator_plane(workspace, tmp_path, "logs-primary") as plane:
        plane.operator.start()
        for version in ("1.3.0", "1.3.1"):
            apply_istio(plane.primary, istio_body(version))
            wait_for(f"Available at {version}", available(plane.primary, version), timeout=120)
        plane.operator.stop()
        lines = plane.operator.log.read_text().splitlines()

    assert not [line for line in lines if re.search(r"Handler '[^']*' succeeded\.", line)]
    names = {m[1] for line in lines if (m := LOGGER_NAME.match(line))}
    assert "istio_operator.controller.leader" in names
    assert not any(len(name) == 20 and name.startswith("istio_operator.") for name in names)
    updates = [line for line in lines if " updating Deployment " in line]
    assert any("(changed: spec.template.spec.containers[" in line for line in updates), updates
