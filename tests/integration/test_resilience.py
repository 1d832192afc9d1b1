"""The resilience chain of a provider call (src/provider/registry.c):
bulkhead → circuit breaker (on the server clock: the manual clock moves it)
→ deadline → retry with backoff honouring Retry-After, against the stubs'
fault plans; and how a stream ends when the upstream or the client goes
away.  Each concern has its own [provider.*] (all on the same stub) so their
breakers and bulkheads do not interfere."""

import json
import socket
import threading
import time

import pytest

from conftest import bearer, metric
from stubs_fixture import (GENEROUS_LIMITS, admin, chat, chat_body, dechunk, sse_events,
                           sse_json, start_gateway, start_stubs, user_token)

CLOCK = "/admin/v1/clock"
OPENAI_PATH = "/openai/v1/chat/completions"
GEMINI_STREAM_PATH = "/gemini/v1beta/models/gemini-2.0-flash:streamGenerateContent"

OPEN_MS = 10000


def oa(port, **kw):
    sec = {"base_url": f"http://127.0.0.1:{port}/openai/v1", "format": "openai"}
    sec.update(kw)
    return sec


PROVIDERS = {
    # breaker: 4 calls, all failing, open 10 s, 2 probes; no retries
    "brk": dict(breaker_window=4, breaker_min_calls=4, breaker_failure_pct=50,
                breaker_open_ms=OPEN_MS, breaker_probes=2, retry_attempts=1),
    "bulk": dict(bulkhead=2, timeout_ms=60000),
    "bulk20": dict(timeout_ms=60000),                       # the default bulkhead, 20
    "slow": dict(timeout_ms=300, retry_attempts=3),
    "retry": dict(retry_attempts=3, retry_backoff_ms=10, retry_max_backoff_ms=50,
                  timeout_ms=20000, breaker_window=256, breaker_min_calls=256),
    "strm": dict(breaker_window=256, breaker_min_calls=256),
}
MODEL_OF = {p: f"{p}-model" for p in PROVIDERS}


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    s = start_stubs(tmp_path_factory.mktemp("stubs"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def slow_stubs(tmp_path_factory):
    """Stubs that stream slowly: 200 ms between tokens."""
    s = start_stubs(tmp_path_factory.mktemp("slowstubs"), {"token_delay_ms": 200},
                    name="slowstubs")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, stubs, slow_stubs):
    providers = {name: oa(stubs.port, **kw) for name, kw in PROVIDERS.items()}
    providers["gstrm"] = {"base_url": f"http://127.0.0.1:{stubs.port}/gemini/v1beta",
                          "format": "gemini", "breaker_window": 256, "breaker_min_calls": 256}
    providers["slowstream"] = oa(slow_stubs.port)
    models = {MODEL_OF[p]: {"provider": p, "upstream": "gpt-4o-mini", "price_input": 1000,
                            "price_output": 2000} for p in PROVIDERS}
    models["gstrm-model"] = {"provider": "gstrm", "upstream": "gemini-2.0-flash"}
    models["slowstream-model"] = {"provider": "slowstream", "upstream": "gpt-4o-mini"}
    g = start_gateway(tmp_path_factory.mktemp("gw"), stubs.port, limits=GENEROUS_LIMITS,
                      providers=providers,
                      models=models, threads=48, manual_clock=True)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def token(gw):
    return user_token(gw)


@pytest.fixture(scope="module")
def adm(gw):
    return admin(gw)


@pytest.fixture(autouse=True)
def clean_stubs(stubs, slow_stubs):
    stubs.reset()
    slow_stubs.reset()
    yield
    stubs.clear_faults()


# ---- helpers ----

def provider_view(gw, adm, name):
    r = gw.get("/admin/v1/providers", headers=adm)
    assert r.status == 200, r
    ps = [p for p in r.json()["providers"] if p["name"] == name]
    assert len(ps) == 1, r.json()
    return ps[0]


def circuit(gw, adm, name):
    return provider_view(gw, adm, name)["circuit"]


def advance(gw, ms):
    r = gw.post_json(CLOCK, {"advanceMs": ms})
    assert r.status == 200, r


def openai_error(r, status, code):
    assert r.status == status, r
    e = r.json()["error"]
    assert e["code"] == code, e
    return e


def expect(pred, what):
    """A check for Leakyd.eventually from a predicate on the parsed metrics."""
    def check(m):
        assert pred(m), what
    return check


def state_gauge(gw, provider, value):
    gw.eventually(expect(
        lambda m: metric(m, "leaky_provider_circuit_state", provider=provider) == value,
        f"leaky_provider_circuit_state{{provider={provider}}} never {value}"))


def m_value(gw, name, **labels):
    return metric(gw.metrics()[1], name, **labels) or 0


def outcome_count(m, provider, outcome):
    return metric(m, "leaky_provider_requests_total", provider=provider,
                  model=MODEL_OF.get(provider, f"{provider}-model"), outcome=outcome) or 0


def wait_inflight(gw, adm, name, n, deadline_s=20.0):
    deadline = time.monotonic() + deadline_s
    while True:
        v = provider_view(gw, adm, name)["bulkhead"]["inflight"]
        if v == n:
            return
        assert v <= n, f"{name}: {v} calls in flight, more than {n}"
        assert time.monotonic() < deadline, f"{name}: {v} calls in flight, never {n}"
        time.sleep(0.01)


def call_in_threads(gw, token, model, n):
    """Start n chat calls at once in threads; returns (threads, results)."""
    results = [None] * n

    def run(i):
        try:
            results[i] = chat(gw, token, chat_body(model, f"held call {i}"), timeout=60)
        except Exception as e:      # noqa: BLE001 — reported by the assertion below
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads, results


def raw_stream(gw, token, body, timeout=30):
    """POST a streamed chat with Connection: close; the whole raw response."""
    data = json.dumps(body).encode()
    req = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
           f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(data)}\r\n\r\n").encode() + data
    s = socket.create_connection((gw.host, gw.port), timeout=timeout)
    try:
        s.sendall(req)
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
        return out
    finally:
        s.close()


