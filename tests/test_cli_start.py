"""Starting where a user stands: from any directory with nothing set (editable and non-editable installs), the
shipped mappings; `init`; empty mapping files refused; check-mappings says what the rules say; SIGHUP reloads."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALLED = Path(sys.executable).parent / "aftermath"  # the console script of the (editable) install


def _clean_env(**extra: str) -> dict[str, str]:
    """Nothing of ours set, and no PYTHONPATH: the command must find everything from its install."""
    keep = {"PATH", "HOME", "LANG", "TMPDIR"}
    return {**{k: v for k, v in os.environ.items() if k in keep}, **extra}


def _run(cwd: Path, *args: str, command: Path = INSTALLED, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(command), *args], cwd=cwd, env=_clean_env(**extra), capture_output=True, text=True, timeout=120
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(cwd: Path, port: int, command: Path = INSTALLED, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(command), "serve", "--port", str(port)],
        cwd=cwd,
        env=_clean_env(**extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_ready(port: int, proc: subprocess.Popen[str]) -> None:
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read() if proc.stdout else "exited")
        time.sleep(0.1)
    raise AssertionError("not ready")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    return out


def _serves_from(cwd: Path, command: Path = INSTALLED) -> str:
    port = _free_port()
    proc = _serve(cwd, port, command)
    try:
        _wait_ready(port, proc)
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/incidents").status_code == 401
        # Behind a TLS proxy on this host, the docs page links its assets as https, or a browser blocks them.
        docs = httpx.get(f"http://127.0.0.1:{port}/docs", headers={"X-Forwarded-Proto": "https"}).text
        assert f"https://127.0.0.1:{port}/swagger/swagger-ui-bundle.js" in docs, docs
    finally:
        out = _stop(proc)
    assert re.search(r"^\s+am_\S+\s*$", out, re.MULTILINE), out  # the first token, printed once
    return out


def test_serve_and_check_mappings_from_an_empty_directory_with_nothing_set(tmp_path: Path) -> None:
    _serves_from(tmp_path)
    assert (tmp_path / "aftermath.db").exists()
    checked = _run(tmp_path, "check-mappings")
    assert checked.returncode == 0, checked.stderr
    assert f"{ROOT / 'mappings'}: ok (the shipped mappings" in checked.stdout
    assert "high-severity: severity sev1 or sev2" in checked.stdout
    assert "service Checkout API → jira OPS Task" in checked.stdout and "SIGHUP" in checked.stdout


def test_init_writes_a_copy_that_is_then_used_and_kept(tmp_path: Path) -> None:
    made = _run(tmp_path, "init")
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in (tmp_path / "mappings").iterdir()) == sorted(
        p.name for p in (ROOT / "mappings").glob("*.yaml")
    )
    triggers = tmp_path / "mappings" / "triggers.yaml"
    triggers.write_text("review_due_days: 3\nrules: []\n")
    again = _run(tmp_path, "init")
    assert f"kept {Path('mappings') / 'triggers.yaml'} (exists)" in again.stdout
    assert triggers.read_text() == "review_due_days: 3\nrules: []\n"
    checked = _run(tmp_path, "check-mappings")
    assert checked.returncode == 0 and f"{tmp_path / 'mappings'}: ok\n" in checked.stdout, checked.stdout
    assert f"triggers.yaml ({Path('mappings') / 'triggers.yaml'})" in checked.stdout
    assert "review due 3 days later" in checked.stdout and "no rules" in checked.stdout
    # The shipped ladder, read as the sweep applies it.
    assert "3 days overdue → manager\n" in checked.stdout and "7 days overdue → facilitator\n" in checked.stdout
    (tmp_path / "mappings" / "escalation.yaml").write_text("ladder: [{after_days: 2, to: lead@example.com}]\n")
    edited = _run(tmp_path, "check-mappings").stdout
    assert "2 days overdue → lead@example.com\n" in edited and "manager" not in edited.split("escalation.yaml")[1]


def test_a_wrong_folder_names_the_path_tried_and_the_fix(tmp_path: Path) -> None:
    result = _run(tmp_path, "serve", AFTERMATH_MAPPINGS="maps")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"aftermath: AFTERMATH_MAPPINGS: maps (from {tmp_path}) is not a folder; point it at a folder of mapping "
        "files, or unset it to use the shipped ones (`aftermath init` writes a copy to edit)"
    )


@pytest.mark.parametrize("content", ["", "# all rules removed\n", "{}\n"])
def test_an_empty_mapping_file_is_an_error(tmp_path: Path, content: str) -> None:
    folder = tmp_path / "maps"
    folder.mkdir()
    (folder / "severity.yaml").write_text(content)
    for command in ("check-mappings", "serve"):
        result = _run(tmp_path, command, AFTERMATH_MAPPINGS=str(folder))
        assert result.returncode == 2, result.stdout
        assert result.stderr.strip() == (
            f"aftermath: mapping file {folder / 'severity.yaml'}: the file is empty; write its rules, or "
            "delete it to use the shipped one"
        )


def test_a_folder_holds_only_the_files_it_changes(tmp_path: Path) -> None:
    folder = tmp_path / "maps"
    folder.mkdir()
    (folder / "people.yaml").write_text("{}\n")  # nobody to assign: an empty mapping of people is a statement
    checked = _run(tmp_path, "check-mappings", AFTERMATH_MAPPINGS=str(folder))
    assert checked.returncode == 0, checked.stderr
    assert f"people.yaml ({folder / 'people.yaml'}): nobody is assigned" in checked.stdout
    assert "severity.yaml (shipped default)" in checked.stdout


def _signed(body: bytes) -> dict[str, str]:
    signature = "v1=" + hmac.new(b"pd-secret-for-tests", body, hashlib.sha256).hexdigest()
    return {"X-PagerDuty-Signature": signature, "Content-Type": "application/json"}


def _incident_body(key: str) -> bytes:
    data = {
        "id": key,
        "type": "incident",
        "status": "triggered",
        "title": "Low",
        "urgency": "low",
        "service": {"id": "S", "type": "service_reference", "summary": "Search"},
    }
    event = {
        "id": f"E-{key}",
        "event_type": "incident.triggered",
        "resource_type": "incident",
        "occurred_at": "2026-03-14T09:00:00.000Z",
        "agent": None,
        "client": None,
        "data": data,
    }
    return json.dumps({"event": event}).encode()


def _review_due(base: str, headers: dict[str, str], key: str) -> str:
    body = _incident_body(key)
    assert httpx.post(f"{base}/webhooks/pagerduty", content=body, headers=_signed(body)).status_code == 202
    for _ in range(100):
        found = [
            i for i in httpx.get(f"{base}/api/v1/incidents", headers=headers).json()["items"] if i["external_id"] == key
        ]
        if found:
            break
        time.sleep(0.1)
    opened = httpx.post(f"{base}/api/v1/incidents/{found[0]['id']}/postmortem", headers=headers)
    assert opened.status_code == 201, opened.text
    return str(opened.json()["review_due"])


def _log_line(proc: subprocess.Popen[str], needle: str) -> str:
    assert proc.stdout is not None
    deadline = time.time() + 30
    while time.time() < deadline:
        line = proc.stdout.readline()
        if needle in line:
            return line
    raise AssertionError(f"no log line with {needle!r}")


def test_sighup_reloads_the_mappings_and_keeps_them_when_the_new_ones_are_invalid(tmp_path: Path) -> None:
    folder = tmp_path / "maps"
    shutil.copytree(ROOT / "mappings", folder)
    token = "reload-test-token-0123"
    port = _free_port()
    extra = {
        "AFTERMATH_MAPPINGS": str(folder),
        "AFTERMATH_API_TOKENS": token,
        "AFTERMATH_PAGERDUTY_SECRETS": "pd-secret-for-tests",
    }
    proc = _serve(tmp_path, port, **extra)
    base, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
    try:
        _wait_ready(port, proc)
        today = date.today()
        assert _review_due(base, headers, "QR1") == (today + timedelta(days=7)).isoformat()
        (folder / "triggers.yaml").write_text("review_due_days: 3\nrules: []\n")
        proc.send_signal(signal.SIGHUP)
        assert str(folder) in _log_line(proc, "mappings reloaded from")
        assert _review_due(base, headers, "QR2") == (today + timedelta(days=3)).isoformat()
        (folder / "triggers.yaml").write_text("")
        proc.send_signal(signal.SIGHUP)
        line = _log_line(proc, "mappings not reloaded")
        assert "the previous ones stay in use" in line and "triggers.yaml: the file is empty" in line
        assert _review_due(base, headers, "QR3") == (today + timedelta(days=3)).isoformat()
    finally:
        _stop(proc)

    (folder / "triggers.yaml").write_text("rules: []\n")
    worker = subprocess.Popen(
        [str(INSTALLED), "worker"],
        cwd=tmp_path,
        env=_clean_env(**extra, AFTERMATH_WORKER="off"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _log_line(worker, "started")
        (folder / "severity.yaml").write_text("default: [not, a, severity]\n")
        worker.send_signal(signal.SIGHUP)
        assert "severity.yaml: default" in _log_line(worker, "mappings not reloaded")
        shutil.copy(ROOT / "mappings" / "severity.yaml", folder / "severity.yaml")
        worker.send_signal(signal.SIGHUP)
        _log_line(worker, "mappings reloaded from")
    finally:
        _stop(worker)


def test_a_non_editable_install_serves_from_any_directory(tmp_path: Path) -> None:
    """The wheel carries the mappings and the migrations; its dependencies come from this venv (no index needed)."""
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(wheels)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python*/site-packages"))
    dependencies = next(Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(site),
            *map(str, wheels.glob("*.whl")),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    (site / "dependencies.pth").write_text(f"{dependencies}\n")  # appended after the wheel's own files
    python = venv / "bin" / "python"
    command = tmp_path / "aftermath"
    command.write_text(f"#!{python}\nfrom app.cli import main\nmain()\n")
    command.chmod(0o755)
    where = subprocess.run(
        [str(python), "-c", "import app; print(app.__file__)"], capture_output=True, text=True, cwd="/"
    )
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    _serves_from(fresh, command)
    checked = _run(fresh, "check-mappings", command=command)
    assert checked.returncode == 0 and f"{site / 'app' / 'bundled' / 'mappings'}: ok" in checked.stdout, checked.stdout
