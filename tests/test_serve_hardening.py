"""`evalkit serve` under load and abuse, on 127.0.0.1: many clients at once, slow and half-sent
requests, malformed requests (each a 400 with an OpenAI-style JSON error), the limits on what a
request may ask for, and the optional bearer token. Every loop here is bounded in count, and
every wait has a generous deadline: nothing depends on how fast this machine is."""

from __future__ import annotations

import http.client
import json
import select
import selectors
import socket
import threading
import time

import pytest
import requests

from tests.http_servers import EvalkitServer

KEY_VARIABLE = "EVALKIT_SERVE_TEST_KEY"
KEY = "sk-serve-5e4d3c2b1a09f8e7"
AUTH = {"Authorization": f"Bearer {KEY}"}
GUARDED_LIMITS = {"connections": 8, "n": 4, "max_tokens": 8, "prompt_tokens": 256, "body_bytes": 4096}
REJECTERS = 16  # connections answered 503 at once, beyond --max-connections (evalkit/serve_http.py)
PATIENCE = 120.0  # seconds: a deadline for things that take well under a second


@pytest.fixture(scope="module")
def served():
    server = EvalkitServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def guarded():
    """A server with a key, small limits and a 2-second window to send a request."""
    server = EvalkitServer(
        "--api-key-env", KEY_VARIABLE, "--read-timeout", "2",
        "--max-connections", str(GUARDED_LIMITS["connections"]), "--max-n", str(GUARDED_LIMITS["n"]),
        "--max-tokens-limit", str(GUARDED_LIMITS["max_tokens"]),
        "--max-prompt-tokens", str(GUARDED_LIMITS["prompt_tokens"]),
        "--max-body-bytes", str(GUARDED_LIMITS["body_bytes"]),
        env={KEY_VARIABLE: KEY},
    )  # fmt: skip
    yield server
    server.close()


def _completion(**fields) -> dict:
    return {"prompt": "The capital of France is", "max_tokens": 2, "temperature": 0, **fields}


def _assert_openai_error(response: requests.Response | tuple[int, dict], status: int) -> str:
    code, payload = (response.status_code, response.json()) if hasattr(response, "json") else response
    assert code == status, payload
    error = payload["error"]
    assert isinstance(error["message"], str) and error["message"] and isinstance(error["type"], str)
    assert len(error["message"]) <= 500  # a user's value is echoed cut short
    return error["message"]


