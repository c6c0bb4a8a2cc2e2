"""Schemathesis against /openapi.json, in-process, with a write token: no 5xx, every answer matches the schema.

Each operation gets a bounded number of generated requests, valid ones (positive) and invalid ones (negative), over
a database that holds one of everything, so that ids 1 exist and routes answer more than 404.
"""

from __future__ import annotations

import re
from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.helpers import WRITE, add_finding, first_incident, make_postmortem, pd_event, post_pd

POSITIVE_EXAMPLES = 25
NEGATIVE_EXAMPLES = 10
SEED = 20260314  # the same requests on every run: a failure here reproduces


def _seed(client: TestClient) -> None:
    post_pd(client, pd_event("incident.triggered", event_id="EV-FUZZ", incident_id="FUZZ1", priority="P1"))
    postmortem = make_postmortem(client, first_incident(client)["id"])
    finding = add_finding(client, postmortem["id"])
    body = {"title": "Fuzzed", "owner": "alice@example.com", "finding_ids": [finding["id"]], "due_date": "2030-01-01"}
    response = client.post(f"/api/v1/postmortems/{postmortem['id']}/actions", json=body, headers=WRITE)
    assert response.status_code == 201, response.text


def _fuzz(client: TestClient, operation: Any, mode: GenerationMode, examples: int, pin_ids: bool = False) -> None:
    # Pinned, every id in the path is 1: the seeded rows, so that valid requests reach them instead of a 404.
    pinned = {name: 1 for name in re.findall(r"\{(\w+)\}", operation.path)} if pin_ids else None

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=pinned))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://testserver")
        kwargs["headers"] = {**kwargs.get("headers", {}), **WRITE}
        response = client.request(**kwargs)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    run()


def test_every_operation_answers_within_its_schema_and_never_5xx(client: TestClient) -> None:
    _seed(client)
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        runs = [
            (GenerationMode.POSITIVE, POSITIVE_EXAMPLES, False),
            (GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES, False),
        ]
        if "{" in operation.path:
            runs.append((GenerationMode.POSITIVE, POSITIVE_EXAMPLES, True))
        for mode, examples, pin_ids in runs:
            try:
                _fuzz(client, operation, mode, examples, pin_ids)
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, operation.label  # nothing in it can be made invalid
            except (Exception, BaseExceptionGroup) as exc:  # one report for every failing operation, not the first
                where = f"{operation.label} [{mode.value}{', ids = 1' if pin_ids else ''}]"
                failures.append(f"{where}: {type(exc).__name__}: {str(exc)[:1500]}")
    assert operations >= 20
    assert not failures, "\n\n".join(failures)
