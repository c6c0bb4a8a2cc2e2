"""The pages for people through their routes: auth, the overview's sections, the action list's filters, sort and
pages, the CSV export (quoting, formula injection, header, Accept), the insights charts and their numbers, times
for people, and bad parameters answered 422."""

from __future__ import annotations

import csv
import io
import itertools
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api import humane
from app.api.main import create_app
from app.context import Context, build_context
from tests.conftest import ROOT, make_settings
from tests.helpers import READ, WRITE
from tests.pages_data import NASTY_TITLE, Built, build

PAGES = ["/", "/actions", "/insights", "/postmortems"]
BASIC = ("anyone", "test-reader-token")


@pytest.fixture
def built(client: TestClient, context: Context) -> Built:
    return build(client, context)


class _Rows(HTMLParser):
    """The ids of the <tr> elements of a page, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs).get("id")
        if tag == "tr" and found:
            self.ids.append(found)


def _row_ids(html: str, prefix: str = "row-action-") -> list[int]:
    parser = _Rows()
    parser.feed(html)
    return [int(i.removeprefix(prefix)) for i in parser.ids if i.startswith(prefix)]


def _page(client: TestClient, path: str, **params: object) -> str:
    response = client.get(path, params=params, auth=BASIC)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


@pytest.mark.parametrize("path", PAGES)
def test_pages_need_a_token_and_a_read_token_suffices(client: TestClient, path: str) -> None:
    anonymous = client.get(path)
    assert anonymous.status_code == 401
    challenges = anonymous.headers.get_list("www-authenticate")
    assert "Bearer" in challenges and 'Basic realm="aftermath"' in challenges
    assert client.get(path, auth=("anyone", "not-a-token")).status_code == 401
    assert client.get(path, auth=BASIC).status_code == 200
    assert client.get(path, headers=READ).status_code == 200
    assert client.get(path, headers=WRITE).status_code == 200


def test_every_page_shares_the_layout_and_loads_nothing_from_elsewhere(client: TestClient, built: Built) -> None:
    for path in [*PAGES, f"/postmortems/{built.recent_pm}"]:
        html = _page(client, path)
        assert '<link rel="stylesheet" href="/static/aftermath.css">' in html
        assert '<nav aria-label="Pages">' in html and 'href="/actions"' in html and 'href="/insights"' in html
        assert "<script" not in html, path
        assert not re.search(r'(src|href)="(https?:)?//(?!acme\.)', html), path  # only links to trackers and sources
        headings = [int(level) for level in re.findall(r"<h([1-6])", html)]
        assert headings[0] == 1 and headings.count(1) == 1, path
        assert all(b - a <= 1 for a, b in itertools.pairwise(headings)), (path, headings)
    assert 'aria-current="page">Actions<' in _page(client, "/actions")
    sheet = client.get("/static/aftermath.css")
    assert sheet.status_code == 200 and sheet.headers["content-type"].startswith("text/css")
    assert "@media print" in sheet.text and "@media (max-width" in sheet.text


def test_overview_shows_late_and_due_soon_actions_by_team_and_owner(client: TestClient, built: Built) -> None:
    html = _page(client, "/")
    due = html[html.index('id="due"') : html.index('id="late-reviews"')]
    # One team (both incidents are Payments SRE's), by owner: alice, bob, erin.
    assert _row_ids(due, "due-action-") == [built.overdue, built.soon, built.escalated]
    row = due[due.index(f'id="due-action-{built.overdue}"') :].split("</tr>")[0]
    assert 'class="overdue"' in due and "overdue 1d" in row
    assert f'href="/postmortems/{built.recent_pm}#action-{built.overdue}"' in row
    assert 'href="https://acme.atlassian.net/browse/OPS-7">OPS-7</a>' in row and "alice@example.com" in row
    assert f"due-action-{built.far}" not in html and f"due-action-{built.done}" not in html
    assert re.search(r"<h3 [^>]*>Payments SRE", due)  # grouped under the incidents' team
    reviews = html[html.index('id="late-reviews"') : html.index('id="escalations"')]
    assert f'href="/postmortems/{built.old_pm}"' in reviews and f'href="/postmortems/{built.recent_pm}"' not in reviews
    escalations = html[html.index('id="escalations"') : html.index('id="recurrences"')]
    assert _row_ids(escalations, "escalated-action-") == [built.escalated]
    assert 'data-label="level" class="num">1<' in escalations and "carol@example.com" in escalations
    recurrences = html[html.index('id="recurrences"') : html.index('id="recent"')]
    assert f'href="/postmortems/{built.old_pm}#recurrence-{built.recurrence}"' in recurrences
    recent = html[html.index('id="recent"') :]
    assert f'href="/postmortems/{built.recent_pm}"' in recent and "draft" in recent
    assert f'href="/postmortems/{built.old_pm}"' not in recent  # March is not the last 7 days


def test_action_list_filters_are_the_apis(client: TestClient, built: Built) -> None:
    def both(**params: object) -> tuple[set[int], set[int]]:
        api = client.get("/api/v1/actions", params=params, headers=READ)
        assert api.status_code == 200, api.text
        return set(_row_ids(_page(client, "/actions", **params))), {a["id"] for a in api.json()["items"]}

    everything = {built.overdue, built.soon, built.far, built.done, built.nasty, built.escalated}
    cases = [
        ({}, everything),
        ({"overdue": "true"}, {built.overdue, built.escalated}),
        ({"overdue": "false"}, everything - {built.overdue, built.escalated}),
        ({"owner": "ALICE@example.com"}, {built.overdue, built.far}),
        ({"status": ["done", "unfiled"]}, {built.done, built.soon, built.far, built.nasty}),
        ({"escalated": "true"}, {built.escalated}),
        ({"postmortem_id": built.old_pm}, {built.escalated}),
        ({"service": "Search API"}, {built.escalated}),
        ({"team": "Payments SRE", "overdue": "true"}, {built.overdue, built.escalated}),
        ({"team": "nobody's team"}, set()),
    ]
    for params, expected in cases:
        page_rows, api_rows = both(**params)
        assert page_rows == api_rows == expected, params
    # The page's form sends a field left at "any" as `name=`: no filter there; the API refuses it as before.
    blanks = {"overdue": "", "owner": "", "tracker": "", "escalated": "", "postmortem_id": "", "team": ""}
    assert set(_row_ids(_page(client, "/actions", **blanks, status="open"))) == {built.overdue, built.escalated}
    assert client.get("/api/v1/actions", params=blanks, headers=READ).status_code == 422


def test_action_list_sorts_and_pages(client: TestClient, built: Built) -> None:
    by_due = _row_ids(_page(client, "/actions", sort="due_date"))
    assert by_due == [built.escalated, built.done, built.overdue, built.soon, built.far, built.nasty]  # no date last
    assert _row_ids(_page(client, "/actions", sort="due_date", order="desc")) == [
        built.far,
        built.soon,
        built.overdue,
        built.done,
        built.escalated,
        built.nasty,
    ]
    html = _page(client, "/actions", sort="owner", overdue="false")
    assert 'aria-sort="ascending"' in html and "sort=owner&amp;order=desc" in html  # the header toggles the order
    assert "overdue=false" in html.split('aria-sort="ascending"')[1].split("</th>")[0]  # and keeps the filters
    first = _page(client, "/actions", sort="due_date", per_page=4)
    second = _page(client, "/actions", sort="due_date", per_page=4, page=2)
    assert _row_ids(first) + _row_ids(second) == by_due
    assert 'rel="next"' in first and 'rel="prev"' not in first
    assert 'rel="prev"' in second and 'rel="next"' not in second
    assert "No action matches" in _page(client, "/actions", per_page=4, page=3)


def test_postmortem_list_newest_first_with_its_filters(client: TestClient, built: Built) -> None:
    def listed(**params: object) -> list[int]:
        return _row_ids(_page(client, "/postmortems", **params), "row-postmortem-")

    newest_first = sorted([built.old_pm, built.recent_pm], reverse=True)
    assert listed() == newest_first
    assert listed(overdue="true") == [built.old_pm] and listed(overdue="false") == [built.recent_pm]
    assert listed(status="draft", overdue="") == newest_first and listed(status="published") == []
    html = _page(client, "/postmortems")
    assert f'<a href="/postmortems/{built.old_pm}">PM-' in html and "Payments SRE" in html
    assert 'aria-current="page">Postmortems<' in html
    for bad in ({"status": "lost"}, {"overdue": "maybe"}, {"page": "0"}):
        assert client.get("/postmortems", params=bad, auth=BASIC).status_code == 422, bad


def test_action_rows_link_to_their_issue_and_finding(client: TestClient, built: Built) -> None:
    html = _page(client, "/actions")
    row = html[html.index(f'id="row-action-{built.overdue}"') :].split("</tr>")[0]
    assert f'href="/postmortems/{built.recent_pm}#action-{built.overdue}"' in row
    assert f'href="/postmortems/{built.recent_pm}#finding-{built.finding}"' in row
    assert 'href="https://acme.atlassian.net/browse/OPS-7">OPS-7</a>' in row and 'class="overdue"' in row
    assert "&#34;quotes&#34;" in html or "&quot;quotes&quot;" in html  # the title is escaped, not markup
    assert 'href="/api/v1/actions?overdue=true&amp;format=csv"' in _page(client, "/actions", overdue="true", page=1)


@pytest.mark.parametrize(
    "params",
    [
        {"overdue": "maybe"},
        {"status": "lost"},
        {"tracker": "trello"},
        {"postmortem_id": "abc"},
        {"postmortem_id": "0"},
        {"sort": "password"},
        {"order": "sideways"},
        {"page": "0"},
        {"per_page": "100000"},
        {"owner": "x" * 300},
    ],
)
def test_action_list_refuses_bad_parameters(client: TestClient, params: dict[str, str]) -> None:
    response = client.get("/actions", params=params, auth=BASIC)
    assert response.status_code == 422, (params, response.text)
    if set(params) - {"sort", "order", "page", "per_page"}:
        assert client.get("/api/v1/actions", params=params, headers=READ).status_code == 422, params


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_csv_export_is_the_lists_rows_quoted_and_defused(client: TestClient, built: Built) -> None:
    response = client.get("/api/v1/actions", params={"format": "csv"}, headers=READ)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["content-disposition"]
    raw = response.content.decode("utf-8")
    assert raw.startswith("id,postmortem_id,postmortem,title,status,overdue,owner,due_date,")
    assert "\r\n" in raw  # RFC 4180 line ends
    rows = _csv(raw)
    listed = client.get("/api/v1/actions", headers=READ).json()["items"]
    assert [int(r["id"]) for r in rows] == [a["id"] for a in listed]
    nasty = next(r for r in rows if int(r["id"]) == built.nasty)
    # The title with a comma, quotes, a line break and non-ASCII letters survives quoting; its leading = does not run.
    assert nasty["title"] == "'" + NASTY_TITLE and nasty["owner"] == "'@dana"
    overdue = next(r for r in rows if int(r["id"]) == built.overdue)
    assert (
        overdue["overdue"] == "true"
        and overdue["tracker_key"] == "OPS-7"
        and overdue["finding_ids"] == str(built.finding)
    )
    filtered = _csv(client.get("/api/v1/actions", params={"format": "csv", "overdue": "true"}, headers=READ).text)
    assert {int(r["id"]) for r in filtered} == {built.overdue, built.escalated}
    by_accept = client.get("/api/v1/actions", params={"overdue": "true"}, headers={**READ, "Accept": "text/csv"})
    assert by_accept.headers["content-type"].startswith("text/csv") and _csv(by_accept.text) == filtered
    # Basic auth works too: the page's download link is followed by the same browser.
    assert client.get("/api/v1/actions", params={"format": "csv"}, auth=BASIC).status_code == 200
    assert client.get("/api/v1/actions", params={"format": "csv"}).status_code == 401
    assert client.get("/api/v1/actions", params={"format": "xml"}, headers=READ).status_code == 422
    assert client.get("/api/v1/actions", headers=READ).headers["content-type"] == "application/json"


def test_csv_export_with_no_rows_is_the_header_alone(client: TestClient) -> None:
    response = client.get("/api/v1/actions", params={"format": "csv"}, headers=READ)
    assert response.status_code == 200 and response.text.count("\r\n") == 1 and response.text.startswith("id,")


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_formula_cells_are_prefixed(value: str, cell: str) -> None:
    from app.exports import safe

    assert safe(value) == cell


def test_insights_draws_the_metrics_and_their_numbers(client: TestClient, built: Built) -> None:
    html = _page(client, "/insights", since="2026-01-01")
    for chart in ("mtta", "mttr", "mttd", "severity", "recurrence"):
        section = html[html.index(f'id="chart-{chart}"') :].split("</section>")[0]
        assert (
            "<svg" in section
            and 'role="img"' in section
            and f'aria-labelledby="{chart}-title {chart}-summary"' in section
        )
        assert f'id="{chart}-numbers"' in section and '<th scope="col"' in section
    mtta = html[html.index('id="mtta-numbers"') :].split("</table>")[0]
    # March: the old incident alone, acknowledged 3m 37s after its trigger.
    assert re.search(r"Mar 2026</th><td[^>]*>1</td><td[^>]*>3m 37s</td><td[^>]*>3m 37s</td>", mtta), mtta
    summary = client.get("/api/v1/metrics/summary", params={"since": "2026-01-01"}, headers=READ).json()
    severity = html[html.index('id="severity-numbers"') :].split("</table>")[0]
    totals = [int(n) for n in re.findall(r'data-label="all">(\d+)<', severity)]
    assert sum(totals) == summary["incidents"]["count"] == 3
    recurrence = html[html.index('id="recurrence-numbers"') :].split("</table>")[0]
    assert "dependency" in recurrence and "capacity" in recurrence
    # Follow-through per month partitions the window's actions: the monthly denominators add up to the summary's.
    follow = html[html.index('id="follow-through-numbers"') :].split("</table>")[0]
    on_time = [int(n) for n in re.findall(r'data-label="on time">\d+% of (\d+)<', follow)]
    assert on_time and sum(on_time) == summary["follow_through"]["on_time"]["count"] > 0, follow
    effective = html[html.index('id="effectiveness-numbers"') :].split("</table>")[0]
    overall = summary["effectiveness"]["overall"]
    cells = re.search(r"all actions</th>" + r"<td[^>]*>(\d+)</td>" * 4, effective)
    assert cells, effective
    assert [int(n) for n in cells.groups()] == [overall[k] for k in ("held", "failed", "recurred", "pending")]
    assert 'aria-labelledby="effectiveness-title effectiveness-summary"' in html


def test_insights_filters(client: TestClient, built: Built) -> None:
    only_search = _page(client, "/insights", since="2026-01-01", service="Search API")
    severity = only_search[only_search.index('id="severity-numbers"') :].split("</table>")[0]
    assert sum(int(n) for n in re.findall(r'data-label="all">(\d+)<', severity)) == 2
    nothing = _page(client, "/insights", since="2026-01-01", team="nobody's team")
    assert "No data in this window" in nothing and "0 incident(s)" in nothing
    march = _page(client, "/insights", since="2026-03-01", until="2026-04-01")
    assert "1 incident(s)" in march
    assert "1 incident(s)" in _page(client, "/insights", since="2026-03-01", until="2026-04-01", service="", team="")


@pytest.mark.parametrize(
    "params",
    [
        {"since": "yesterday"},
        {"since": "2026-03-01T00:00:00"},
        {"since": "2026-04-01", "until": "2026-03-01"},
        {"until": "2026-13-01"},
        {"team": "t" * 300},
    ],
)
def test_insights_refuses_bad_parameters(client: TestClient, params: dict[str, str]) -> None:
    assert client.get("/insights", params=params, auth=BASIC).status_code == 422


def test_postmortem_page_prints_times_for_people(client: TestClient, built: Built) -> None:
    html = _page(client, f"/postmortems/{built.old_pm}")
    assert '<time datetime="2026-03-14T09:12:04.617000+00:00">14 Mar 2026 09:12:04 UTC</time>' in html
    timeline = html[html.index('class="list timeline"') :].split("</table>")[0]
    assert re.search(
        r'>14 Mar 2026 09:15:41 UTC</time></td><td data-label="since trigger" class="since">\+3m 37s<', timeline
    )
    assert ">+0s<" in timeline
    assert "2026-03-14T09:12:04.617000+00:00</td>" not in html  # the raw value only in the attribute
    assert 'datetime="2026-03-21">21 Mar 2026</time>' in html  # the review date
    assert 'aria-current="page">PM-' in html


def test_human_durations() -> None:
    start = datetime(2026, 3, 14, 9, 12, 4, tzinfo=UTC)
    cases = [(0, "+0s"), (45, "+45s"), (217, "+3m 37s"), (3600 * 2 + 65, "+2h 1m 5s"), (86400 * 3 + 3600, "+3d 1h 0m")]
    for seconds, text in cases:
        assert humane.since(datetime.fromtimestamp(start.timestamp() + seconds, UTC), start) == text
    assert humane.since(start, datetime.fromtimestamp(start.timestamp() + 12, UTC)) == "-12s"
    assert humane.since(None, start) == "" and str(humane.when(None)) == "—"


def test_demo_data_fills_a_database_the_pages_show(tmp_path: Path) -> None:
    """`aftermath demo-data` as a new user runs it, then the pages over what it wrote (SQLite)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERMATH_")}
    env |= {"AFTERMATH_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "demo-data", "--postmortems", "30"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"added 30 incidents, 30 postmortems, 60 findings, \d+ actions", done.stdout), done.stdout
    context = build_context(make_settings(env["AFTERMATH_DATABASE_URL"]))
    try:
        with TestClient(create_app(context, embedded_worker=False)) as client:
            overview = _page(client, "/")
            assert _row_ids(overview, "due-action-") and "reviews past due" in overview
            assert len(_row_ids(_page(client, "/actions", per_page=500))) >= 90  # 3 to 7 actions each
            insights = _page(client, "/insights")
            assert insights.count("<svg") == 7 and "No data in this window" not in insights
    finally:
        context.engine.dispose()


def test_csv_export_reads_batch_after_batch_and_refuses_what_the_database_would(
    client: TestClient, built: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.api import actions as action_routes

    monkeypatch.setattr(action_routes, "CSV_BATCH", 2)
    rows = _csv(client.get("/api/v1/actions", params={"format": "csv"}, headers=READ).text)
    listed = client.get("/api/v1/actions", headers=READ).json()["items"]
    assert [int(r["id"]) for r in rows] == [a["id"] for a in listed] and len(rows) == 6
    # A NUL byte cannot be bound on PostgreSQL: a clear 422 before the download starts, not a broken 200.
    nul = client.get("/api/v1/actions", params={"format": "csv", "owner": "\x00"}, headers=READ)
    assert nul.status_code in (200, 422) and (nul.status_code == 200) == (
        client.app.state.context.engine.dialect.name == "sqlite"
    )  # type: ignore[attr-defined]