def _read_response(sock: socket.socket) -> tuple[int, dict, dict]:
    """(status, JSON body, headers) of one HTTP response read from a raw socket."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = response.read()
    return response.status, json.loads(body) if body else {}, dict(response.getheaders())


def _raw(address: tuple[str, int], data: bytes) -> tuple[int, dict, dict]:
    with socket.create_connection(address, timeout=PATIENCE) as sock:
        sock.sendall(data)
        return _read_response(sock)


def test_64_concurrent_clients_are_all_answered(served):
    clients = 64
    start = threading.Barrier(clients)
    outcomes: list[object] = [None] * clients

    def client(i: int) -> None:
        start.wait(timeout=PATIENCE)
        try:
            body = _completion(prompt=f"Client {i} counts: 1, 2,")  # same sampling values: batched, as in a run
            response = requests.post(served.url + "/completions", json=body, timeout=PATIENCE)
            outcomes[i] = (response.status_code, len(response.json()["choices"]))
        except requests.RequestException as exc:
            outcomes[i] = exc

    for _round in range(2):
        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=PATIENCE * 2)
        assert outcomes == [(200, 1)] * clients


@pytest.mark.parametrize(
    "fields",
    [
        {"stop": 5},
        {"stop": [5]},
        {"stop": [""]},
        {"stop": {"a": 1}},
        {"stop": ["s"] * 100},
        {"stop": ["x" * 5000]},
        {"prompt": ""},
        {"prompt": ["a list", "of prompts"]},
        {"prompt": None},
        {"max_tokens": 0},
        {"max_tokens": -3},
        {"max_tokens": "8"},
        {"max_tokens": 2.5},
        {"max_tokens": True},
        {"max_completion_tokens": 0},
        {"n": 0},
        {"n": "2"},
        {"temperature": "hot"},
        {"temperature": -1},
        {"top_p": 0},
        {"top_k": -1},
        {"seed": -1},
        {"seed": 2**80},
        {"stream": True},
        {"model": ["not", "a", "name"]},
        {"model": "another-model"},
    ],
)
def test_malformed_completion_fields_get_400(served, fields):
    response = requests.post(served.url + "/completions", json=_completion(**fields), timeout=PATIENCE)
    _assert_openai_error(response, 400)


@pytest.mark.parametrize(
    "body",
    [
        {"messages": []},
        {"messages": "hi"},
        {"messages": [{"role": "user"}]},
        {"messages": [{"role": "user", "content": 5}]},
        {"messages": [{"role": "user", "content": "hi"}], "stop": 5},
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0},
    ],
)
def test_malformed_chat_fields_get_400(served, body):
    response = requests.post(served.url + "/chat/completions", json=body, timeout=PATIENCE)
    _assert_openai_error(response, 400)


def test_null_fields_mean_the_default(served):
    body = _completion(temperature=None, top_p=None, top_k=None, seed=None, stop=None, n=None)
    response = requests.post(served.url + "/completions", json={**body, "max_tokens": 2}, timeout=PATIENCE)
    assert response.status_code == 200 and len(response.json()["choices"]) == 1


def _post(body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers) or f"Content-Length: {len(body)}\r\n"
    return f"POST /v1/completions HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode() + body


MALFORMED_HTTP = {
    "content length not a number": _post(b"{}", "Content-Length: abc"),
    "content length negative": _post(b"{}", "Content-Length: -5"),
    "content length with a sign": _post(b"{}", "Content-Length: +2"),
    "two content lengths": _post(b"{}", "Content-Length: 2", "Content-Length: 3"),
    "no content length": _post(b"", "Accept: */*"),
    "chunked body": _post(b"2\r\n{}\r\n0\r\n\r\n", "Transfer-Encoding: chunked"),
    "body not utf-8": _post(b"\xff\xfe{}"),
    "body not json": _post(b"{not json"),
    "body a json list": _post(b"[]"),
    "json nested too deep": _post(b"[" * 200_000),
    "integer too long to read": _post(b'{"prompt": "hi", "n": ' + b"9" * 5000 + b"}"),
    "garbage request line": b"\x00\x01 nonsense\r\n\r\n",
    "malformed http version": b"POST /v1/completions HTTP/1.x\r\nContent-Length: 2\r\n\r\n{}",
}


@pytest.mark.parametrize("name", sorted(MALFORMED_HTTP))
def test_malformed_http_gets_a_json_400_and_the_server_stays_up(served, name):
    status, payload, _ = _raw(served.address, MALFORMED_HTTP[name])
    _assert_openai_error((status, payload), 400)
    response = requests.post(served.url + "/completions", json=_completion(), timeout=PATIENCE)
    assert response.status_code == 200


def test_other_http_failures_are_json_too(served):
    long_header = b"GET /health HTTP/1.1\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n"
    status, payload, _ = _raw(served.address, long_header)
    assert 400 <= status < 500 and payload["error"]["message"]
    status, payload, _ = _raw(served.address, b"DELETE /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 501 and payload["error"]["message"]
    status, payload, _ = _raw(served.address, b"GET /v1/nothing?x=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 404 and payload["error"]["message"]
    status, payload, _ = _raw(served.address, b"POST /v1/completions HTTP/9.9\r\nContent-Length: 2\r\n\r\n{}")
    assert status == 505 and payload["error"]["message"]


def test_limits_have_defaults(served):
    """n=100000 with max_tokens=1 once grew the server to 23.7 GB; max_tokens=10**12 was a 500."""
    cases = [
        ({"n": 100000, "max_tokens": 1, "temperature": 1.0}, "--max-n"),
        ({"max_tokens": 10**12}, "--max-tokens-limit"),
        ({"max_completion_tokens": 10**8}, "--max-tokens-limit"),
        ({"prompt": "word " * 20000}, "--max-prompt-tokens"),
    ]
    for fields, option in cases:
        response = requests.post(served.url + "/completions", json=_completion(**fields), timeout=PATIENCE)
        assert option in _assert_openai_error(response, 400)


def test_a_50_mb_body_is_refused_and_the_client_reads_the_answer(served):
    body = json.dumps({"prompt": "x" * 50_000_000, "max_tokens": 1})
    response = requests.post(served.url + "/completions", data=body, timeout=PATIENCE)
    assert "--max-body-bytes" in _assert_openai_error(response, 400)
    # A client that announces a large body and sends nothing is answered at once.
    status, payload, headers = _raw(
        served.address, b"POST /v1/completions HTTP/1.1\r\nContent-Length: 50000000\r\n\r\n"
    )
    _assert_openai_error((status, payload), 400)
    assert headers.get("Connection") == "close"


def test_limits_follow_the_options(guarded):
    url = guarded.url + "/completions"
    ok = _completion(n=GUARDED_LIMITS["n"], max_tokens=GUARDED_LIMITS["max_tokens"], temperature=1.0)
    assert requests.post(url, json=ok, headers=AUTH, timeout=PATIENCE).status_code == 200
    for fields, option in [
        ({"n": GUARDED_LIMITS["n"] + 1}, "--max-n"),
        ({"max_tokens": GUARDED_LIMITS["max_tokens"] + 1}, "--max-tokens-limit"),
        ({"prompt": "word " * (GUARDED_LIMITS["prompt_tokens"] + 1)}, "--max-prompt-tokens"),
        ({"prompt": "w" * GUARDED_LIMITS["body_bytes"]}, "--max-body-bytes"),
    ]:
        response = requests.post(url, json={**ok, **fields}, headers=AUTH, timeout=PATIENCE)
        assert option in _assert_openai_error(response, 400)


def test_the_bearer_token_is_required(guarded):
    url = guarded.url + "/completions"
    for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"},
                    {"Authorization": f"Bearer {KEY}x"}, {"Authorization": f"Bearer {KEY[:-1]}"}]:  # fmt: skip
        response = requests.post(url, json=_completion(), headers=headers, timeout=PATIENCE)
        _assert_openai_error(response, 401)
        assert KEY not in response.text
    assert requests.get(guarded.url + "/models", timeout=PATIENCE).status_code == 401
    assert requests.get(guarded.url + "/models", headers=AUTH, timeout=PATIENCE).status_code == 200
    lower = {"Authorization": f"bearer {KEY}"}
    assert requests.post(url, json=_completion(), headers=lower, timeout=PATIENCE).status_code == 200
    health = requests.get(guarded.url.removesuffix("/v1") + "/health", timeout=PATIENCE)
    assert health.status_code == 200 and health.json() == {"status": "ok"}


def test_the_openai_backend_sends_the_key_and_a_wrong_key_is_one_line(guarded, cli, tmp_path):
    args = [
        "run", "--tasks", "smoke_arithmetic", "--limit", "2", "--n", "2", "--max-tokens", "8", "--quiet",
        "--backend", "openai", "--base-url", guarded.url, "--api-key-env", KEY_VARIABLE,
        "--output-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    good = cli(*args, "--run-id", "good", env={KEY_VARIABLE: KEY})
    assert good.returncode == 0, good.stderr
    wrong = cli(*args, "--run-id", "wrong", "--no-cache", env={KEY_VARIABLE: "sk-wrong-0123456789"})
    assert wrong.returncode == 2 and wrong.stderr.startswith("error: ") and "401" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1 and "sk-wrong-0123456789" not in wrong.stderr


def test_serve_refuses_bad_settings_with_one_line(cli):
    unset = cli("serve", "--api-key-env", "EVALKIT_SERVE_UNSET_KEY", "--port", "0", timeout=PATIENCE)
    assert unset.returncode == 2 and unset.stderr.startswith("error: ") and "EVALKIT_SERVE_UNSET_KEY" in unset.stderr
    assert len(unset.stderr.strip().splitlines()) == 1
    for option in ["--max-n", "--max-tokens-limit", "--max-prompt-tokens", "--max-body-bytes", "--max-connections"]:
        bad = cli("serve", option, "0", "--port", "0", timeout=PATIENCE)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr and option in bad.stderr
    bad = cli("serve", "--read-timeout", "0", "--port", "0", timeout=PATIENCE)
    assert bad.returncode == 2 and "--read-timeout" in bad.stderr


def _half_sent(address: tuple[str, int]) -> socket.socket:
    """A connection that sent the headers (with the key) and 10 of the 100 bytes of its body."""
    sock = socket.create_connection(address, timeout=PATIENCE)
    head = f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Length: 100\r\n\r\n"
    sock.sendall(head.encode() + b'{"prompt":')
    return sock


def _outcome(sock: socket.socket) -> int | str:
    """The status the server answered on this connection, or "closed" if it closed without one."""
    try:
        return _read_response(sock)[0]
    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
        return "closed"


def test_half_sent_requests_hold_neither_threads_nor_the_server(guarded):
    """150 half-sent requests once held 150 threads for good. Now the connections beyond
    --max-connections are refused at once (503), the others are answered 408 once their time to
    send the request is up, the server's threads stay bounded all along, and it answers after."""
    warm = requests.post(guarded.url + "/completions", json=_completion(), headers=AUTH, timeout=PATIENCE)
    assert warm.status_code == 200
    baseline = guarded.threads()
    bound = baseline + GUARDED_LIMITS["connections"] + REJECTERS + 2
    sockets = [_half_sent(guarded.address) for _ in range(150)]
    most_threads = guarded.threads()
    outcomes: dict[socket.socket, int | str] = {}
    selector = selectors.DefaultSelector()
    for sock in sockets:
        selector.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + PATIENCE
    while len(outcomes) < len(sockets) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=1.0):
            selector.unregister(key.fileobj)
            outcomes[key.fileobj] = _outcome(key.fileobj)
            key.fileobj.close()
        most_threads = max(most_threads, guarded.threads())
    selector.close()
    for sock in sockets:
        sock.close()
    assert len(outcomes) == len(sockets), f"{len(sockets) - len(outcomes)} connections got no answer"
    assert set(outcomes.values()) <= {503, 408, "closed"}
    assert list(outcomes.values()).count(503) >= REJECTERS and 408 in outcomes.values()
    assert most_threads <= bound
    response = requests.post(guarded.url + "/completions", json=_completion(), headers=AUTH, timeout=PATIENCE)
    assert response.status_code == 200