# ---- circuit breaker ----

@pytest.fixture
def brk_closed(gw, adm):
    """Each breaker test starts from a closed breaker and leaves one."""
    r = gw.request("POST", "/admin/v1/providers/brk/reset", headers=adm)
    assert r.status == 204, r
    yield
    gw.request("POST", "/admin/v1/providers/brk/reset", headers=adm)


def open_breaker(gw, stubs, token):
    """Four failing calls (HTTP 500 from the stub) open brk's breaker."""
    stubs.fault(OPENAI_PATH, count=4, status=500)
    for _ in range(4):
        r = chat(gw, token, chat_body("brk-model"))
        openai_error(r, 502, "upstream_error")
    assert len(stubs.requests()) == 4


def test_breaker_opens_rejects_half_opens_and_closes(gw, stubs, token, adm, brk_closed):
    assert circuit(gw, adm, "brk")["state"] == "closed"
    opens0 = m_value(gw, "leaky_provider_circuit_opens_total", provider="brk")
    _, m0 = gw.metrics()
    open_breaker(gw, stubs, token)
    c = circuit(gw, adm, "brk")
    assert c["state"] == "open", c
    assert c["retryInMs"] == OPEN_MS, c          # the manual clock has not moved
    state_gauge(gw, "brk", 1)
    assert m_value(gw, "leaky_provider_circuit_opens_total", provider="brk") == opens0 + 1
    view = provider_view(gw, adm, "brk")
    assert view["lastErrors"] and view["lastErrors"][0]["status"] == 500, view

    # open: refused at once, 503 circuit_open with Retry-After, the stub untouched
    for _ in range(3):
        r = chat(gw, token, chat_body("brk-model"))
        e = openai_error(r, 503, "circuit_open")
        assert e["type"] == "server_error"
        assert r.header("Retry-After") == str(OPEN_MS // 1000), r.headers
    assert len(stubs.requests()) == 4, "an open circuit let a call through"
    gw.eventually(expect(lambda m: outcome_count(m, "brk", "circuit_open") -
                         outcome_count(m0, "brk", "circuit_open") == 3,
                         "circuit_open outcomes not counted"))

    # the wait shrinks as the server clock moves; still open 1 ms before the end
    advance(gw, OPEN_MS - 1500)
    r = chat(gw, token, chat_body("brk-model"))
    openai_error(r, 503, "circuit_open")
    assert r.header("Retry-After") == "2", r.headers
    advance(gw, 1499)
    openai_error(chat(gw, token, chat_body("brk-model")), 503, "circuit_open")
    assert len(stubs.requests()) == 4

    # past open_ms: half-open, the probes reach the stub
    advance(gw, 1)
    assert circuit(gw, adm, "brk")["state"] == "half_open"
    state_gauge(gw, "brk", 2)
    r = chat(gw, token, chat_body("brk-model"))
    assert r.status == 200, r
    assert circuit(gw, adm, "brk")["state"] == "half_open"     # 1 of 2 probes
    r = chat(gw, token, chat_body("brk-model"))
    assert r.status == 200, r
    assert circuit(gw, adm, "brk")["state"] == "closed"
    assert len(stubs.requests()) == 6
    state_gauge(gw, "brk", 0)


def test_breaker_failed_probe_reopens(gw, stubs, token, adm, brk_closed):
    open_breaker(gw, stubs, token)
    opens = circuit(gw, adm, "brk")["opens"]
    advance(gw, OPEN_MS)
    stubs.fault(OPENAI_PATH, count=1, status=500)
    openai_error(chat(gw, token, chat_body("brk-model")), 502, "upstream_error")
    c = circuit(gw, adm, "brk")
    assert c["state"] == "open" and c["opens"] == opens + 1, c
    assert c["retryInMs"] == OPEN_MS, c
    n = len(stubs.requests())
    openai_error(chat(gw, token, chat_body("brk-model")), 503, "circuit_open")
    assert len(stubs.requests()) == n
    advance(gw, OPEN_MS)
    for _ in range(2):
        assert chat(gw, token, chat_body("brk-model")).status == 200
    assert circuit(gw, adm, "brk")["state"] == "closed"


def test_breaker_reset_by_admin(gw, stubs, token, adm, brk_closed):
    open_breaker(gw, stubs, token)
    assert circuit(gw, adm, "brk")["state"] == "open"
    # a USER may not reset; an unknown provider is 404
    r = gw.request("POST", "/admin/v1/providers/brk/reset", headers=bearer(token))
    assert r.status == 403, r
    r = gw.request("POST", "/admin/v1/providers/nosuch/reset", headers=adm)
    assert r.status == 404, r
    assert circuit(gw, adm, "brk")["state"] == "open"
    r = gw.request("POST", "/admin/v1/providers/brk/reset", headers=adm)
    assert r.status == 204, r
    c = circuit(gw, adm, "brk")
    assert c["state"] == "closed" and c["calls"] == 0, c
    n = len(stubs.requests())
    assert chat(gw, token, chat_body("brk-model")).status == 200
    assert len(stubs.requests()) == n + 1
    gw.wait_log(lambda rec: "circuit breaker reset" in rec.get("msg", ""), "the reset log line")


def test_breaker_counts_only_its_provider(gw, stubs, token, adm, brk_closed):
    """A failing provider's breaker does not touch another provider's."""
    open_breaker(gw, stubs, token)
    assert circuit(gw, adm, "retry")["state"] == "closed"
    assert chat(gw, token, chat_body("retry-model")).status == 200


# ---- bulkhead ----

def test_bulkhead_full_rejects_at_once(gw, stubs, token, adm):
    assert provider_view(gw, adm, "bulk")["bulkhead"]["limit"] == 2
    _, m0 = gw.metrics()
    stubs.fault(OPENAI_PATH, count=2, delay_ms=3000)
    threads, results = call_in_threads(gw, token, "bulk-model", 2)
    try:
        wait_inflight(gw, adm, "bulk", 2)
        stubs.wait_requests(2)
        r = chat(gw, token, chat_body("bulk-model", "the third"))
        e = openai_error(r, 503, "overloaded")
        assert r.header("Retry-After"), r.headers
        assert "2" in e["message"], e
        assert provider_view(gw, adm, "bulk")["counters"]["rejectedFull"] >= 1
    finally:
        for t in threads:
            t.join(60)
    assert [x.status if hasattr(x, "status") else x for x in results] == [200, 200]
    assert len(stubs.requests()) == 2, "the refused call reached the stub"
    wait_inflight(gw, adm, "bulk", 0)

    def check(m):
        assert outcome_count(m, "bulk", "bulkhead_full") - \
            outcome_count(m0, "bulk", "bulkhead_full") == 1
        assert outcome_count(m, "bulk", "ok") - outcome_count(m0, "bulk", "ok") == 2
        assert metric(m, "leaky_provider_bulkhead_limit", provider="bulk") == 2
        assert metric(m, "leaky_provider_bulkhead_inflight", provider="bulk") == 0
    gw.eventually(check)


def test_bulkhead_default_20(gw, stubs, token, adm):
    """The issue's case: 20 slow calls held, the 21st gets 503 at once."""
    assert provider_view(gw, adm, "bulk20")["bulkhead"]["limit"] == 20
    stubs.fault(OPENAI_PATH, count=20, delay_ms=6000)
    threads, results = call_in_threads(gw, token, "bulk20-model", 20)
    try:
        wait_inflight(gw, adm, "bulk20", 20)
        stubs.wait_requests(20)
        r = chat(gw, token, chat_body("bulk20-model", "the 21st"))
        openai_error(r, 503, "overloaded")
        # other providers are not affected by bulk20's bulkhead
        assert chat(gw, token, chat_body("retry-model")).status == 200
    finally:
        for t in threads:
            t.join(60)
    assert [x.status if hasattr(x, "status") else x for x in results] == [200] * 20
    assert len(stubs.requests()) == 21       # 20 held + the retry-model call
    wait_inflight(gw, adm, "bulk20", 0)


# ---- deadline ----

def test_deadline_504(gw, stubs, token):
    _, m0 = gw.metrics()
    stubs.fault(OPENAI_PATH, count=1, delay_ms=2000)
    r = chat(gw, token, chat_body("slow-model"))
    e = openai_error(r, 504, "timeout")
    assert e["type"] == "server_error"
    assert "slow" in e["message"], e
    assert len(stubs.requests()) == 1, "a timed-out call was retried"
    gw.eventually(expect(lambda m: outcome_count(m, "slow", "timeout") -
                         outcome_count(m0, "slow", "timeout") == 1, "no timeout outcome"))


def test_deadline_504_stream_before_first_byte(gw, stubs, token):
    stubs.fault(OPENAI_PATH, count=1, delay_ms=2000)
    r = chat(gw, token, chat_body("slow-model", stream=True))
    openai_error(r, 504, "timeout")
    assert r.header("Content-Type") == "application/json"


# ---- retries ----

def test_retry_honours_retry_after(gw, stubs, token, adm):
    retries0 = m_value(gw, "leaky_provider_retries_total", provider="retry")
    stubs.fault(OPENAI_PATH, count=1, status=503, retry_after_s=1)
    r = chat(gw, token, chat_body("retry-model"))
    assert r.status == 200, r
    reqs = stubs.requests()
    assert len(reqs) == 2, reqs
    assert reqs[0]["fault"] and "503" in reqs[0]["fault"], reqs
    assert reqs[1]["received_ms"] - reqs[0]["received_ms"] >= 1000, reqs
    assert m_value(gw, "leaky_provider_retries_total", provider="retry") == retries0 + 1


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_statuses_are_retried(gw, stubs, token, status):
    stubs.fault(OPENAI_PATH, count=1, status=status, retry_after_s=0)
    r = chat(gw, token, chat_body("retry-model"))
    assert r.status == 200, r
    assert len(stubs.requests()) == 2


@pytest.mark.parametrize("status,client_status,code", [
    (500, 502, "upstream_error"),
    (501, 502, "upstream_error"),
    (401, 502, "upstream_error"),
    (403, 502, "upstream_error"),
    (400, 400, None),
    (404, 404, None),
])
def test_other_statuses_not_retried(gw, stubs, token, status, client_status, code):
    stubs.fault(OPENAI_PATH, count=1, status=status)
    r = chat(gw, token, chat_body("retry-model"))
    e = openai_error(r, client_status, code)
    if status >= 500:
        assert f"HTTP {status}" in e["message"], e
    assert len(stubs.requests()) == 1, f"HTTP {status} was retried"
    # the plan is used up: the next call goes through
    assert chat(gw, token, chat_body("retry-model")).status == 200


def test_stream_retried_before_first_byte(gw, stubs, token):
    """A stream whose upstream answers 503 before any byte is retried."""
    stubs.fault(OPENAI_PATH, count=1, status=503, retry_after_s=0)
    r = chat(gw, token, chat_body("retry-model", "stream me", stream=True))
    assert r.status == 200, r
    events = sse_events(r.body)
    assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
    assert all("error" not in c for c in sse_json(events))
    assert len(stubs.requests()) == 2


def test_retries_exhausted_502(gw, stubs, token):
    retries0 = m_value(gw, "leaky_provider_retries_total", provider="retry")
    stubs.fault(OPENAI_PATH, count=3, status=503, retry_after_s=0)
    r = chat(gw, token, chat_body("retry-model"))
    openai_error(r, 502, "upstream_error")
    assert len(stubs.requests()) == 3
    assert m_value(gw, "leaky_provider_retries_total", provider="retry") == retries0 + 2


def test_retries_exhausted_429(gw, stubs, token):
    stubs.fault(OPENAI_PATH, count=3, status=429, retry_after_s=0)
    r = chat(gw, token, chat_body("retry-model"))
    e = openai_error(r, 429, "rate_limit_exceeded")
    assert e["type"] == "rate_limit_error"
    assert r.header("Retry-After") == "0", r.headers
    assert len(stubs.requests()) == 3


def test_retry_after_beyond_deadline_not_waited(gw, stubs, token):
    """A Retry-After longer than the time left: no retry (the call would
    miss its deadline anyway)."""
    stubs.fault(OPENAI_PATH, count=1, status=503, retry_after_s=60)
    r = chat(gw, token, chat_body("retry-model"))
    openai_error(r, 502, "upstream_error")
    assert r.header("Retry-After") == "60", r.headers
    assert len(stubs.requests()) == 1


def test_connect_error_retried_then_502(tmp_path, stubs):
    """Nothing listens on the base URL's port: connect errors are retried
    (retry_attempts), then 502."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    gw2 = start_gateway(tmp_path / "gw", stubs.port, limits=GENEROUS_LIMITS, providers={
        "dead": {"base_url": f"http://127.0.0.1:{dead}/v1", "format": "openai",
                 "retry_attempts": 3, "retry_backoff_ms": 5, "retry_max_backoff_ms": 10}},
        models={"dead-model": {"provider": "dead", "upstream": "gpt-4o-mini"}})
    try:
        tok = user_token(gw2)
        r = chat(gw2, tok, chat_body("dead-model"))
        openai_error(r, 502, "upstream_error")
        assert m_value(gw2, "leaky_provider_retries_total", provider="dead") == 2
    finally:
        gw2.stop()


# ---- broken upstream bodies and streams ----

def test_malformed_body_502(gw, stubs, token):
    _, m0 = gw.metrics()
    stubs.fault(OPENAI_PATH, count=1, malformed=True)
    r = chat(gw, token, chat_body("strm-model"))
    e = openai_error(r, 502, "upstream_error")
    assert "not valid" in e["message"], e
    assert len(stubs.requests()) == 1
    gw.eventually(expect(lambda m: outcome_count(m, "strm", "upstream_error") -
                         outcome_count(m0, "strm", "upstream_error") == 1,
                         "no upstream_error outcome"))


def check_cut_stream(raw):
    """A stream the upstream broke: 200, chunked body terminated cleanly,
    an error frame last, no [DONE]."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    payload, terminated = dechunk(rest)
    assert terminated, f"the chunked body did not end cleanly: {rest[-200:]!r}"
    events = sse_events(payload)
    assert "[DONE]" not in events, events
    last = json.loads(events[-1])
    assert set(last) == {"error"}, last
    assert last["error"]["type"] == "server_error" and last["error"]["message"], last
    assert all("error" not in json.loads(e) for e in events[:-1]), events
    return events, last["error"]


@pytest.mark.parametrize("model,path,drop_after", [
    ("strm-model", OPENAI_PATH, 3),
    ("gstrm-model", GEMINI_STREAM_PATH, 1),
])
def test_upstream_drops_mid_stream(gw, stubs, token, model, path, drop_after):
    provider = model.split("-")[0]
    _, m0 = gw.metrics()
    stubs.fault(path, count=1, drop_after=drop_after)
    raw = raw_stream(gw, token, chat_body(model, "drop me", stream=True))
    events, err = check_cut_stream(raw)
    assert err["code"] == "upstream_disconnected", err
    assert len(events) >= 2, events           # something was streamed before the cut
    reqs = stubs.requests()
    assert [q["path"] for q in reqs] == [path], "a stream was retried after its first byte"
    gw.eventually(expect(lambda m: outcome_count(m, provider, "aborted") -
                         outcome_count(m0, provider, "aborted") == 1, "no aborted outcome"))


def test_malformed_stream_frame(gw, stubs, token):
    stubs.fault(OPENAI_PATH, count=1, malformed=True)
    raw = raw_stream(gw, token, chat_body("strm-model", "garble me", stream=True))
    check_cut_stream(raw)
    assert len(stubs.requests()) == 1


def test_client_disconnect_mid_stream(gw, slow_stubs, token):
    _, m0 = gw.metrics()
    d0 = metric(m0, "leaky_provider_client_disconnects_total", provider="slowstream") or 0
    body = json.dumps(chat_body("slowstream-model", "a long slow answer", stream=True)).encode()
    req = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
           f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    s = socket.create_connection((gw.host, gw.port), timeout=30)
    got = b""
    try:
        s.sendall(req)
        while got.count(b"data: ") < 2:       # the role frame and a first token
            b = s.recv(65536)
            assert b, f"the stream ended early: {got!r}"
            got += b
    finally:
        s.close()
    assert got.startswith(b"HTTP/1.1 200"), got[:200]

    def check(m):
        d = metric(m, "leaky_provider_client_disconnects_total", provider="slowstream") or 0
        assert d == d0 + 1, (d, d0)
        assert metric(m, "leaky_provider_requests_total", provider="slowstream",
                      model="slowstream-model", outcome="client_gone") == \
            (metric(m0, "leaky_provider_requests_total", provider="slowstream",
                    model="slowstream-model", outcome="client_gone") or 0) + 1
    gw.eventually(check, deadline_s=20)
    assert len(slow_stubs.requests()) == 1
