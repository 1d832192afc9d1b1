"""The OpenAI-compatible API (API.md §4) and the reference passthrough (§5)
against the built-in stubs (§9) run as a separate `leakyd --stubs-only`:
chat completions for OpenAI, Gemini and Qwen (translation checked on both
sides: the stub's request log and a direct call to the stub with the native
request), streaming, embeddings, models, request validation, credentials,
HTTPS upstreams, and the provider metrics (tokens and cost)."""

import json
import re
import socket
import ssl
import threading
import uuid

import pytest

from conftest import (ISO_MS_Z, assert_error_body, assert_secrets_not_logged, bearer, metric,
                      register)
from stubs_fixture import (GATEWAY_ENV, GENEROUS_LIMITS, MODELS, STUB_LABEL, StubServer, admin,
                           ceil4, chat, chat_body, cost_micros, dechunk, fund, gateway_config,
                           make_ca,
                           make_server_cert, sse_events, sse_json, start_gateway, start_stubs,
                           stub_cached, user_token, v1_post)

OPENAI_KEY = "sk-test-openai-" + uuid.uuid4().hex
GEMINI_KEY = "AIza-test-gemini-" + uuid.uuid4().hex

CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"

TINY = "tiny-ctx"          # gpt-4o-mini with a 100-token context window
ALL_MODELS = dict(MODELS, **{TINY: dict(provider="openai", kind="chat", price_input=0,
                                        price_cached_input=0, price_output=0,
                                        max_output=50)})

CHAT_MODELS = ["gpt-4o-mini", "o4-mini", "gemini-2.0-flash", "gemini-2.5-flash", "qwen-plus"]
REASONING = {"o4-mini": 16, "gemini-2.5-flash": 16}