def test_a_full_server_answers_503_with_retry_after(guarded):
    answers = []
    for _attempt in range(3):  # the held connections must still be inside their 2 s when the extra one comes
        held = [_half_sent(guarded.address) for _ in range(GUARDED_LIMITS["connections"])]
        try:
            with socket.create_connection(guarded.address, timeout=PATIENCE) as extra:
                answers.append(_read_response(extra))
        finally:
            for sock in held:
                sock.close()
        if answers[-1][0] == 503:
            break
    status, payload, headers = answers[-1]
    _assert_openai_error((status, payload), 503)
    assert headers.get("Retry-After") and headers.get("Connection") == "close"


def test_a_trickling_client_is_cut_off(guarded):
    """A client that keeps sending a byte at a time never finishes its request: the window is
    for the whole request, not for each read."""
    for _attempt in range(5):  # a 503 only means the previous test's connections still held the slots
        outcome = _trickle(guarded.address)
        if outcome != 503:
            break
        time.sleep(1.0)
    assert outcome in (408, "closed")


def _trickle(address: tuple[str, int]) -> int | str:
    with socket.create_connection(address, timeout=PATIENCE) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x")
        for sent in range(600):  # at most 600 header bytes, one every 0.1 s
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable:
                break
            try:
                sock.sendall(b"X" if sent % 20 else b"\r\nX-Header: ")
            except (BrokenPipeError, ConnectionResetError):
                break
        return _outcome(sock)


