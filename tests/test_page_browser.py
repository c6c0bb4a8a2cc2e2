"""The backlink page in headless Chromium: real server, token as URL Basic credentials, a finding anchor followed.

The DOM is checked with Chromium's own `--dump-dom`; following the anchor and the screenshot go through the DevTools
protocol, because the CLI's `--screenshot` paints a fragment-scrolled page half blank (Chromium 156).
Set AFTERMATH_TEST_REQUIRE_CHROMIUM=1 (CI) to fail instead of skipping when no Chromium is installed.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from app.actions import Action
from app.api.main import create_app
from app.context import Context
from app.worker import Worker
from tests.helpers import pd_event, pd_signature

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
WRITE = {"Authorization": "Bearer test-write-token"}
READ_TOKEN = "test-reader-token"
VIEWPORT = (1280, 720)
HIGHLIGHT, TARGET_BORDER = (0xFF, 0xF4, 0xE6), (0xD9, 0x48, 0x0F)  # .finding:target in postmortem.html
TRACKER_URL = "https://acme.atlassian.net/browse/OPS-7"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-proxy-server",  # a proxy from the environment must not see (or break) loopback traffic
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]


def _chromium() -> str:
    for name in (os.environ.get("AFTERMATH_TEST_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (path := shutil.which(name)):
            return path
    reason = "no Chromium binary (apt-get install chromium, or set AFTERMATH_TEST_CHROMIUM)"
    if os.environ.get("AFTERMATH_TEST_REQUIRE_CHROMIUM") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def server(context: Context) -> Iterator[str]:
    """The real app under uvicorn on a free loopback port, in a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # the bound socket goes to uvicorn: no window for another process to take the port
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(context, embedded_worker=False), log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=15)
    sock.close()


def _build(base: str, context: Context) -> dict[str, int]:
    """Incident, postmortem, two findings and actions, all over HTTP; the tracker key is set directly."""
    with httpx.Client(base_url=base, timeout=10) as http:
        body = pd_event("incident.triggered", event_id="E1", urgency="low", at="2026-03-14T09:12:04.617Z")
        headers = {"X-PagerDuty-Signature": pd_signature(body), "Content-Type": "application/json"}
        assert http.post("/webhooks/pagerduty", content=body, headers=headers).status_code == 202
        Worker(context).apply_inbox()  # the embedded worker is off: apply the stored event as it would
        incident = http.get("/api/v1/incidents", headers=WRITE).json()["items"][0]
        pm = http.post(f"/api/v1/incidents/{incident['id']}/postmortem", headers=WRITE).json()
        first = {
            "kind": "root_cause",
            "statement": "Pool too small",
            "evidence": "\n".join(f"Pool wait sample {n}: saturated, requests queued behind it." for n in range(60)),
        }
        second = {
            "kind": "detection_gap",
            "statement": 'No alert on <b>pool</b> saturation & "retries"',
            "whys": ["no metric", "no owner", "no review"],
        }
        f1, f2 = (
            http.post(f"/api/v1/postmortems/{pm['id']}/findings", json=f, headers=WRITE).json() for f in (first, second)
        )
        action_ids = []
        # Enough actions below the second finding that the browser can scroll it to the top of the viewport.
        for n, finding in enumerate([f2, f1, f1, f1, f1, f1, f1]):
            answer = {"title": f"Remedy {n}", "kind": "monitoring", "finding_ids": [finding["id"]]}
            response = http.post(f"/api/v1/postmortems/{pm['id']}/actions", json=answer, headers=WRITE)
            assert response.status_code == 201, response.text
            action_ids.append(response.json()["id"])
    with context.write() as session:
        action = session.get(Action, action_ids[0])
        assert action is not None
        action.status, action.tracker_key, action.tracker_url, action.tracker_status = (
            "open",
            "OPS-7",
            TRACKER_URL,
            "To Do",
        )
        session.add(action)
    return {"postmortem": pm["id"], "finding1": f1["id"], "finding2": f2["id"], "action": action_ids[0]}


class DevTools:
    """Just enough of the Chrome DevTools protocol: commands by id, events kept until waited for."""

    def __init__(self, url: str) -> None:
        from websockets.sync.client import connect

        self.ws = connect(url, max_size=None, open_timeout=15)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == self.next_id:
                assert "error" not in message, (method, message["error"])
                return dict(message["result"])
            self.events.append(message)

    def wait_for(self, event: str) -> dict[str, Any]:
        while True:
            for message in self.events:
                if message.get("method") == event:
                    self.events.remove(message)
                    return message
            self.events.append(json.loads(self.ws.recv(timeout=30)))

    def js(self, expression: str) -> Any:
        answer = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in answer, answer["exceptionDetails"]
        return answer["result"].get("value")

    def close(self) -> None:
        self.ws.close()