def native_path(model, stream=False):
    p = MODELS[model]["provider"]
    if p == "openai":
        return "/openai/v1/chat/completions"
    if p == "qwen":
        return "/qwen/compatible-mode/v1/chat/completions"
    return (f"/gemini/v1beta/models/{model}:"
            f"{'streamGenerateContent' if stream else 'generateContent'}")


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    s = start_stubs(tmp_path_factory.mktemp("stubs"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, stubs):
    g = start_gateway(tmp_path_factory.mktemp("gw"), stubs.port, limits=GENEROUS_LIMITS,
                      env={"TEST_KEY": OPENAI_KEY, "TEST_GEMINI_KEY": GEMINI_KEY},
                      providers={"openai": {"credential": "env:TEST_KEY"},
                                 "gemini": {"credential": "env:TEST_GEMINI_KEY"}},
                      models={TINY: {"provider": "openai", "upstream": "gpt-4o-mini",
                                     "context_window": 100, "max_output": 50}})
    yield g
    try:
        g.stop()
    finally:
        assert_secrets_not_logged(g, [OPENAI_KEY, GEMINI_KEY])


@pytest.fixture(scope="module")
def token(gw):
    return user_token(gw)


@pytest.fixture(autouse=True)
def clean_stubs(stubs):
    stubs.reset()
    yield


# ---- helpers ----

def assert_openai_error(r, status, code=None, param=None, etype=None):
    assert r.status == status, r
    assert r.header("Content-Type") == "application/json", r.header("Content-Type")
    b = r.json()
    assert set(b) == {"error"}, b
    e = b["error"]
    assert set(e) == {"message", "type", "param", "code"}, e
    assert isinstance(e["message"], str) and e["message"], e
    if code is not None:
        assert e["code"] == code, e
    if param is not None:
        assert e["param"] == param, e
    if etype is not None:
        assert e["type"] == etype, e
    assert r.header("x-request-id"), r.headers
    return e


def check_usage(u, model, prompt_tokens, content):
    """The normalised usage of one chat answer whose content is `content`."""
    assert set(u) >= {"prompt_tokens", "completion_tokens", "total_tokens",
                      "prompt_tokens_details", "completion_tokens_details"}, u
    reasoning = REASONING.get(model, 0)
    assert u["prompt_tokens"] == prompt_tokens, u
    assert u["prompt_tokens_details"]["cached_tokens"] == stub_cached(prompt_tokens), u
    assert u["completion_tokens_details"]["reasoning_tokens"] == reasoning, u
    # content is 4 bytes per visible token; reasoning counted once, inside
    # completion_tokens
    assert len(content.encode()) % 4 == 0, content
    assert u["completion_tokens"] == len(content.encode()) // 4 + reasoning, (u, len(content))
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"], u


def check_completion(r, model, prompt_tokens):
    assert r.status == 200, r
    assert r.header("Content-Type") == "application/json"
    assert r.header("x-request-id")
    b = r.json()
    assert b["object"] == "chat.completion", b
    assert b["model"] == model, b
    assert isinstance(b["id"], str) and b["id"], b
    assert isinstance(b["created"], int), b
    assert len(b["choices"]) == 1, b
    ch = b["choices"][0]
    assert ch["index"] == 0
    assert ch["message"]["role"] == "assistant", ch
    content = ch["message"]["content"]
    label = STUB_LABEL[MODELS[model]["provider"]]
    assert content.startswith(f"Stubbed {label} response"), content
    assert ch["finish_reason"] in ("stop", "length"), ch
    check_usage(b["usage"], model, prompt_tokens, content)
    return b


def direct_native(stubs, model, messages, max_tokens=None):
    """The stub's own answer to the native request the gateway should have
    sent for an OpenAI `messages` list: (content, finish) in the stub's
    terms."""
    p = MODELS[model]["provider"]
    if p in ("openai", "qwen"):
        body = {"model": model, "messages": messages}
        if max_tokens:
            body["max_tokens"] = max_tokens
        r = stubs.post_json(native_path(model), body)
        assert r.status == 200, r
        b = r.json()
        return b["choices"][0]["message"]["content"], b["choices"][0]["finish_reason"]
    sys_parts = [{"text": m["content"]} for m in messages if m["role"] in ("system", "developer")]
    contents = [{"role": "user" if m["role"] == "user" else "model",
                 "parts": [{"text": m["content"]}]}
                for m in messages if m["role"] in ("user", "assistant")]
    body = {"contents": contents}
    if sys_parts:
        body["systemInstruction"] = {"parts": sys_parts}
    if max_tokens:
        body["generationConfig"] = {"maxOutputTokens": max_tokens}
    r = stubs.post_json(native_path(model), body)
    assert r.status == 200, r
    c = r.json()["candidates"][0]
    return "".join(pt["text"] for pt in c["content"]["parts"]), c["finishReason"]


def prompt_text(n):
    """A deterministic user prompt of exactly n bytes."""
    base = "Tell me about leaky buckets and token quotas. "
    return (base * (n // len(base) + 1))[:n]


# ---- chat, non-streamed ----

@pytest.mark.parametrize("size", [37, 5000], ids=["short", "cached"])
@pytest.mark.parametrize("model", CHAT_MODELS)
def test_chat_completion(gw, stubs, token, model, size):
    text = prompt_text(size)
    r = chat(gw, token, chat_body(model, text))
    b = check_completion(r, model, ceil4(size))
    if size >= 4096:
        assert b["usage"]["prompt_tokens_details"]["cached_tokens"] > 0
    assert b["choices"][0]["finish_reason"] == "stop"
    # what the stub received: one request on the provider's native path
    reqs = stubs.requests()
    assert [q["path"] for q in reqs] == [native_path(model)], reqs
    assert reqs[0]["method"] == "POST" and reqs[0]["body_bytes"] > size
    # the answer is the stub's answer to the native request (same input,
    # same bytes), so the request was translated faithfully
    content, _ = direct_native(stubs, model, [{"role": "user", "content": text}])
    assert b["choices"][0]["message"]["content"] == content


def test_chat_translation_gemini_both_ways(gw, stubs, token):
    model = "gemini-2.0-flash"
    msgs = [{"role": "system", "content": "You are terse."},
            {"role": "developer", "content": "Answer in English."},
            {"role": "user", "content": "What is a leaky bucket?"},
            {"role": "assistant", "content": "A rate limiter."},
            {"role": "user", "content": "And a token bucket?"}]
    nbytes = sum(len(m["content"]) for m in msgs)
    r = chat(gw, token, chat_body(model, messages=msgs, max_tokens=7))
    b = check_completion(r, model, ceil4(nbytes))      # system text counted: it was sent
    assert b["choices"][0]["finish_reason"] == "length"    # MAX_TOKENS -> length
    assert b["usage"]["completion_tokens"] == 7               # maxOutputTokens was sent
    assert [q["path"] for q in stubs.requests()] == [
        "/gemini/v1beta/models/gemini-2.0-flash:generateContent"]
    content, finish = direct_native(stubs, model, msgs, max_tokens=7)
    assert finish == "MAX_TOKENS"
    assert b["choices"][0]["message"]["content"] == content
    # the same conversation with the roles mislabelled gives another answer:
    # the comparison above can fail
    wrong = [dict(m, role="user") for m in msgs]
    other, _ = direct_native(stubs, model, wrong, max_tokens=7)
    assert other != content


def test_chat_translation_qwen_both_ways(gw, stubs, token):
    model = "qwen-plus"
    msgs = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Name a river."}]
    r = chat(gw, token, chat_body(model, messages=msgs, max_tokens=7, temperature=0.5))
    b = check_completion(r, model, ceil4(sum(len(m["content"]) for m in msgs)))
    assert b["choices"][0]["finish_reason"] == "length"
    assert b["usage"]["completion_tokens"] == 7
    # Qwen's usage has no details when nothing was cached: the gateway adds them
    assert b["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    assert b["usage"]["completion_tokens_details"] == {"reasoning_tokens": 0}
    assert [q["path"] for q in stubs.requests()] == ["/qwen/compatible-mode/v1/chat/completions"]
    content, _ = direct_native(stubs, model, msgs, max_tokens=7)
    assert b["choices"][0]["message"]["content"] == content


def test_chat_provider_slash_model(gw, stubs, token):
    r = chat(gw, token, chat_body("openai/gpt-4o-mini", "hello"))
    assert r.status == 200, r
    assert r.json()["model"] == "openai/gpt-4o-mini"
    assert [q["path"] for q in stubs.requests()] == ["/openai/v1/chat/completions"]
    # a model of another provider, passthrough off: not found
    r = chat(gw, token, chat_body("gemini/gpt-4o-mini", "hello"))
    assert_openai_error(r, 404, code="model_not_found", param="model")
    assert len(stubs.requests()) == 1


# ---- chat, streamed ----

def read_stream(r):
    assert r.status == 200, r
    assert r.header("Content-Type").startswith("text/event-stream"), r.header("Content-Type")
    assert r.header("x-request-id")
    return sse_events(r.body)


@pytest.mark.parametrize("include_usage", [True, False, None],
                         ids=["usage", "usage-false", "no-stream-options"])
@pytest.mark.parametrize("model", CHAT_MODELS)
def test_chat_stream(gw, stubs, token, model, include_usage):
    text = prompt_text(4500)
    ref = chat(gw, token, chat_body(model, text))
    ref_b = check_completion(ref, model, ceil4(len(text)))
    stubs.clear_requests()

    r = chat(gw, token, chat_body(model, text, stream=True, include_usage=include_usage))
    events = read_stream(r)
    assert events.count("[DONE]") == 1 and events[-1] == "[DONE]", events[-3:]
    chunks = sse_json(events)
    assert chunks, events
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1, ids
    content = ""
    finishes = []
    usage_chunks = []
    for c in chunks:
        assert "error" not in c, c
        assert c["object"] == "chat.completion.chunk", c
        assert c["model"] == model, c
        assert isinstance(c["created"], int)
        assert isinstance(c["choices"], list), c
        for ch in c["choices"]:
            assert ch["index"] == 0
            delta = ch["delta"]
            content += delta.get("content") or ""
            if ch.get("finish_reason"):
                finishes.append(ch["finish_reason"])
        if include_usage:
            if c.get("usage") is not None:
                usage_chunks.append(c)
        else:
            assert "usage" not in c, c
    assert chunks[0]["choices"][0]["delta"].get("role") == "assistant", chunks[0]
    assert finishes == ["stop"], finishes
    assert content == ref_b["choices"][0]["message"]["content"]
    if include_usage:
        assert len(usage_chunks) == 1, usage_chunks
        assert usage_chunks[0] is chunks[-1], "the usage chunk is not the last one"
        assert usage_chunks[0]["choices"] == []
        assert usage_chunks[0]["usage"] == ref_b["usage"]
    # the stub saw the native streaming path, once
    assert [q["path"] for q in stubs.requests()] == [native_path(model, stream=True)]


def test_stream_billed_without_include_usage(gw, stubs, token):
    """The gateway asks the upstream for usage even when the client did not,
    and bills it: the token counters move by the real usage."""
    model = "gpt-4o-mini"
    text = prompt_text(300)
    ref = check_completion(chat(gw, token, chat_body(model, text)), model, ceil4(300))
    u = ref["usage"]
    _, before = gw.metrics()
    events = read_stream(chat(gw, token, chat_body(model, text, stream=True)))
    assert events[-1] == "[DONE]"
    assert all("usage" not in c for c in sse_json(events))

    def check(m):
        for kind, v in (("input", u["prompt_tokens"]), ("output", u["completion_tokens"])):
            b = metric(before, "leaky_provider_tokens_total", provider="openai", model=model,
                       kind=kind) or 0
            a = metric(m, "leaky_provider_tokens_total", provider="openai", model=model,
                       kind=kind)
            assert a == b + v, (kind, a, b, v)
    gw.eventually(check)


# ---- embeddings ----

def test_embeddings(gw, stubs, token):
    inputs = ["hello world", "abc", "a" * 401]
    r = v1_post(gw, token, EMBED, {"model": "text-embedding-3-small", "input": inputs})
    assert r.status == 200, r
    b = r.json()
    assert b["object"] == "list"
    assert b["model"] == "text-embedding-3-small"
    assert [d["index"] for d in b["data"]] == [0, 1, 2]
    for d in b["data"]:
        assert d["object"] == "embedding"
        assert d["embedding"] and all(isinstance(x, (int, float)) for x in d["embedding"])
    assert b["usage"]["prompt_tokens"] == sum(ceil4(len(s)) for s in inputs), b["usage"]
    assert [q["path"] for q in stubs.requests()] == ["/openai/v1/embeddings"]
    # a single string works too
    r = v1_post(gw, token, EMBED, {"model": "text-embedding-3-small", "input": "hello world"})
    assert r.status == 200 and len(r.json()["data"]) == 1, r
    assert r.json()["data"][0]["embedding"] == b["data"][0]["embedding"]


@pytest.mark.parametrize("body,param", [
    ({"input": "x"}, "model"),
    ({"model": "text-embedding-3-small"}, "input"),
    ({"model": "text-embedding-3-small", "input": 5}, "input"),
    ({"model": "gpt-4o-mini", "input": "x"}, "model"),
])
def test_embeddings_bad_requests(gw, stubs, token, body, param):
    r = v1_post(gw, token, EMBED, body)
    assert_openai_error(r, 400, param=param, etype="invalid_request_error")
    assert stubs.requests() == []


def test_embeddings_unknown_model(gw, stubs, token):
    r = v1_post(gw, token, EMBED, {"model": "no-such-embedder", "input": "x"})
    assert_openai_error(r, 404, code="model_not_found", param="model")


# ---- models ----

def test_models_list(gw, token):
    r = gw.get("/v1/models", headers=bearer(token))
    assert r.status == 200, r
    b = r.json()
    assert b["object"] == "list"
    got = {m["id"]: m for m in b["data"]}
    assert set(got) == set(ALL_MODELS), sorted(got)
    for name, m in got.items():
        assert m["object"] == "model", m
        assert m["owned_by"] == ALL_MODELS[name]["provider"], m
        assert isinstance(m["created"], int)


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gemini-2.5-flash", "qwen-plus",
                                   "text-embedding-3-small"])
def test_model_get(gw, token, model):
    r = gw.get(f"/v1/models/{model}", headers=bearer(token))
    assert r.status == 200, r
    b = r.json()
    assert b["id"] == model and b["object"] == "model"
    assert b["owned_by"] == MODELS[model]["provider"]


def test_model_get_unknown(gw, token):
    r = gw.get("/v1/models/gpt-9-ultra", headers=bearer(token))
    e = assert_openai_error(r, 404, code="model_not_found")
    assert "gpt-9-ultra" in e["message"]


def test_chat_unknown_model(gw, stubs, token):
    r = chat(gw, token, chat_body("gpt-9-ultra"))
    e = assert_openai_error(r, 404, code="model_not_found", param="model",
                            etype="invalid_request_error")
    assert "gpt-9-ultra" in e["message"]
    assert stubs.requests() == []


# ---- validation and credentials ----

GOOD_MSGS = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("body,param", [
    ({"messages": GOOD_MSGS}, "model"),
    ({"model": "", "messages": GOOD_MSGS}, "model"),
    ({"model": 5, "messages": GOOD_MSGS}, "model"),
    ({"model": "gpt-4o-mini"}, "messages"),
    ({"model": "gpt-4o-mini", "messages": []}, "messages"),
    ({"model": "gpt-4o-mini", "messages": "hi"}, "messages"),
    ({"model": "gpt-4o-mini", "messages": [5]}, "messages[0]"),
    ({"model": "gpt-4o-mini", "messages": [{"role": "wizard", "content": "x"}]},
     "messages[0].role"),
    ({"model": "gpt-4o-mini", "messages": [{"role": "user"}]}, "messages[0].content"),
    ({"model": "gpt-4o-mini", "messages": GOOD_MSGS + [{"role": "user", "content": 7}]},
     "messages[1].content"),
    ({"model": "gpt-4o-mini", "messages": GOOD_MSGS, "stream": "yes"}, "stream"),
    ({"model": "gpt-4o-mini", "messages": GOOD_MSGS, "stream_options": {"include_usage": True}},
     "stream_options"),
    ({"model": "gpt-4o-mini", "messages": GOOD_MSGS, "max_tokens": 0}, "max_tokens"),
    ({"model": "gpt-4o-mini", "messages": GOOD_MSGS, "max_tokens": 1.5}, "max_tokens"),
    ({"model": "gpt-4o-mini", "messages": GOOD_MSGS, "max_completion_tokens": -1},
     "max_completion_tokens"),
    ({"model": "gpt-4o-mini", "messages": GOOD_MSGS, "n": 9}, "n"),
    ({"model": "gpt-4o-mini", "messages": GOOD_MSGS, "temperature": 2.5}, "temperature"),
    ({"model": "gpt-4o-mini", "messages": GOOD_MSGS, "top_p": "1"}, "top_p"),
    ({"model": "gpt-4o-mini", "messages": GOOD_MSGS, "stop": [1]}, "stop"),
    ({"model": "gemini-2.0-flash", "messages": GOOD_MSGS, "n": 2}, "n"),
    ({"model": "gemini-2.0-flash",
      "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
     "messages[0].content[0].type"),
    ({"model": "text-embedding-3-small", "messages": GOOD_MSGS}, "model"),
    ({"model": "gpt-4o-mini", "messages": GOOD_MSGS, "max_tokens": 16385}, "max_tokens"),
    ({"model": "o4-mini", "messages": GOOD_MSGS, "max_completion_tokens": 100001},
     "max_tokens"),
])
def test_chat_bad_bodies(gw, stubs, token, body, param):
    r = chat(gw, token, body)
    assert_openai_error(r, 400, param=param, etype="invalid_request_error")
    assert stubs.requests() == [], "a refused request reached the provider"


def test_chat_duplicate_model_key(gw, stubs, token):
    raw = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],' \
          b'"model":"o4-mini"}'
    r = chat(gw, token, raw)
    assert_openai_error(r, 400, param="model")
    assert stubs.requests() == []


@pytest.mark.parametrize("raw", [b"[1,2]", b'"x"', b"null"])
def test_chat_body_not_object(gw, stubs, token, raw):
    r = chat(gw, token, raw)
    e = assert_openai_error(r, 400, etype="invalid_request_error")
    assert e["param"] is None, e


def test_embedding_model_on_chat_message(gw, token):
    r = chat(gw, token, chat_body("text-embedding-3-small"))
    e = assert_openai_error(r, 400, param="model")
    assert "embedding" in e["message"]


def test_max_tokens_above_max_output(gw, token):
    r = chat(gw, token, chat_body("gpt-4o-mini", max_tokens=MODELS["gpt-4o-mini"]["max_output"]))
    assert r.status == 200, r
    r = chat(gw, token, chat_body("gpt-4o-mini",
                                  max_tokens=MODELS["gpt-4o-mini"]["max_output"] + 1))
    e = assert_openai_error(r, 400, param="max_tokens")
    assert str(MODELS["gpt-4o-mini"]["max_output"]) in e["message"]


def test_context_window(gw, stubs, token):
    r = chat(gw, token, chat_body(TINY, "x" * 200, max_tokens=50))      # 50 + 50 tokens
    assert r.status == 200, r
    r = chat(gw, token, chat_body(TINY, "x" * 204, max_tokens=50))      # 51 + 50
    e = assert_openai_error(r, 400, code="context_length_exceeded", param="messages")
    assert "100" in e["message"], e
    r = chat(gw, token, chat_body(TINY, "x" * 404))                     # 101, no max_tokens
    assert_openai_error(r, 400, code="context_length_exceeded", param="messages")
    assert len(stubs.requests()) == 1


@pytest.mark.parametrize("raw", [b"{", b'{"model": "gpt-4o-mini",}', b"\xff\xfe"])
def test_chat_malformed_json(gw, stubs, token, raw):
    r = chat(gw, token, raw)
    assert_openai_error(r, 400, etype="invalid_request_error")
    assert stubs.requests() == []


@pytest.mark.parametrize("method,path,body", [
    ("POST", CHAT, chat_body("gpt-4o-mini")),
    ("POST", EMBED, {"model": "text-embedding-3-small", "input": "x"}),
    ("GET", "/v1/models", None),
    ("GET", "/v1/models/gpt-4o-mini", None),
])
@pytest.mark.parametrize("cred", [None, "Bearer not-a-token", "Bearer lt_abcdefghijkl_" + "x" * 43])
def test_v1_unauthenticated(gw, stubs, method, path, body, cred):
    h = {"Content-Type": "application/json"}
    if cred:
        h["Authorization"] = cred
    r = gw.request(method, path, body=json.dumps(body).encode() if body else None, headers=h)
    assert_openai_error(r, 401, code="invalid_api_key")
    assert re.match(r"^Bearer\b", r.header("WWW-Authenticate") or ""), r.headers
    assert stubs.requests() == []


def test_api_key_works_on_v1(gw, token):
    me = register(gw)[0]
    fund(gw, me["userId"])
    r = gw.post_json("/api/v1/auth/api-keys", {"userId": me["userId"], "name": "v1"},
                     headers=bearer(me["token"]))
    assert r.status == 201, r
    key = r.json()["apiKey"]
    r = chat(gw, None, chat_body("gpt-4o-mini"), headers={"X-Api-Key": key})
    assert r.status == 200, r
    r = chat(gw, key, chat_body("gpt-4o-mini"))
    assert r.status == 200, r


# ---- credentials forwarded ----

def test_credentials_forwarded(gw, stubs, token):
    for model in ("gpt-4o-mini", "gemini-2.0-flash", "qwen-plus"):
        assert chat(gw, token, chat_body(model)).status == 200
    reqs = {q["path"]: q["credential"] for q in stubs.requests()}
    assert reqs[native_path("gpt-4o-mini")] == f"Bearer {OPENAI_KEY}"
    assert reqs[native_path("gemini-2.0-flash")] == GEMINI_KEY      # x-goog-api-key
    assert reqs[native_path("qwen-plus")] == ""                    # credential none
    r = gw.get("/admin/v1/providers", headers=admin(gw))
    assert r.status == 200, r
    cred = {p["name"]: p["credential"] for p in r.json()["providers"]}
    assert cred["openai"]["source"] == "env" and cred["openai"]["present"] is True
    assert cred["gemini"]["source"] == "env" and cred["gemini"]["present"] is True
    assert cred["qwen"]["source"] == "none" and cred["qwen"]["present"] is False
    assert OPENAI_KEY not in r.text and GEMINI_KEY not in r.text


def test_missing_env_credential(tmp_path, stubs):
    """env:VAR unset: the provider is called without a credential, and the
    admin view says why."""
    gw2 = start_gateway(tmp_path / "gw", stubs.port, limits=GENEROUS_LIMITS,
                        providers={"openai": {"credential": "env:LEAKY_TEST_UNSET_KEY"}})
    try:
        tok = user_token(gw2)
        assert chat(gw2, tok, chat_body("gpt-4o-mini")).status == 200
        assert stubs.requests()[-1]["credential"] == ""
        r = gw2.get("/admin/v1/providers", headers=admin(gw2))
        p = [p for p in r.json()["providers"] if p["name"] == "openai"][0]
        assert p["credential"]["present"] is False
        assert "LEAKY_TEST_UNSET_KEY" in p["credential"]["problem"]
    finally:
        gw2.stop()


# ---- the reference passthrough ----

@pytest.mark.parametrize("provider", ["openai", "gemini", "qwen"])
def test_reference_chat(gw, stubs, token, provider):
    path = f"/api/v1/{provider}/chat"
    r = gw.post_json(path, {"prompt": "Hello there"}, headers=bearer(token))
    assert r.status == 200, r
    b = r.json()
    assert set(b) == {"id", "provider", "received", "created", "message"}, b
    assert re.match(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
                    b["id"]), b
    assert b["provider"] == provider
    assert b["received"] == {"prompt": "Hello there"}
    assert ISO_MS_Z.match(b["created"]), b
    assert b["message"].startswith(f"Stubbed {STUB_LABEL[provider]} response"), b
    model = {"openai": "gpt-4o-mini", "gemini": "gemini-2.0-flash", "qwen": "qwen-plus"}[provider]
    assert [q["path"] for q in stubs.requests()] == [native_path(model)]


def test_reference_chat_case_insensitive_provider(gw, stubs, token):
    r = gw.post_json("/api/v1/OpenAI/chat", {"prompt": "x"}, headers=bearer(token))
    assert r.status == 200, r
    assert r.json()["provider"] == "openai"


@pytest.mark.parametrize("provider,body,message", [
    ("anthropic", {"prompt": "x"}, "unknown provider"),
    ("openai", {}, None),
    ("openai", {"prompt": ""}, None),
    ("openai", {"prompt": 5}, None),
])
def test_reference_chat_bad(gw, stubs, token, provider, body, message):
    path = f"/api/v1/{provider}/chat"
    r = gw.post_json(path, body, headers=bearer(token))
    b = assert_error_body(r, 400, path)
    if message:
        assert b["message"] == message
    else:
        assert "prompt" in b["message"], b
    assert stubs.requests() == []


def test_reference_chat_provider_failure(gw, stubs, token):
    stubs.fault("/openai/v1/chat/completions", count=1, status=500)
    path = "/api/v1/openai/chat"
    r = gw.post_json(path, {"prompt": "x"}, headers=bearer(token))
    b = assert_error_body(r, 502, path)
    assert b["message"] == "provider call failed"
    assert len(stubs.requests()) == 1          # 500 is not retried


def test_reference_chat_provider_timeout(gw, stubs, token):
    """[provider.openai] timeout_ms is the default 2000; the stub holds 2500."""
    stubs.fault("/openai/v1/chat/completions", count=1, delay_ms=2500)
    path = "/api/v1/openai/chat"
    r = gw.post_json(path, {"prompt": "x"}, headers=bearer(token))
    b = assert_error_body(r, 504, path)
    assert b["message"] == "provider call timed out"


def test_reference_chat_needs_auth(gw, stubs):
    r = gw.post_json("/api/v1/openai/chat", {"prompt": "x"})
    assert r.status == 401, r
    assert stubs.requests() == []


# ---- admin views ----

def test_admin_prices(gw, token):
    r = gw.get("/admin/v1/prices", headers=admin(gw))
    assert r.status == 200, r
    b = r.json()
    got = {m["model"]: m for m in b["models"]}
    assert set(got) == set(ALL_MODELS)
    assert got[TINY]["upstream"] == "gpt-4o-mini" and got[TINY]["contextWindow"] == 100
    assert got["gpt-4o-mini"]["upstream"] == "gpt-4o-mini"
    for name, m in ALL_MODELS.items():
        g = got[name]
        assert g["provider"] == m["provider"]
        assert g["kind"] == m["kind"]
        assert (g["input"], g["cachedInput"], g["output"]) == \
            (m["price_input"], m["price_cached_input"], m["price_output"]), g
        assert g["maxOutput"] == m["max_output"]
    r = gw.get("/admin/v1/prices", headers=bearer(token))
    assert r.status == 403, r


def test_admin_providers(gw, stubs, token):
    r = gw.get("/admin/v1/providers", headers=admin(gw))
    assert r.status == 200, r
    ps = {p["name"]: p for p in r.json()["providers"]}
    assert set(ps) == {"openai", "gemini", "qwen"}
    assert ps["gemini"]["format"] == "gemini" and ps["qwen"]["format"] == "qwen"
    assert ps["openai"]["baseUrl"] == f"http://127.0.0.1:{stubs.port}/openai/v1"
    for p in ps.values():
        assert p["circuit"]["state"] == "closed", p
        assert p["bulkhead"]["limit"] == 20, p
    assert gw.get("/admin/v1/providers", headers=bearer(token)).status == 403


# ---- metrics ----

PROVIDER_FAMILIES = {
    "leaky_provider_requests_total": "counter",
    "leaky_provider_tokens_total": "counter",
    "leaky_provider_cost_micros_total": "counter",
    "leaky_provider_client_disconnects_total": "counter",
    "leaky_provider_latency_seconds": "histogram",
    "leaky_provider_ttft_seconds": "histogram",
    "leaky_provider_circuit_state": "gauge",
    "leaky_provider_bulkhead_inflight": "gauge",
    "leaky_provider_bulkhead_limit": "gauge",
    "leaky_provider_retries_total": "counter",
    "leaky_provider_circuit_opens_total": "counter",
}


def snapshot(m, name, **labels):
    return metric(m, name, **labels) or 0


def test_metrics_tokens_and_cost(gw, stubs, token):
    calls = [  # (model, prompt bytes, stream, include_usage)
        ("gpt-4o-mini", 40, False, None), ("gpt-4o-mini", 6000, False, None),
        ("gpt-4o-mini", 90, True, True), ("o4-mini", 5000, False, None),
        ("o4-mini", 120, True, True), ("gemini-2.0-flash", 4200, False, None),
        ("gemini-2.5-flash", 64, False, None), ("gemini-2.5-flash", 8000, True, True),
        ("qwen-plus", 4100, False, None), ("qwen-plus", 33, True, True),
    ]
    _, before = gw.metrics()
    expect = {}        # (provider, model) -> dict of sums

    def add(model, usage, kind="chat"):
        p = MODELS[model]["provider"]
        e = expect.setdefault((p, model), dict(input=0, cached_input=0, output=0, reasoning=0,
                                               cost=0, calls=0))
        e["input"] += usage["prompt_tokens"]
        e["cached_input"] += (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        e["output"] += usage.get("completion_tokens", 0)
        e["reasoning"] += (usage.get("completion_tokens_details") or {}).get(
            "reasoning_tokens", 0)
        e["cost"] += cost_micros(usage, model)
        e["calls"] += 1

    streams = {}
    for i, (model, size, stream, inc) in enumerate(calls):
        text = prompt_text(size) + f" #{i}"
        if not stream:
            r = chat(gw, token, chat_body(model, text))
            b = check_completion(r, model, ceil4(len(text)))
            add(model, b["usage"])
        else:
            r = chat(gw, token, chat_body(model, text, stream=True, include_usage=inc))
            ev = read_stream(r)
            usage = [c for c in sse_json(ev) if c.get("usage")][-1]["usage"]
            add(model, usage)
            streams[MODELS[model]["provider"]] = streams.get(MODELS[model]["provider"], 0) + 1
    r = v1_post(gw, token, EMBED, {"model": "text-embedding-3-small",
                                   "input": ["x" * 4001, "y" * 17]})
    assert r.status == 200, r
    add("text-embedding-3-small", r.json()["usage"])
    assert any(e["cached_input"] for e in expect.values()), "no call had cached tokens"
    assert any(e["reasoning"] for e in expect.values())

    def check(m):
        for (p, model), e in expect.items():
            for kind in ("input", "cached_input", "output", "reasoning"):
                a = snapshot(m, "leaky_provider_tokens_total", provider=p, model=model,
                             kind=kind)
                b = snapshot(before, "leaky_provider_tokens_total", provider=p, model=model,
                             kind=kind)
                assert a - b == e[kind], (p, model, kind, a - b, e[kind])
            a = snapshot(m, "leaky_provider_cost_micros_total", provider=p, model=model)
            b = snapshot(before, "leaky_provider_cost_micros_total", provider=p, model=model)
            assert a - b == e["cost"], (p, model, "cost", a - b, e["cost"])
            a = snapshot(m, "leaky_provider_requests_total", provider=p, model=model,
                         outcome="ok")
            b = snapshot(before, "leaky_provider_requests_total", provider=p, model=model,
                         outcome="ok")
            assert a - b == e["calls"], (p, model, "calls", a - b, e["calls"])
        for p in ("openai", "gemini", "qwen"):
            n = sum(e["calls"] for (pp, _), e in expect.items() if pp == p)
            a = snapshot(m, "leaky_provider_latency_seconds_count", provider=p)
            b = snapshot(before, "leaky_provider_latency_seconds_count", provider=p)
            assert a - b == n, (p, "latency count", a - b, n)
            a = snapshot(m, "leaky_provider_ttft_seconds_count", provider=p)
            b = snapshot(before, "leaky_provider_ttft_seconds_count", provider=p)
            assert a - b == streams.get(p, 0), (p, "ttft count", a - b)
    text, _ = gw.eventually(check)
    for fam, typ in PROVIDER_FAMILIES.items():
        assert f"# TYPE {fam} {typ}" in text, fam
    m = gw.metrics()[1]
    for p in ("openai", "gemini", "qwen"):
        assert metric(m, "leaky_provider_circuit_state", provider=p) == 0
        assert metric(m, "leaky_provider_bulkhead_limit", provider=p) == 20
        assert metric(m, "leaky_provider_bulkhead_inflight", provider=p) == 0


# ---- HTTPS upstreams ----

def https_checks(leakyd_factory, tmp_path, backing, tls_port, ca, other_ca):
    """A provider on https://localhost:tls_port with the right CA works
    (plain and streamed); one with another CA gets 502 naming the
    certificate and never reaches the server.  `backing` is the
    StubServer that ends up serving the requests."""
    base = f"https://localhost:{tls_port}/openai/v1"
    cfg = gateway_config(backing.port, limits=GENEROUS_LIMITS, providers={
        "tlsok": {"base_url": base, "format": "openai", "ca_file": ca},
        "tlsbad": {"base_url": base, "format": "openai", "ca_file": other_ca},
    }, models={
        "ok-model": {"provider": "tlsok", "upstream": "gpt-4o-mini"},
        "bad-model": {"provider": "tlsbad", "upstream": "gpt-4o-mini"},
    })
    gw2 = leakyd_factory(cfg, env=GATEWAY_ENV)
    tok = user_token(gw2)
    backing.clear_requests()
    r = chat(gw2, tok, chat_body("ok-model", "over TLS"))
    assert r.status == 200, r
    assert r.json()["model"] == "ok-model"
    assert r.json()["choices"][0]["message"]["content"].startswith("Stubbed OpenAI response")
    assert [q["path"] for q in backing.requests()] == ["/openai/v1/chat/completions"]
    r = chat(gw2, tok, chat_body("ok-model", "over TLS", stream=True))
    assert sse_events(r.body)[-1] == "[DONE]", r

    backing.clear_requests()
    r = chat(gw2, tok, chat_body("bad-model", "over TLS"))
    e = assert_openai_error(r, 502, code="upstream_error")
    assert re.search(r"certificate|not trusted", e["message"], re.I), e
    assert backing.requests() == [], "a server with an untrusted certificate got the request"


class TlsProxy:
    """A TLS-terminating TCP proxy (Python's ssl module) in front of a plain
    port: the gateway's TLS client is tested against a real TLS server
    whatever the stubs' own HTTPS listener can do."""

    def __init__(self, cert_bundle, target_port):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert_bundle)
        self.target = target_port
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _serve(self, c):
        try:
            c.settimeout(30)
            t = self.ctx.wrap_socket(c, server_side=True)
        except (OSError, ssl.SSLError):
            c.close()       # the handshake failed (an untrusting client)
            return
        u = socket.create_connection(("127.0.0.1", self.target), timeout=30)
        th = threading.Thread(target=self._pipe, args=(u, t), daemon=True)
        th.start()
        self._pipe(t, u)
        th.join(30)
        t.close()
        u.close()

    def close(self):
        self.stopping = True
        self.sock.close()


def certs(d):
    ca, ca_key = make_ca(d, "test-ca")
    other_ca, _ = make_ca(d, "other-ca")
    return ca, other_ca, make_server_cert(d, ca, ca_key, "localhost")


def test_https_upstream(tmp_path, stubs, leakyd_factory):
    ca, other_ca, bundle = certs(str(tmp_path))
    proxy = TlsProxy(bundle, stubs.port)
    try:
        https_checks(leakyd_factory, tmp_path, stubs, proxy.port, ca, other_ca)
    finally:
        proxy.close()


def test_https_stubs_tls_listener(tmp_path, leakyd_factory):
    """The same against the stubs' own HTTPS listener ([stubs] tls_listen)."""
    ca, other_ca, bundle = certs(str(tmp_path))
    tls_stubs = StubServer(tmp_path / "tlsstubs", {"tls_listen": "127.0.0.1:0",
                                                    "tls_cert": bundle})
    tls_stubs.start()
    try:
        assert tls_stubs.tls_port, tls_stubs.log_text()
        https_checks(leakyd_factory, tmp_path, tls_stubs, tls_stubs.tls_port, ca, other_ca)
    finally:
        tls_stubs.stop()


# ---- raw: the stream's HTTP framing ----

def test_stream_http_framing(gw, token):
    """The SSE body is chunked and ends with the terminating chunk."""
    body = json.dumps(chat_body("gemini-2.5-flash", "frame me", stream=True)).encode()
    req = (f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
           f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    s = socket.create_connection((gw.host, gw.port), timeout=30)
    try:
        s.sendall(req)
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    finally:
        s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"transfer-encoding: chunked" in head.lower(), head
    payload, terminated = dechunk(rest)
    assert terminated, rest[-100:]
    events = sse_events(payload)
    assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