def test_an_idle_keep_alive_connection_is_closed_quietly(guarded):
    with socket.create_connection(guarded.address, timeout=PATIENCE) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        status, payload, _ = _read_response(sock)
        assert status == 200 and payload == {"status": "ok"}
        assert sock.recv(1024) == b""  # closed without an unasked-for answer once the window is up


def test_waiting_requests_are_batched_within_the_batch_size():
    """Requests that wait while the model is busy share calls of at most --batch-size sequences;
    requests with other sampling values wait for calls of their own."""
    from evalkit.backends.hf import HFBackend
    from evalkit.config import SamplingConfig
    from evalkit.serve import Batcher

    class RecordingBackend(HFBackend):
        def __init__(self) -> None:
            super().__init__(None, device="cpu", batch_size=5)
            self.calls: list[tuple[int, int]] = []  # (prompts, sequences) of each call
            self.release = threading.Event()
            self.entered = threading.Event()

        def generate_samples(self, batch, on_progress=None):
            self.entered.set()
            self.release.wait(timeout=PATIENCE)  # the first call waits until every request is queued
            self.calls.append((len(batch.prompts), len(batch.prompts) * batch.sampling.decodes))
            return super().generate_samples(batch, on_progress)

    backend = RecordingBackend()
    batcher = Batcher(backend, batch_size=5, max_prompt_tokens=64)
    sampled = SamplingConfig(n=2, temperature=1.0, max_tokens=2, seed=3)
    other = sampled.replace(seed=4)
    asked = [(f"Prompt {i}:", sampled if i % 3 else other) for i in range(12)] + [("Alone:", sampled.replace(n=7))]
    answers: dict[int, object] = {}

    def ask(i: int) -> None:
        try:
            answers[i] = batcher.submit(*asked[i])
        except Exception as exc:  # noqa: BLE001 - recorded for the assertion
            answers[i] = exc

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(asked))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + PATIENCE
    # Every request submitted (a queue's unfinished_tasks counts its puts: nothing marks them done)
    # and the model busy with the first call: the others wait behind it.
    while not (batcher._queue.unfinished_tasks == len(asked) and backend.entered.is_set()):
        assert time.monotonic() < deadline, "the requests were never all queued"
        time.sleep(0.05)
    backend.release.set()
    for t in threads:
        t.join(timeout=PATIENCE)
    assert sorted(answers) == list(range(len(asked)))
    assert all(len(answers[i].texts) == asked[i][1].n for i in answers), answers
    assert all(sequences <= 5 for prompts, sequences in backend.calls if prompts > 1)
    assert (1, 7) in backend.calls  # n = 7 > --batch-size: its own call
    assert max(prompts for prompts, _ in backend.calls) == 2  # requests were batched (2 x n=2 <= 5)
