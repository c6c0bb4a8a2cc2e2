"""Tags on the incident through the webhook routes: Opsgenie tags and PagerDuty custom fields, in any delivery
order; the Opsgenie service from the mappings (services.yaml), never the sender's IP address."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.context import build_context
from tests.conftest import ROOT, make_settings
from tests.helpers import READ, post_og, post_pd

PAYLOADS = Path(__file__).resolve().parent / "payloads"
OG = [
    f"tags/{name}"
    for name in ("og2_01_create.json", "og2_02_addtags.json", "og2_03_removetags.json", "og2_04_addtags_delta.json")
]


def _incident(client: TestClient, external_id: str) -> dict:
    items = client.get("/api/v1/incidents", headers=READ).json()["items"]
    found = next(i for i in items if i["external_id"] == external_id)
    return dict(client.get(f"/api/v1/incidents/{found['id']}", headers=READ).json())


@contextmanager
def _client(database_url: str, folder: Path) -> Iterator[TestClient]:
    context = build_context(make_settings(database_url, mappings=folder))
    with TestClient(create_app(context, embedded_worker=False)) as client:
        yield client
    context.engine.dispose()


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (2, 0, 3, 1)])
def test_opsgenie_tags_come_out_the_same_in_any_order(client: TestClient, order: tuple[int, ...]) -> None:
    for index in order:
        assert post_og(client, (PAYLOADS / OG[index]).read_bytes()).status_code == 202
    incident = _incident(client, "7c1e2a90-4b3d-4f6e-9a8b-1c2d3e4f5a6b-1775200000000")
    assert incident["tags"] == ["prod", "service:checkout-api", "customer-impact", "postmortem-wanted"]
    assert incident["service"] == "checkout-api"  # the tag; never 203.0.113.17, the sender
    changes = [e for e in incident["timeline"] if e["kind"] == "tags_changed"]
    assert [e["text"].split(" by ")[0] for e in changes] == [
        "Tags added: customer-impact, sev-candidate",
        "Tags removed: sev-candidate",
        "Tags added: postmortem-wanted",
    ]
    assert changes[1]["tags"] == ["prod", "service:checkout-api", "customer-impact"] and changes[2]["tags"] is None


def test_pagerduty_custom_fields_are_tags(client: TestClient) -> None:
    names = ["tags/incB_02_custom_field_values_updated.json", "tags/incB_01_triggered.json"]
    for name in names:  # the field values first: delivery order does not matter
        assert post_pd(client, (PAYLOADS / name).read_bytes()).status_code == 202
    incident = _incident(client, "Q1CF8TAGS0001")
    assert incident["tags"] == ["environment:production", "region:EU", "region:US"]
    assert incident["service"] == "Search API" and incident["title"] == "Search API latency"
    assert [e["kind"] for e in incident["timeline"]] == ["triggered", "tags_changed"]


@pytest.mark.parametrize(
    ("services", "expected"),
    [
        ('opsgenie: {integrations: {"aftermath-webhook": Checkout API}}\n', "Checkout API"),
        ("opsgenie: {order: [entity, tag]}\n", "checkout-lb-3"),
        ('opsgenie: {order: [team, tag], teams: {"Checkout SRE": Checkout}}\n', "Checkout"),
        ("opsgenie: {order: [details]}\n", None),
    ],
)
def test_the_opsgenie_service_follows_services_yaml(
    database_url: str, tmp_path: Path, services: str, expected: str | None
) -> None:
    folder = tmp_path / "maps"
    shutil.copytree(ROOT / "mappings", folder)
    (folder / "services.yaml").write_text(services)
    with _client(database_url, folder) as client:
        for name in itertools.islice(OG, 2):
            assert post_og(client, (PAYLOADS / name).read_bytes()).status_code == 202
        assert _incident(client, "7c1e2a90-4b3d-4f6e-9a8b-1c2d3e4f5a6b-1775200000000")["service"] == expected


def test_a_bad_services_yaml_names_the_field(tmp_path: Path) -> None:
    from app.mappings import load_mappings
    from app.settings import SettingsError

    folder = tmp_path / "maps"
    folder.mkdir()
    (folder / "services.yaml").write_text("opsgenie: {order: [entity, ip]}\n")
    with pytest.raises(SettingsError, match=r"services.yaml: opsgenie.order.1"):
        load_mappings(folder)
    (folder / "services.yaml").write_text("opsgenie: {order: [tag, tag]}\n")
    with pytest.raises(SettingsError, match="name each source once"):
        load_mappings(folder)
