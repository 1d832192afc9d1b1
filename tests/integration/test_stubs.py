"""The built-in provider stubs through the real binary (`leakyd --stubs-only`,
API.md §9): each provider's wire format non-stream and stream, the reference
routes, the payment service's idempotency and conflicts, the control API,
fault plans, the X-Stub-Fault header (drops, malformed bodies), configured
error rates and their reload on SIGHUP, stop during a long delay, and the
HTTPS listener with a certificate made at test time.

The stubs' own unit tests (tests/unit/test_stubs_http.c) go deeper; these
check that the binary serves the same thing."""

import http.client
import json
import os
import signal
import socket
import ssl
import time

import pytest

from conftest import parse_raw_response, render_config
from stubs_fixture import StubServer, make_ca, make_server_cert

OPENAI_CHAT = "/openai/v1/chat/completions"
QWEN_CHAT = "/qwen/compatible-mode/v1/chat/completions"
GEMINI = "/gemini/v1beta/models/{model}:{method}"


def est(text):
    """lt_token_estimate: one token per four bytes, rounded up."""
    return (len(text.encode()) + 3) // 4


def chat(model, text, **extra):
    b = {"model": model, "messages": [{"role": "user", "content": text}]}
    b.update(extra)
    return b


def gemini_body(text, system=None, max_out=None):
    b = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    if system:
        b["systemInstruction"] = {"parts": [{"text": system}]}
    if max_out:
        b["generationConfig"] = {"maxOutputTokens": max_out}
    return b


def events(body, term="\n\n"):
    """SSE body -> data payloads; every event one "data: " line."""
    text = body.decode() if isinstance(body, bytes) else body
    assert text.endswith(term), text[-200:]
    out = []
    for ev in text.split(term)[:-1]:
        assert ev.startswith("data: ") and "\n" not in ev, repr(ev)
        out.append(ev[6:])
    return out


def dechunk(data):
    """Chunked body bytes -> (payload, had the terminating chunk)."""
    out = b""
    while True:
        line, sep, rest = data.partition(b"\r\n")
        if not sep:
            return out, False
        size = int(line, 16)
        if size == 0:
            return out, rest.startswith(b"\r\n")
        if len(rest) < size + 2:
            return out + rest[:size], False
        out += rest[:size]
        data = rest[size + 2:]


def raw_post(srv, path, obj, headers=None):
    """POST on a fresh socket with Connection: close; read to EOF; returns
    (status, {lower header: value}, raw body bytes)."""
    body = json.dumps(obj).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" \
           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    for k, v in (headers or {}).items():
        head += f"{k}: {v}\r\n"
    data = srv.raw(head.encode() + b"\r\n" + body)
    h, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, data[:300]
    lines = h.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, rest


def check_common(r, ctype="application/json"):
    assert r.header("Content-Type") == ctype, r.header("Content-Type")
    rid = r.header("x-request-id")
    assert rid and rid.startswith("req_"), rid


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    srv = StubServer(tmp_path_factory.mktemp("stubs"), {"threads": 16})
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def clean(stubs):
    stubs.reset()
    return stubs


# ---- OpenAI and Qwen ----

def test_openai_chat_shape_usage_and_determinism(clean):
    body = {"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello world"}]}
    r = clean.post_json(OPENAI_CHAT, body)
    assert r.status == 200, r
    check_common(r)
    b = r.json()
    assert b["id"].startswith("chatcmpl-")
    assert b["object"] == "chat.completion"
    assert b["model"] == "gpt-4o-mini"
    assert isinstance(b["created"], int)
    assert b["system_fingerprint"].startswith("fp_")
    c = b["choices"][0]
    assert c["index"] == 0 and c["logprobs"] is None and c["finish_reason"] == "stop"
    assert c["message"]["role"] == "assistant" and c["message"]["refusal"] is None
    content = c["message"]["content"]
    assert content.startswith("Stubbed OpenAI response")
    u = b["usage"]
    assert len(content) == 4 * u["completion_tokens"]
    assert 8 <= u["completion_tokens"] <= 32
    assert u["prompt_tokens"] == est("Be brief.hello world")
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    assert u["prompt_tokens_details"] == {"cached_tokens": 0}
    assert u["completion_tokens_details"] == {"reasoning_tokens": 0}
    again = clean.post_json(OPENAI_CHAT, body).json()
    assert again["id"] == b["id"] and again["choices"] == b["choices"]
    assert again["usage"] == b["usage"]


