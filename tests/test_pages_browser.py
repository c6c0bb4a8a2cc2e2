"""The pages in headless Chromium (real server, the read token as URL Basic credentials): each page at desktop and
phone width, full-page screenshots kept in tests/screenshots/pages/ (the test artifacts), the overdue row and the
charts (SVG with their series, the numbers table) checked in the DOM, and no horizontal scroll on a phone."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.api.main import create_app
from app.context import Context
from tests.pages_data import build
from tests.test_page_browser import READ_TOKEN, SCREENSHOTS, DevTools, _chromium, _start_chromium, _stop, server

__all__ = ["server"]
ARTIFACTS = SCREENSHOTS / "pages"
DESKTOP, PHONE = (1280, 900), (390, 844)


def _open(tab: DevTools, url: str, size: tuple[int, int], mobile: bool) -> None:
    tab.call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1, mobile=mobile)
    assert "errorText" not in tab.call("Page.navigate", url=url)
    tab.wait_for("Page.loadEventFired")
    tab.js("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
    assert "missing or unknown API token" not in tab.js("document.body.innerText"), "no credentials sent"


def _shot(tab: DevTools, name: str) -> Path:
    data = tab.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    path.write_bytes(base64.b64decode(data))
    assert path.stat().st_size > 10_000, path
    return path


def _overflow(tab: DevTools) -> Any:
    """How far the page reaches past the viewport's right edge (0: no horizontal scroll)."""
    return tab.js(
        "Math.max(document.documentElement.scrollWidth - window.innerWidth, 0, ...[...document.querySelectorAll"
        "('main *')].map(e => Math.ceil(e.getBoundingClientRect().right - window.innerWidth)))"
    )


def test_pages_in_headless_chromium(server: str, context: Context, tmp_path: Path) -> None:
    binary = _chromium()
    with TestClient(create_app(context, embedded_worker=False)) as client:
        built = build(client, context)
    host = server.removeprefix("http://")
    base = f"http://reader:{READ_TOKEN}@{host}"
    dialect = context.engine.dialect.name
    pages = {
        "overview": "/",
        "actions": "/actions",
        "insights": "/insights?since=2026-01-01",
        "postmortems": "/postmortems",
        "postmortem": f"/postmortems/{built.old_pm}",
    }
    process, ws_url = _start_chromium(binary, tmp_path / "cdp")
    try:
        tab = DevTools(ws_url)
        tab.call("Page.enable")
        for name, path in pages.items():
            _open(tab, base + path, DESKTOP, mobile=False)
            assert tab.js("getComputedStyle(document.querySelector('header.site')).display") != "none"  # the CSS
            assert tab.js("document.querySelector('nav[aria-label=Pages] a[href=\"/insights\"]') !== null")
            if name == "overview":
                row = f"#due-action-{built.overdue}"
                assert tab.js(f"document.querySelector('{row}').classList.contains('overdue')")
                assert "Alert on pool saturation" in tab.js(f"document.querySelector('{row}').innerText")
                assert (
                    tab.js(f"document.querySelector('{row} a.tracker').href")
                    == "https://acme.atlassian.net/browse/OPS-7"
                )
                # The late row is painted as late: its cells carry the overdue background.
                assert (
                    tab.js(f"getComputedStyle(document.querySelector('{row} td')).backgroundColor")
                    == "rgb(253, 226, 225)"
                )
            if name == "actions":
                assert tab.js(f"document.querySelector('#row-action-{built.overdue}.overdue') !== null")
                assert tab.js("document.querySelectorAll('tbody tr[id^=row-action-]').length") == 6
            if name == "insights":
                charts = tab.js(
                    "[...document.querySelectorAll('figure.chart svg')].map(s => [s.closest('section').id,"
                    " s.getBoundingClientRect().width, s.querySelectorAll('.series').length,"
                    " [...s.querySelectorAll('.legend text, .legends text')].map(t => t.textContent)])"
                )
                assert [c[0] for c in charts] == [
                    f"chart-{n}"
                    for n in ("mtta", "mttr", "mttd", "severity", "recurrence", "follow-through", "effectiveness")
                ]
                for chart_id, width, series, legend in charts:
                    assert width > 300 and series >= 2, (chart_id, width, series)
                    if chart_id in ("chart-mtta", "chart-mttr"):
                        assert {"median", "p90"} <= set(legend), legend
                assert tab.js("document.querySelectorAll('table.numbers').length") == 7
                assert "3m 37s" in tab.js("document.querySelector('#mtta-numbers').innerText")
            if name == "postmortem":
                assert "+3m 37s" in tab.js("document.querySelector('table.timeline').innerText")
            _shot(tab, f"{name}-desktop-{dialect}")

            _open(tab, base + path, PHONE, mobile=True)
            assert tab.js("window.innerWidth") == PHONE[0]
            assert _overflow(tab) <= 0, f"{name} scrolls sideways on a phone"
            if name in ("overview", "actions", "postmortems"):
                # Rows become labelled cards: a cell is as wide as the card, its column named before it.
                prefix = {"overview": "due-action", "actions": "row-action", "postmortems": "row-postmortem"}[name]
                cell = f"#{prefix}-{built.old_pm if name == 'postmortems' else built.overdue} td"
                assert tab.js(f"getComputedStyle(document.querySelector('{cell}')).display") == "block"
                label = tab.js(f"getComputedStyle(document.querySelector('{cell}'), '::before').content")
                assert label not in ("none", "normal", ""), label
            _shot(tab, f"{name}-phone-{dialect}")

        # Print: the navigation and the filters are left out.
        tab.call("Emulation.setEmulatedMedia", media="print")
        assert tab.js("getComputedStyle(document.querySelector('header.site')).display") == "none"
        tab.close()
    finally:
        _stop(process)