def _start_chromium(binary: str, profile: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Chromium with DevTools on a port it picks itself; returns the process and the page's websocket URL."""
    process = subprocess.Popen(
        [binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, so cleanup reaches the renderers it forks and nothing else
    )
    port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text().strip()):
        assert process.poll() is None and time.monotonic() < deadline, "Chromium did not open its DevTools port"
        time.sleep(0.05)
    port = port_file.read_text().split()[0]
    targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
    return process, next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _png_rows(png: bytes, count: int) -> list[list[tuple[int, int, int]]]:
    """The first `count` rows of an 8-bit RGB/RGBA PNG as pixels (enough of a decoder for a screenshot check)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    offset, idat, header = 8, b"", b""
    while offset < len(png):
        length, kind = struct.unpack(">I4s", png[offset : offset + 8])
        chunk = png[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
        offset += 12 + length
    width, _height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
    bpp = 3 if color == 2 else 4
    stride, raw = width * bpp, zlib.decompress(idat)
    rows: list[list[tuple[int, int, int]]] = []
    previous = bytearray(stride)
    for y in range(count):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left, up = line[x - bpp] if x >= bpp else 0, previous[x]
            corner = previous[x - bpp] if x >= bpp else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append([(line[i], line[i + 1], line[i + 2]) for i in range(0, stride, bpp)])
        previous = line
    return rows


def _near(pixel: tuple[int, int, int], colour: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 3 for a, b in zip(pixel, colour, strict=True))


def test_backlink_page_in_headless_chromium(server: str, context: Context, tmp_path: Path) -> None:
    binary = _chromium()
    ids = _build(server, context)
    host = server.removeprefix("http://")
    page = f"http://reader:{READ_TOKEN}@{host}/postmortems/{ids['postmortem']}"

    # 1. Chromium's CLI: the token as URL credentials gets the page (it answers the Basic challenge with them).
    dom = subprocess.run(
        [binary, *FLAGS, f"--user-data-dir={tmp_path / 'cli'}", "--dump-dom", f"{page}#finding-{ids['finding2']}"],
        capture_output=True,
        timeout=90,
        check=True,
    ).stdout.decode()
    assert "missing or unknown API token" not in dom, "Chromium did not send the URL credentials"
    for anchor in (f"finding-{ids['finding1']}", f"finding-{ids['finding2']}", f"action-{ids['action']}"):
        assert f'id="{anchor}"' in dom, anchor
    assert f'<a class="tracker" href="{TRACKER_URL}">OPS-7</a>' in dom
    assert 'No alert on &lt;b&gt;pool&lt;/b&gt; saturation &amp; "retries"' in dom and "<b>pool</b>" not in dom

    # 2. DevTools: open the backlink as a tracker issue links it, then click the action's link to the other finding.
    process, ws_url = _start_chromium(binary, tmp_path / "cdp")
    try:
        tab = DevTools(ws_url)
        tab.call("Page.enable")
        tab.call(
            "Emulation.setDeviceMetricsOverride",
            width=VIEWPORT[0],
            height=VIEWPORT[1],
            deviceScaleFactor=1,
            mobile=False,
        )
        assert "errorText" not in tab.call("Page.navigate", url=f"{page}#finding-{ids['finding1']}")
        tab.wait_for("Page.loadEventFired")
        assert tab.js("document.title").startswith("PM-")
        assert tab.js("document.querySelector(':target').id") == f"finding-{ids['finding1']}"
        assert tab.js("window.scrollY") > 0, "the backlink did not scroll to its finding"

        link = f"#action-{ids['action']} a[href='#finding-{ids['finding2']}']"
        tab.js(f'document.querySelector("{link}").scrollIntoView({{block: "center"}})')
        x, y = tab.js(
            f'(r => [r.x + r.width / 2, r.y + r.height / 2])(document.querySelector("{link}").getBoundingClientRect())'
        )
        for kind in ("mousePressed", "mouseReleased"):
            tab.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
        tab.js("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")  # let it paint
        target = f"finding-{ids['finding2']}"
        assert tab.js("location.hash") == f"#{target}"
        assert tab.js("document.querySelector(':target').id") == target
        assert abs(tab.js(f"document.getElementById('{target}').getBoundingClientRect().top")) <= 2
        assert tab.js(f"getComputedStyle(document.getElementById('{target}')).backgroundColor") == "rgb(255, 244, 230)"
        shot = base64.b64decode(tab.call("Page.captureScreenshot", format="png")["data"])
        tab.close()
    finally:
        _stop(process)

    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"postmortem-{target}-{context.engine.dialect.name}.png"
    path.write_bytes(shot)
    assert len(shot) > 10_000
    assert struct.unpack(">II", shot[16:24]) == VIEWPORT
    # The followed finding sits at the top of the viewport, highlighted by its :target style.
    top = _png_rows(shot, 12)
    assert sum(_near(p, HIGHLIGHT) for row in top for p in row) > 5_000
    assert any(_near(p, TARGET_BORDER) for p in top[5])


def test_page_without_token_asks_for_basic_auth_and_escapes_user_text(server: str, context: Context) -> None:
    ids = _build(server, context)
    url = f"{server}/postmortems/{ids['postmortem']}"
    anonymous = httpx.get(url, timeout=10)
    assert anonymous.status_code == 401
    # Browsers read one challenge per header line; a comma-joined "Bearer, Basic ..." is never prompted for.
    challenges = anonymous.headers.get_list("www-authenticate")
    assert 'Basic realm="aftermath"' in challenges and "Bearer" in challenges
    assert httpx.get(url, auth=("reader", "wrong"), timeout=10).status_code == 401
    page = httpx.get(url, auth=("reader", READ_TOKEN), timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "No alert on &lt;b&gt;pool&lt;/b&gt; saturation &amp; &#34;retries&#34;" in page.text
    assert "<b>pool</b>" not in page.text
