"""Credentials never reach results.json, stdout, stderr or an exception: the userinfo of a base URL
(``http://user:pass@host``), the API key, and any ``Authorization``/``Bearer`` value a failing
server echoes back (issue 17, item 12). Real servers on 127.0.0.1 (tests/http_servers.py)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from evalkit.config import BackendOptions, JudgeConfig, RunConfig
from evalkit.errors import ConfigError
from evalkit.redaction import redact, redact_url
from tests.http_servers import ScriptedServer

KEY = "sk-redact-7f6e5d4c3b2a1908"
PASSWORD = "pw-4c1d8e2f9a"


def _with_userinfo(url: str, user: str = "alice", password: str = PASSWORD) -> str:
    return url.replace("http://", f"http://{user}:{password}@")


def _leaks(tmp_path: Path, *texts: str, secrets: tuple[str, ...]) -> list[str]:
    """The secrets found in any file under tmp_path or in the texts."""
    found = [s for s in secrets for t in texts if s in t]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{s} in {path}" for s in secrets if s.encode() in data]
    return found


@pytest.mark.parametrize(
    "text, secret",
    [
        ("http://alice:pw-1@127.0.0.1:8000/v1", "pw-1"),
        ("https://alice@example.org/v1", "alice"),
        ("http://a:pw-2@[::1]:9/v1,http://b:pw-3@h2/v1", "pw-3"),
        ("cannot connect to http://u:pw-4@host/v1/models (refused)", "pw-4"),
        ("u:pw-5@127.0.0.1:8000/v1", "pw-5"),
        ("http://host/v1?api_key=pw-6&x=1", "pw-6"),
        ("headers were {'Authorization': 'Bearer pw-7', 'Host': 'x'}", "pw-7"),
        ('{"authorization": "Basic cHctOA=="}', "cHctOA=="),
        ("Authorization: Bearer pw-9\r\nHost: x", "pw-9"),
        ("invalid token bearer pw-10 given", "pw-10"),
        ("X-Api-Key: pw-11", "pw-11"),
        ("proxy said: api_key=pw-12", "pw-12"),
    ],
)
def test_redact_removes_credentials(text, secret):
    assert secret not in redact(text)


def test_redact_removes_known_secrets_anywhere_and_keeps_the_rest():
    assert redact(f"key was {KEY}!", [KEY]) == "key was ***!"
    assert redact_url("http://alice:pw@127.0.0.1:8000/v1") == "http://***@127.0.0.1:8000/v1"
    for harmless in ["http://127.0.0.1:8000/v1/models", "mail bob@example.org at 10:30", "max_tokens: 16 tokens"]:
        assert redact(harmless) == harmless


def test_the_config_in_results_has_no_userinfo():
    options = BackendOptions(base_url=_with_userinfo("http://127.0.0.1:1/v1") + ",http://bob:pw-b@h:2/v1")
    judge = BackendOptions(base_url=_with_userinfo("http://127.0.0.1:3/v1", "judge", "pw-j"))
    config = RunConfig(model=None, tasks=("t",), backend_options=options, judges=JudgeConfig(options=judge)).to_json()
    text = json.dumps(config)
    assert PASSWORD not in text and "pw-b" not in text and "pw-j" not in text and "alice" not in text
    assert config["backend_options"]["base_url"] == "http://***@127.0.0.1:1/v1,http://***@h:2/v1"
    assert config["judge_options"]["base_url"] == "http://***@127.0.0.1:3/v1"


def test_a_bad_base_url_is_named_without_its_password():
    with pytest.raises(ConfigError) as caught:
        BackendOptions(base_url=f"alice:{PASSWORD}@127.0.0.1:8000/v1")
    assert PASSWORD not in str(caught.value) and "must start with http" in str(caught.value)


def test_a_run_records_no_userinfo_of_the_server_or_the_judge(tmp_path, cli):
    server = ScriptedServer(lambda body, count: ("text", "Score: 3") if "Response:" in json.dumps(body) else None)
    url = _with_userinfo(server.url)
    judge_url = _with_userinfo(server.url, "judge", "pw-judge-55")
    try:
        result = cli(
            "run", "--tasks", "smoke_arithmetic", "--limit", "2", "--n", "2", "--backend", "openai",
            "--base-url", url, "--judge", "scripted", "--judge-backend", "openai", "--judge-base-url", judge_url,
            "--judge-rubric", "quality", "--output-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
            "--run-id", "creds",
        )  # fmt: skip
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "out" / "creds" / "results.json").read_text())
    assert results["config"]["backend_options"]["base_url"] == redact_url(url)
    assert results["versions"]["server"] == redact_url(url)
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    secrets = (PASSWORD, "pw-judge-55", basic)
    assert not _leaks(tmp_path, result.stdout, result.stderr, secrets=secrets)


@pytest.mark.parametrize("status", [400, 401])
def test_a_server_that_echoes_the_key_is_relayed_redacted(tmp_path, cli, status):
    server = ScriptedServer(lambda body, count: ("echo", status))
    try:
        result = cli(
            "run", "--tasks", "smoke_arithmetic", "--limit", "2", "--backend", "openai", "--quiet",
            "--base-url", _with_userinfo(server.url), "--api-key-env", "EVALKIT_REDACT_KEY",
            "--output-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
            env={"EVALKIT_REDACT_KEY": KEY},
        )  # fmt: skip
    finally:
        server.close()
    assert any("Authorization" in h for h in server.headers)  # it did get the credentials
    assert result.returncode == 2 and result.stderr.startswith("error: ") and f"HTTP {status}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "headers were" in result.stderr and "***" in result.stderr  # the message itself is kept
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert not _leaks(tmp_path, result.stdout, result.stderr, secrets=(KEY, PASSWORD, basic))


def test_a_garbled_answer_that_echoes_the_key_is_relayed_redacted(tmp_path, cli):
    server = ScriptedServer(lambda body, count: ("echo_text", 200))
    try:
        result = cli(
            "run", "--tasks", "smoke_arithmetic", "--limit", "1", "--backend", "openai", "--max-retries", "0",
            "--base-url", server.url, "--api-key-env", "EVALKIT_REDACT_KEY", "--output-dir", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache"), env={"EVALKIT_REDACT_KEY": KEY},
        )  # fmt: skip
    finally:
        server.close()
    assert result.returncode == 2 and "malformed response" in result.stderr
    assert not _leaks(tmp_path, result.stdout, result.stderr, secrets=(KEY, KEY[:12]))


def test_a_key_that_cannot_be_a_header_is_refused_without_showing_it(tmp_path, cli):
    server = ScriptedServer()
    try:
        result = cli(
            "run", "--tasks", "smoke_arithmetic", "--limit", "1", "--backend", "openai", "--base-url", server.url,
            "--api-key-env", "EVALKIT_REDACT_KEY", "--output-dir", str(tmp_path / "out"),
            env={"EVALKIT_REDACT_KEY": KEY + "\n"},
        )  # fmt: skip
    finally:
        server.close()
    assert result.returncode == 2 and "EVALKIT_REDACT_KEY" in result.stderr and "Traceback" not in result.stderr
    assert KEY not in result.stderr + result.stdout
