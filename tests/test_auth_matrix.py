"""Every API route, from the route table: no token, unknown token, read token on a write route, junk bodies."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.helpers import READ, WRITE

PUBLIC = {"/healthz", "/readyz", "/metrics"}  # webhooks authenticate by signature: tests/test_webhooks.py


def _routes(client: TestClient) -> list[tuple[str, str]]:
    """(method, path) of every authenticated route, as the OpenAPI document lists them."""
    paths = client.get("/openapi.json").json()["paths"]
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "1", path))
        for path, operations in paths.items()
        if path not in PUBLIC and not path.startswith("/webhooks/")
        for method in operations
    ]


def test_the_route_table_is_covered(client: TestClient) -> None:
    routes = _routes(client)
    assert ("GET", "/api/v1/actions") in routes and ("PATCH", "/api/v1/postmortems/1") in routes
    assert ("GET", "/api/v1/postmortems/1/completeness") in routes
    assert len(routes) >= 14


def test_no_token_and_unknown_token_are_401(client: TestClient) -> None:
    for method, path in _routes(client):
        for headers in (
            {},
            {"Authorization": "Bearer nope"},
            {"Authorization": "Basic Og=="},
            {"Authorization": "Basic !!!"},
            {"Authorization": "Token test-write-token"},
        ):
            response = client.request(method, path, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.json()["detail"]


def test_read_token_on_write_routes_is_403(client: TestClient) -> None:
    writes = [(m, p) for m, p in _routes(client) if m != "GET"]
    assert writes
    for method, path in writes:
        response = client.request(method, path, headers=READ, json={})
        assert response.status_code == 403, (method, path)
        assert "write" in response.json()["detail"]


def test_basic_auth_password_is_accepted_for_reads(client: TestClient) -> None:
    assert client.get("/api/v1/incidents", auth=("anyone", "test-reader-token")).status_code == 200


@pytest.mark.parametrize(
    "body",
    [b"{", b"[]", b'"x"', b"null", b'{"kind": 5}', '{"statement": "\ud800"}'.encode("utf-8", "surrogatepass")],
)
def test_malformed_bodies_never_500(client: TestClient, body: bytes) -> None:
    for method, path in _routes(client):
        if method == "GET":
            continue
        response = client.request(method, path, headers={**WRITE, "Content-Type": "application/json"}, content=body)
        assert response.status_code in (400, 404, 409, 422, 200, 201), (method, path, body, response.text)


def test_five_mebibyte_body_is_413_everywhere(client: TestClient) -> None:
    big = b'{"x": "' + b"a" * (5 * 1024 * 1024) + b'"}'
    for method, path in _routes(client):
        if method != "GET":
            response = client.request(method, path, headers={**WRITE, "Content-Type": "application/json"}, content=big)
            assert response.status_code == 413, (method, path)


def _webhook_routes(client: TestClient) -> list[str]:
    paths = client.get("/openapi.json").json()["paths"]
    return [path for path in paths if path.startswith("/webhooks/")]


def test_the_right_scope_opens_every_route(client: TestClient) -> None:
    """The other half of the matrix: a read token passes every GET, a write token passes every route."""
    for method, path in _routes(client):
        for headers in [READ, WRITE] if method == "GET" else [WRITE]:
            response = client.request(method, path, headers=headers, json={})
            assert response.status_code not in (401, 403), (method, path, headers, response.text)


def test_every_webhook_route_refuses_without_credentials_and_stores_nothing(client: TestClient) -> None:
    from sqlalchemy import func
    from sqlmodel import select

    from app.inbox import InboundEvent

    routes = _webhook_routes(client)
    assert {"/webhooks/pagerduty", "/webhooks/opsgenie", "/webhooks/github", "/webhooks/jira"} <= set(routes)
    body = b'{"event": {"id": "E1", "event_type": "incident.triggered"}, "action": "Create", "alert": {}}'
    for path in routes:
        for headers in ({}, {"Authorization": "Bearer test-write-token"}, {"X-Hub-Signature-256": "sha256=00"}):
            response = client.post(path, content=body, headers={**headers, "Content-Type": "application/json"})
            assert response.status_code == 401, (path, headers, response.text)
    context = client.app.state.context  # type: ignore[attr-defined]
    with context.read() as session:
        assert session.exec(select(func.count()).select_from(InboundEvent)).one() == 0


def test_tracker_webhooks_refuse_when_their_secret_is_unset(client: TestClient) -> None:
    """No AFTERMATH_GITHUB_WEBHOOK_SECRET / AFTERMATH_JIRA_WEBHOOK_SECRET (the `client` fixture sets neither): even a
    signature made with an empty key, which anyone can compute, is refused."""
    import hashlib
    import hmac

    body = b'{"action": "closed", "issue": {"number": 1}}'
    empty_key = "sha256=" + hmac.new(b"", body, hashlib.sha256).hexdigest()
    github = client.post("/webhooks/github", content=body, headers={"X-Hub-Signature-256": empty_key})
    jira = client.post("/webhooks/jira?secret=", content=body, headers={"X-Hub-Signature": empty_key})
    assert (github.status_code, jira.status_code) == (401, 401), (github.text, jira.text)
