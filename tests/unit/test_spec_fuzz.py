"""Fuzzing the parser and the renderers: every document renders or is refused cleanly.

Random and adversarial edits of the reference samples (see `fuzz_corpus`) go through
`load_istio`/`load_remote_istio`, `render_primary`, `render_remote` and the YAML
output of `render`. Whatever the input, the outcome is a render or a `SpecError`
naming a `spec.` field (or `UnsupportedVersionError`); anything else is a crash.

The default run is short (`FUZZ_EXAMPLES` examples per property, 60 unless the
environment says otherwise); a long run: `ISTIO_OPERATOR_FUZZ_EXAMPLES=5000 pytest
tests/unit/test_spec_fuzz.py -s`, which prints the figures.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from istio_operator.api.errors import SpecError
from istio_operator.api.parse import load_remote_istio
from istio_operator.render import render_primary, render_remote, yaml_stream
from istio_operator.versions import UnsupportedVersionError

from .fuzz_corpus import (
    BAD_CASES,
    ISTIO_PATHS,
    REMOTE_PATHS,
    BadCase,
    bad_body,
    edited,
    edits,
    istio_body,
    remote_body,
)
from .render_support import FACTS, istio, remote

FUZZ_EXAMPLES = int(os.environ.get("ISTIO_OPERATOR_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

OUTCOMES: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def report_figures() -> Iterator[None]:
    yield
    print(
        f"\nfuzz: {sum(OUTCOMES.values())} cases, {OUTCOMES['rendered']} rendered, "
        f"{OUTCOMES['refused']} clean refusals, {OUTCOMES['unsupported']} unsupported "
        f"versions, 0 crashes"
    )


def outcome(run: Callable[[], Any]) -> str:
    """`rendered`, `refused` or `unsupported`; any other exception fails the test."""
    try:
        run()
    except SpecError as error:
        assert error.path.startswith("spec"), f"refusal without a spec field: {error}"
        assert error.message and "\n" not in str(error)
        result = "refused"
    except UnsupportedVersionError:
        result = "unsupported"
    else:
        result = "rendered"
    OUTCOMES[result] += 1
    return result


def render_istio(body: dict[str, Any]) -> None:
    resource = istio(body)
    yaml_stream(render_primary(resource))
    yaml_stream(render_remote(resource, remote(), FACTS))


def render_with_remote(body: dict[str, Any]) -> None:
    resource = load_remote_istio(body).resource
    yaml_stream(render_remote(istio(istio_body()), resource, FACTS))


@FUZZ
@given(changes=edits(ISTIO_PATHS))
def test_any_istio_spec_renders_or_is_refused(changes: list[tuple[str, Any]]) -> None:
    outcome(lambda: render_istio(edited(istio_body(), changes)))


@FUZZ
@given(changes=edits(REMOTE_PATHS))
def test_any_remote_spec_renders_or_is_refused(changes: list[tuple[str, Any]]) -> None:
    outcome(lambda: render_with_remote(edited(remote_body(), changes)))


@pytest.mark.parametrize("case", BAD_CASES, ids=[case.name for case in BAD_CASES])
def test_the_fixed_corpus_is_refused(case: BadCase) -> None:
    run = render_istio if case.kind == "Istio" else render_with_remote
    assert outcome(lambda: run(bad_body(case))) == "refused"