def test_openai_limits_reasoning_and_cache(clean):
    b = clean.post_json(OPENAI_CHAT, chat("gpt-4o", "short", max_tokens=3)).json()
    assert b["choices"][0]["finish_reason"] == "length"
    assert b["usage"]["completion_tokens"] == 3
    assert len(b["choices"][0]["message"]["content"]) == 12
    b = clean.post_json(OPENAI_CHAT, chat("o4-mini", "think", max_completion_tokens=5)).json()
    assert b["usage"]["completion_tokens_details"]["reasoning_tokens"] == 16
    assert b["usage"]["completion_tokens"] == 5 + 16
    b = clean.post_json(OPENAI_CHAT, chat("gpt-4o", "a" * 4096)).json()
    assert b["usage"]["prompt_tokens"] == 1024
    assert b["usage"]["prompt_tokens_details"]["cached_tokens"] == 512


def test_qwen_shape(clean):
    b = clean.post_json(QWEN_CHAT, chat("qwen-plus", "hello")).json()
    assert b["id"].startswith("chatcmpl-")
    assert "system_fingerprint" not in b
    assert b["choices"][0]["message"]["content"].startswith("Stubbed Qwen response")
    assert set(b["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    b = clean.post_json(QWEN_CHAT, chat("qwen-plus", "q" * 4096)).json()
    assert b["usage"]["prompt_tokens_details"] == {"cached_tokens": 512}


@pytest.mark.parametrize("path", [OPENAI_CHAT, QWEN_CHAT])
@pytest.mark.parametrize("include_usage", [False, True])
def test_chat_stream(clean, path, include_usage):
    plain = clean.post_json(path, chat("gpt-4o-mini", "stream me")).json()
    body = chat("gpt-4o-mini", "stream me", stream=True)
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    r = clean.post_json(path, body)
    assert r.status == 200, r
    check_common(r, "text/event-stream")
    evs = events(r.body)
    assert evs[-1] == "[DONE]"
    chunks = [json.loads(e) for e in evs[:-1]]
    for ch in chunks:
        assert ch["object"] == "chat.completion.chunk" and ch["id"] == plain["id"]
        if include_usage:
            assert "usage" in ch
        else:
            assert "usage" not in ch
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "",
                                                "refusal": None}
    if include_usage:
        last = chunks.pop()
        assert last["choices"] == [] and last["usage"] == plain["usage"]
        assert all(ch["usage"] is None for ch in chunks)
    fin = chunks.pop()
    assert fin["choices"][0]["finish_reason"] == "stop" and fin["choices"][0]["delta"] == {}
    pieces = [ch["choices"][0]["delta"]["content"] for ch in chunks[1:]]
    assert all(1 <= len(p) <= 4 for p in pieces)
    assert "".join(pieces) == plain["choices"][0]["message"]["content"]
    assert len(pieces) == plain["usage"]["completion_tokens"]


@pytest.mark.parametrize("path", ["/openai/v1/embeddings", "/qwen/compatible-mode/v1/embeddings"])
def test_embeddings(clean, path):
    r = clean.post_json(path, {"model": "text-embedding-3-small", "input": ["alpha", "beta"]})
    assert r.status == 200, r
    b = r.json()
    assert b["object"] == "list" and b["model"] == "text-embedding-3-small"
    assert [d["index"] for d in b["data"]] == [0, 1]
    for d in b["data"]:
        assert d["object"] == "embedding" and len(d["embedding"]) == 8
        assert abs(sum(x * x for x in d["embedding"]) - 1.0) < 1e-4
    assert b["usage"] == {"prompt_tokens": 2 + 1, "total_tokens": 3}
    one = clean.post_json(path, {"model": "m", "input": "one", "dimensions": 3}).json()
    assert len(one["data"][0]["embedding"]) == 3
    assert clean.post_json(path, {"model": "m", "input": "one", "dimensions": 3}).json() == one


@pytest.mark.parametrize("path", [OPENAI_CHAT, QWEN_CHAT])
def test_openai_errors(clean, path):
    r = clean.post_json(path, raw=b"{nope")
    assert r.status == 400, r
    check_common(r)
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] is None and err["code"] is None
    assert clean.post_json(path, {"model": "m"}).status == 400
    # Over 1 MiB declared: refused before the body is read.
    status, _, body = parse_raw_response(clean.raw(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n".encode()))
    assert status == 413
    assert json.loads(body)["error"]["type"] == "invalid_request_error"


# ---- Gemini ----

def test_gemini_generate_and_stream(clean):
    body = gemini_body("hello gemini", system="Be brief.")
    url = GEMINI.format(model="gemini-2.5-flash", method="generateContent")
    r = clean.post_json(url, body, headers={"x-goog-api-key": "g-key"})
    assert r.status == 200, r
    check_common(r)
    b = r.json()
    cand = b["candidates"][0]
    assert cand["content"]["role"] == "model" and cand["finishReason"] == "STOP"
    assert cand["index"] == 0
    text = cand["content"]["parts"][0]["text"]
    assert text.startswith("Stubbed Gemini response")
    um = b["usageMetadata"]
    assert um["promptTokenCount"] == est("Be brief.hello gemini")
    assert len(text) == 4 * um["candidatesTokenCount"]
    assert um["thoughtsTokenCount"] == 16
    assert um["totalTokenCount"] == um["promptTokenCount"] + um["candidatesTokenCount"] + 16
    assert "cachedContentTokenCount" not in um
    assert b["modelVersion"] == "gemini-2.5-flash" and b["responseId"]

    surl = GEMINI.format(model="gemini-2.5-flash", method="streamGenerateContent") + "?alt=sse"
    r = clean.post_json(surl, body)
    assert r.status == 200, r
    check_common(r, "text/event-stream")
    frames = [json.loads(e) for e in events(r.body, "\r\n\r\n")]
    got = "".join(f["candidates"][0]["content"]["parts"][0]["text"] for f in frames)
    assert got == text
    counts = [f["usageMetadata"]["candidatesTokenCount"] for f in frames]
    assert counts == sorted(counts) and counts[-1] == um["candidatesTokenCount"]
    assert frames[-1]["candidates"][0]["finishReason"] == "STOP"
    assert all("finishReason" not in f["candidates"][0] for f in frames[:-1])

    cut = clean.post_json(GEMINI.format(model="gemini-2.0-flash", method="generateContent"),
                          gemini_body("x", max_out=2)).json()
    assert cut["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert cut["usageMetadata"]["candidatesTokenCount"] == 2
    assert "thoughtsTokenCount" not in cut["usageMetadata"]

    bad = clean.post_json(url, {"contents": []})
    assert bad.status == 400
    assert bad.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert bad.json()["error"]["code"] == 400


# ---- the reference routes ----

@pytest.mark.parametrize("provider,label", [("qwen", "Qwen"), ("gemini", "Gemini"),
                                            ("openai", "OpenAI")])
def test_reference_chat(clean, provider, label):
    r = clean.post_json(f"/api/v1/{provider}/chat", {"prompt": "Hi there"})
    assert r.status == 200, r
    b = r.json()
    assert set(b) == {"id", "provider", "received", "created", "message"}
    assert b["provider"] == provider
    assert b["received"] == {"prompt": "Hi there"}
    assert b["message"] == f"Stubbed {label} response"
    assert len(b["id"]) == 36 and b["created"].endswith("Z")


# ---- payments ----

def pay(srv, op, obj, key):
    h = {"Idempotency-Key": key} if key else {}
    return srv.post_json(f"/payment/v1/{op}", obj, headers=h)


def test_payment_idempotency_and_conflicts(clean):
    assert pay(clean, "authorize", {"amountMicros": 100}, None).status == 400
    a = pay(clean, "authorize", {"amountMicros": 100, "reference": "saga-9"}, "k-auth")
    assert a.status == 200, a
    pid = a.json()["paymentId"]
    assert a.json()["status"] == "AUTHORIZED" and a.json()["amountMicros"] == 100
    again = pay(clean, "authorize", {"amountMicros": 100, "reference": "saga-9"}, "k-auth")
    assert again.status == 200 and again.body == a.body
    assert again.header("Idempotent-Replayed") == "true"
    other = pay(clean, "authorize", {"amountMicros": 100}, "k-auth-2").json()["paymentId"]
    assert other != pid

    cap = pay(clean, "capture", {"paymentId": pid}, "k-cap")
    assert cap.status == 200 and cap.json()["status"] == "CAPTURED"
    rel = pay(clean, "release", {"paymentId": pid}, "k-rel")
    assert rel.status == 409
    assert pay(clean, "release", {"paymentId": pid}, "k-rel").status == 409
    assert pay(clean, "release", {"paymentId": other}, "k-rel-2").json()["status"] == "RELEASED"
    assert pay(clean, "capture", {"paymentId": other}, "k-cap-2").status == 409
    g = clean.get(f"/payment/v1/payments/{pid}")
    assert g.status == 200 and g.json()["status"] == "CAPTURED"
    assert clean.get("/payment/v1/payments/nope").status == 404
    assert pay(clean, "capture", {"paymentId": "nope"}, "k-404").status == 404


def test_payment_drop_then_retry_replays(clean):
    status, _, body = raw_post(clean, "/payment/v1/authorize", {"amountMicros": 5},
                               {"Idempotency-Key": "k-drop", "X-Stub-Fault": "drop-after=0"})
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(body)        # cut mid-body
    r = pay(clean, "authorize", {"amountMicros": 5}, "k-drop")
    assert r.status == 200 and r.header("Idempotent-Replayed") == "true"
    pid = r.json()["paymentId"]
    assert clean.get(f"/payment/v1/payments/{pid}").json()["status"] == "AUTHORIZED"


# ---- control API and faults ----

def test_control_api_and_request_log(clean):
    r = clean.get("/_stub/health")
    assert r.status == 200 and r.json() == {"status": "ok"}
    nf = clean.get("/no/such/thing")
    assert nf.status == 404
    check_common(nf)
    assert clean.post_json("/_stub/faults", {"status": 503}).status == 400
    clean.post_json(OPENAI_CHAT, chat("m", "x"), headers={"Authorization": "Bearer sk-1"})
    clean.post_json(GEMINI.format(model="g", method="generateContent") + "?key=qk",
                    gemini_body("x"))
    reqs = clean.requests()
    assert [q["path"] for q in reqs] == [OPENAI_CHAT, "/gemini/v1beta/models/g:generateContent"]
    assert reqs[0]["credential"] == "Bearer sk-1" and reqs[1]["credential"] == "qk"
    assert reqs[0]["method"] == "POST" and reqs[0]["fault"] is None
    assert reqs[0]["body_bytes"] == len(json.dumps(chat("m", "x")))
    assert reqs[1]["seq"] == reqs[0]["seq"] + 1
    assert reqs[0]["received_ms"] > 1_600_000_000_000
    clean.clear_requests()
    assert clean.requests() == []


def test_fault_plan_status_and_retry_after(clean):
    clean.fault("/openai", count=2, status=503, retry_after_s=3)
    clean.fault("/gemini", status=429)
    for _ in range(2):
        r = clean.post_json(OPENAI_CHAT, chat("m", "x"))
        assert r.status == 503 and r.header("Retry-After") == "3"
        check_common(r)
        assert r.json()["error"]["type"] == "server_error"
    assert clean.post_json(OPENAI_CHAT, chat("m", "x")).status == 200
    g = clean.post_json(GEMINI.format(model="g", method="generateContent"), gemini_body("x"))
    assert g.status == 429 and g.header("Retry-After") == "1"
    assert g.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert [q["fault"] for q in clean.requests()] == [
        "status=503; retry-after=3", "status=503; retry-after=3", None, "status=429"]
    clean.fault("/qwen", count=5, status=500)
    clean.clear_faults()
    assert clean.post_json(QWEN_CHAT, chat("m", "x")).status == 200


def test_drop_mid_stream_and_mid_body(clean):
    status, hdrs, body = raw_post(clean, OPENAI_CHAT, chat("m", "x", stream=True),
                                  {"X-Stub-Fault": "drop-after=3"})
    assert status == 200 and hdrs["transfer-encoding"] == "chunked"
    payload, terminated = dechunk(body)
    assert not terminated
    evs = events(payload)
    assert len(evs) == 3
    for e in evs:
        json.loads(e)
    clean.fault("/gemini", drop_after=1)
    status, _, body = raw_post(clean, GEMINI.format(model="g", method="streamGenerateContent")
                               + "?alt=sse", gemini_body("x"))
    payload, terminated = dechunk(body)
    assert status == 200 and not terminated and len(events(payload, "\r\n\r\n")) == 1
    status, hdrs, body = raw_post(clean, OPENAI_CHAT, chat("m", "x"),
                                  {"X-Stub-Fault": "drop-after=1"})
    assert status == 200 and len(body) < int(hdrs["content-length"])
    # http.client sees the short read as an error.
    c = clean.connection()
    try:
        c.request("POST", OPENAI_CHAT, body=json.dumps(chat("m", "x")),
                  headers={"Content-Type": "application/json", "X-Stub-Fault": "drop-after=1"})
        resp = c.getresponse()
        with pytest.raises(http.client.IncompleteRead):
            resp.read()
    finally:
        c.close()


def test_malformed_and_bad_header(clean):
    r = clean.post_json(OPENAI_CHAT, chat("m", "x"), headers={"X-Stub-Fault": "malformed"})
    assert r.status == 200 and r.body.startswith(b"{")
    assert len(r.body) == int(r.header("Content-Length"))
    with pytest.raises(ValueError):
        r.json()
    r = clean.post_json(OPENAI_CHAT, chat("m", "x", stream=True),
                        headers={"X-Stub-Fault": "malformed"})
    evs = events(r.body)
    json.loads(evs[0])
    with pytest.raises(ValueError):
        json.loads(evs[1])
    assert evs[-1] == "[DONE]"
    bad = clean.post_json(OPENAI_CHAT, chat("m", "x"), headers={"X-Stub-Fault": "sometimes"})
    assert bad.status == 400 and "X-Stub-Fault" in bad.json()["error"]["message"]
    r = clean.post_json(OPENAI_CHAT, chat("m", "x"),
                        headers={"X-Stub-Fault": "status=429; retry-after=2"})
    assert r.status == 429 and r.header("Retry-After") == "2"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"


# ---- configuration: rates, reload, stop ----

def test_error_rate_and_sighup_reload(tmp_path):
    srv = StubServer(tmp_path, {"error_rate_pct": 100, "error_status": 429, "retry_after_s": 4})
    srv.start()
    try:
        r = srv.post_json(OPENAI_CHAT, chat("m", "x"))
        assert r.status == 429 and r.header("Retry-After") == "4"
        assert srv.get("/_stub/health").status == 200      # never faulted
        # Reload with the rate at zero: answers come back.
        srv.config["stubs"]["error_rate_pct"] = 0
        with open(srv.config_path, "w") as f:
            f.write(render_config(srv.config))
        srv.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while srv.post_json(OPENAI_CHAT, chat("m", "x")).status != 200:
            assert time.monotonic() < deadline, srv.log_text()
            time.sleep(0.02)
    finally:
        srv.stop()


def test_sigterm_cuts_a_long_delay(tmp_path):
    srv = StubServer(tmp_path, {})
    srv.start()
    s = socket.create_connection((srv.host, srv.port), timeout=60)
    try:
        s.sendall(b"POST /api/v1/qwen/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                  b"X-Stub-Fault: delay=600000\r\n\r\n{}")
        srv.wait_requests(1)
        srv.stop()          # returns only once the process exited 0
        data = b""
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            data += b
        assert data == b"" or data.startswith(b"HTTP/1.1 503 "), data[:200]
    finally:
        s.close()


# ---- HTTPS ----

def test_tls_listener(tmp_path):
    ca_crt, ca_key = make_ca(str(tmp_path), "stubs-ca")
    pem = make_server_cert(str(tmp_path), ca_crt, ca_key)
    srv = StubServer(tmp_path / "srv", {"tls_listen": "127.0.0.1:0", "tls_cert": pem})
    srv.start()
    try:
        assert srv.tls_port and srv.tls_port != srv.port
        ctx = ssl.create_default_context(cafile=ca_crt)
        c = http.client.HTTPSConnection("localhost", srv.tls_port, context=ctx, timeout=30)
        try:
            for _ in range(2):      # keep-alive through the TLS listener
                c.request("POST", OPENAI_CHAT, body=json.dumps(chat("gpt-4o", "tls")),
                          headers={"Content-Type": "application/json",
                                   "Authorization": "Bearer tls-key"})
                r = c.getresponse()
                b = json.loads(r.read())
                assert r.status == 200
                assert b["choices"][0]["message"]["content"].startswith("Stubbed OpenAI")
            c.request("POST", GEMINI.format(model="g", method="streamGenerateContent")
                      + "?alt=sse", body=json.dumps(gemini_body("x")),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            frames = [json.loads(e) for e in events(r.read(), "\r\n\r\n")]
            assert frames[-1]["candidates"][0]["finishReason"] == "STOP"
        finally:
            c.close()
        assert any(q["credential"] == "Bearer tls-key" for q in srv.requests())
        # A client that does not trust the CA is refused.
        bad = ssl.create_default_context()
        with pytest.raises(ssl.SSLError):
            with socket.create_connection(("127.0.0.1", srv.tls_port), timeout=10) as s:
                with bad.wrap_socket(s, server_hostname="localhost"):
                    pass
    finally:
        srv.stop()


def test_tls_without_usable_cert_fails_to_start(tmp_path):
    missing = os.path.join(str(tmp_path), "missing.pem")
    srv = StubServer(tmp_path / "srv", {"tls_listen": "127.0.0.1:0", "tls_cert": missing},
                     expect_errors=True)
    with pytest.raises(AssertionError, match="before listening"):
        srv.start()
    assert srv.proc.returncode != 0
    assert "missing.pem" in srv.log_text()
    srv.wait_exit()
