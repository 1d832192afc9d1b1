"""Admission and billing of the OpenAI-compatible API (API.md §4, src/api/v1.c,
src/api/spend.c) and the request limit the dispatcher applies to the routes
that do not admit themselves (src/http/listener.c → lt_spend_admit_request).

Three gateways on the built-in stubs, each started once for the module:

  gw    billing: token buckets too large to bind (GENEROUS_LIMITS); the
        pools do the work.  Checked against leaky.db itself: the ledger rows
        of every reservation (reserve → settle | release) with their exact
        amounts, the pools before and after, `leakyctl check`.
  lim   token buckets: [limits] token_capacity 1000, token_rate 10 per
        second (leaky), on the manual clock, so every number in the
        x-ratelimit-* headers and every wait is computed exactly.
  rq    the request limit: 3 requests per calendar minute per client on the
        manual clock (registration and /admin/v1 get their own large limits
        so setting up does not use the count).

What is billed (v1.c): prompt_estimate = ceil(bytes of all message texts / 4);
out_cap = max_tokens (or max_completion_tokens) when given, else the model's
max_output capped by context_window − prompt.  The payer's token pool holds
prompt_estimate + out_cap, its money budget (pool "$", micro-dollars, only
if it has one) the price of that, rounded up; both are settled to the real
usage.  The token bucket is charged prompt_estimate + the explicit
max_tokens and settled to the real usage (it may go into debt).

Nothing sleeps for a fixed time: waits poll with a deadline; no assertion
is about timing."""

import json
import re
import socket
import threading
from datetime import datetime, timezone

import pytest

from conftest import ISO_MS_Z, UUID_ANY, bearer, metric, register
from stubs_fixture import (FUNDS, GENEROUS_LIMITS, ceil4, chat, chat_body,
                           cost_micros, fund, model_section, sse_events, sse_json,
                           start_gateway, start_stubs, stub_cached, v1_post)
from tokens_fixture import (add_member, admin_identity, advance, assert_check_ok, clock_ms,
                            db_query, grant, make_org, rate_headers, set_clock, wait_until)

CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"
MODELS_PATH = "/v1/models"
ME = "/api/v1/auth/me"
OPENAI_CHAT = "/openai/v1/chat/completions"

MODEL = "gpt-4o-mini"                     # openai, max_output 16384, context 128000
MAX_OUTPUT = 16384
CONTEXT = 128000                          # the config default
TINY = "tiny-ctx"                         # gpt-4o-mini upstream, context 100, max_output 50
SLOW = "slow-model"                       # gpt-4o-mini on the slow stubs (provider slowstream)
EMBEDDER = "text-embedding-3-small"

# lim: the token bucket per (user, provider)
CAPACITY = 1000
RATE = 10                                 # tokens per second
# rq: the request limit
REQ_LIMIT = 3
WINDOW_MS = 60000

OPENAI_RL = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
             "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens",
             "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens")
GO_DURATION = re.compile(r"^(0s|\d+(\.\d+)?(ns|us|µs|ms)|(\d+h)?(\d+m)?\d+(\.\d+)?s)$")


# ---- fixtures ----

@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    s = start_stubs(tmp_path_factory.mktemp("stubs"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def slow_stubs(tmp_path_factory):
    """Stubs that stream one token every 200 ms (a stream can be cut)."""
    s = start_stubs(tmp_path_factory.mktemp("slowstubs"), {"token_delay_ms": 200},
                    name="slowstubs")
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def clean_stubs(stubs, slow_stubs):
    stubs.reset()
    slow_stubs.reset()
    yield
    stubs.clear_faults()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, stubs, slow_stubs):
    g = start_gateway(
        tmp_path_factory.mktemp("gw"), stubs.port, limits=GENEROUS_LIMITS, threads=48,
        providers={"openai": {"bulkhead": 100},
                   "slowstream": {"base_url": f"http://127.0.0.1:{slow_stubs.port}/openai/v1",
                                  "format": "openai", "timeout_ms": 60000}},
        models={TINY: model_section(MODEL, upstream=MODEL, context_window=100, max_output=50),
                SLOW: model_section(MODEL, provider="slowstream", upstream=MODEL)})
    yield g
    g.stop()


@pytest.fixture(scope="module")
def adm(gw):
    return admin_identity(gw)


@pytest.fixture(scope="module")
def lim(tmp_path_factory, stubs):
    g = start_gateway(tmp_path_factory.mktemp("lim"), stubs.port, manual_clock=True,
                      limits={"token_capacity": CAPACITY, "token_rate": RATE}, name="lim")
    yield g
    g.stop()


@pytest.fixture(scope="module")
def rq(tmp_path_factory, stubs):
    g = start_gateway(tmp_path_factory.mktemp("rq"), stubs.port, manual_clock=True,
                      limits={"request_limit": REQ_LIMIT, "request_window_ms": WINDOW_MS,
                              "request_routes": "/api/v1/auth/register=1000000,"
                                                "/admin/v1/**=1000000"},
                      name="rq")
    yield g
    g.stop()


# ---- helpers: identities and text ----

def user(g, tokens=FUNDS, money=None, providers=None):
    """A fresh USER: {userId, token, h}; its pools: `tokens` on every
    provider (0: none) and a money budget of `money` micro-dollars (None:
    none)."""
    me = register(g)[0]
    if tokens:
        fund(g, me["userId"], tokens, providers=providers, money=money)
    elif money:
        fund(g, me["userId"], providers=[], money=money)
    return {"userId": me["userId"], "token": me["token"], "h": bearer(me["token"])}


def text_of(n, tag=""):
    """A deterministic prompt of exactly n bytes (ASCII)."""
    base = f"{tag}Leaky buckets meter tokens; pools hold the worst case. "
    return (base * (n // len(base) + 1))[:n]


def cost(model, prompt, completion, cached=0):
    """Micro-dollars of (prompt, completion) tokens, rounded up."""
    return cost_micros({"prompt_tokens": prompt, "completion_tokens": completion,
                        "prompt_tokens_details": {"cached_tokens": cached}}, model)


def assert_openai_error(r, status, etype, code=None):
    assert r.status == status, r
    assert r.header("Content-Type") == "application/json", r.header("Content-Type")
    b = r.json()
    assert set(b) == {"error"}, b
    e = b["error"]
    assert set(e) == {"message", "type", "param", "code"}, e
    assert isinstance(e["message"], str) and e["message"], e
    assert e["type"] == etype, e
    assert e["code"] == code, e
    assert r.header("x-request-id"), r.headers
    return e


def assert_insufficient_quota(r):
    e = assert_openai_error(r, 429, "insufficient_quota", "insufficient_quota")
    assert r.header("x-should-retry") == "false", r.headers
    return e


def go_duration(ms):
    """Go's time.Duration.String() of a whole number of milliseconds."""
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    h, rem = divmod(ms, 3600000)
    m, rem = divmod(rem, 60000)
    s, frac = divmod(rem, 1000)
    out = f"{h}h" if h else ""
    if h or m:
        out += f"{m}m"
    return out + str(s) + ("." + f"{frac:03d}".rstrip("0") if frac else "") + "s"


def test_go_duration_helper():
    """The reference formatter above (Go's own outputs)."""
    assert [go_duration(x) for x in (0, 250, 1000, 1500, 14100, 60000, 360000, 3723000)] == \
        ["0s", "250ms", "1s", "1.5s", "14.1s", "1m0s", "6m0s", "1h2m3s"]


def rl(r, tokens=True):
    """The /v1 rate-limit headers of a response: present, well formed;
    returns {limit_requests, remaining_requests, reset_requests, ...} with
    the counts as ints and the resets as strings."""
    out = {}
    names = OPENAI_RL if tokens else OPENAI_RL[:3]
    for n in names:
        v = r.header(n)
        assert v is not None, f"{n} missing on {r}: {dict(r.headers)}"
        key = n[len("x-ratelimit-"):].replace("-", "_")
        if key.startswith("reset"):
            assert GO_DURATION.match(v), f"{n}: {v!r} is not a Go duration"
            out[key] = v
        else:
            assert re.match(r"^\d+$", v), f"{n}: {v!r}"
            out[key] = int(v)
    for fam in ("requests", "tokens") if tokens else ("requests",):
        assert out[f"remaining_{fam}"] <= out[f"limit_{fam}"], out
    assert r.header("x-request-id"), r.headers
    return out


def set_clock_ms(g, ms):
    """Set the manual clock to exactly `ms` (Unix ms, no sub-millisecond
    part: advanceMs keeps the fraction the clock started with)."""
    assert ms >= clock_ms(g), "the clock only moves forward here"
    iso = datetime.fromtimestamp(ms // 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    got = set_clock(g, f"{iso}.{ms % 1000:03d}Z")
    assert got == ms, (got, ms)
    return ms


# ---- helpers: leaky.db ----

def pool_of(g, owner, provider="openai"):
    """{id, total, remaining, reserved} of a pool, or None when it does not
    exist."""
    rows = db_query(g.data_dir, "SELECT id, total, remaining, reserved FROM pools "
                                "WHERE owner_id = ? AND provider = ?", (owner, provider))
    assert len(rows) <= 1, rows
    if not rows:
        return None
    return dict(zip(("id", "total", "remaining", "reserved"), rows[0]))


def mark(g):
    """The id of the last ledger row so far."""
    return db_query(g.data_dir, "SELECT coalesce(max(id), 0) FROM ledger")[0][0]


def ledger(g, owner, provider="openai", after=0):
    p = pool_of(g, owner, provider)
    if p is None:
        return []
    rows = db_query(g.data_dir,
                    "SELECT kind, d_remaining, d_reserved, reservation, amount, unbilled, reason "
                    "FROM ledger WHERE pool_id = ? AND id > ? ORDER BY id", (p["id"], after))
    keys = ("kind", "d_remaining", "d_reserved", "reservation", "amount", "unbilled", "reason")
    return [dict(zip(keys, r)) for r in rows]


def owner_rows(g, owner, after=0):
    """Every ledger row of every pool of an owner since `after`."""
    return db_query(g.data_dir,
                    "SELECT l.kind, p.provider FROM ledger l JOIN pools p ON p.id = l.pool_id "
                    "WHERE p.owner_id = ? AND l.id > ? ORDER BY l.id", (owner, after))


def open_holds(g, resv):
    return db_query(g.data_dir, "SELECT count(*) FROM reservations WHERE id = ?", (resv,))[0][0]


def wait_settled(g, owner, provider="openai", after=0, kinds=("settle", "release")):
    """Poll until the owner's pool holds nothing and its last reservation
    since `after` is closed; returns its ledger rows since `after`."""
    def done():
        p = pool_of(g, owner, provider)
        rows = ledger(g, owner, provider, after)
        return rows if (p and p["reserved"] == 0 and rows and rows[-1]["kind"] in kinds) \
            else None
    return wait_until(done, f"the {provider} pool of {owner} to settle", deadline_s=30)


def assert_cycle(rows, held, actual, reason, closing="settle"):
    """Ledger rows of one pool for one call: a reserve of `held` then a
    settle to `actual` (or a release).  Returns the reservation id."""
    assert [r["kind"] for r in rows] == ["reserve", closing], rows
    res, end = rows
    assert res["amount"] == held, (res, held)
    assert (res["d_remaining"], res["d_reserved"]) == (-held, held), res
    assert res["reason"] == reason, res
    assert UUID_ANY.match(res["reservation"] or ""), res
    assert end["reservation"] == res["reservation"], rows
    assert end["d_reserved"] == -held, end
    if closing == "settle":
        assert end["amount"] == actual, (end, actual)
        assert end["d_remaining"] == held - actual, end
        assert end["unbilled"] == 0, end
        assert end["reason"] == reason, end
    else:
        assert end["d_remaining"] == held, end
    return res["reservation"]


def snap(g, owner, providers=("openai", "$")):
    return {p: pool_of(g, owner, p) for p in providers}


def metrics_now(g):
    return g.metrics()[1]


def delta(m1, m0, name, **labels):
    return (metric(m1, name, **labels) or 0) - (metric(m0, name, **labels) or 0)


def moved(m0, name, by, **labels):
    """A check for Leakyd.eventually: the series moved by exactly `by`."""
    def check(m):
        d = delta(m, m0, name, **labels)
        assert d == by, f"{name}{labels} moved by {d}, not {by}"
    return check


# ---- gw: what the pools hold and what they are charged ----

@pytest.mark.parametrize("size,cap_field", [(403, "max_tokens"), (403, "max_completion_tokens"),
                                            (5000, "max_tokens"), (403, None), (5000, None)],
                         ids=["max_tokens", "max_completion_tokens", "cached-max_tokens",
                              "no-cap", "cached-no-cap"])
def test_chat_holds_worst_case_and_settles_to_usage(gw, stubs, size, cap_field):
    u = user(gw, money=10**9)
    text = text_of(size)
    prompt = ceil4(size)
    extra = {cap_field: 40} if cap_field else {}
    out_cap = 40 if cap_field else MAX_OUTPUT          # min(16384, 128000 - prompt)
    m0 = mark(gw)
    before = snap(gw, u["userId"])
    r = chat(gw, u["token"], chat_body(MODEL, text, **extra))
    assert r.status == 200, r
    usage = r.json()["usage"]
    assert usage["prompt_tokens"] == prompt, usage
    assert usage["prompt_tokens_details"]["cached_tokens"] == stub_cached(prompt), usage
    used = usage["prompt_tokens"] + usage["completion_tokens"]
    assert used < prompt + out_cap, "the worst case must exceed the usage for this test"
    tok = ledger(gw, u["userId"], "openai", m0)
    resv = assert_cycle(tok, prompt + out_cap, used, "chat")
    money = ledger(gw, u["userId"], "$", m0)
    assert_cycle(money, cost(MODEL, prompt, out_cap), cost_micros(usage, MODEL), "chat")
    assert money[0]["reservation"] == resv, "the token pool and the budget are one reservation"
    after = snap(gw, u["userId"])
    assert after["openai"]["remaining"] == before["openai"]["remaining"] - used
    assert after["openai"]["total"] == before["openai"]["total"]
    assert after["$"]["remaining"] == before["$"]["remaining"] - cost_micros(usage, MODEL)
    assert after["openai"]["reserved"] == after["$"]["reserved"] == 0
    assert open_holds(gw, resv) == 0
    assert len(stubs.requests()) == 1


@pytest.mark.parametrize("size,out_cap", [(240, 40), (80, 50)], ids=["context-caps", "max-output"])
def test_default_output_cap_within_context(gw, size, out_cap):
    """No max_tokens on a 100-token-context model with max_output 50: the
    hold is prompt + min(max_output, context − prompt)."""
    u = user(gw, money=10**9)
    prompt = ceil4(size)
    m0 = mark(gw)
    r = chat(gw, u["token"], chat_body(TINY, text_of(size)))
    assert r.status == 200, r
    usage = r.json()["usage"]
    used = usage["prompt_tokens"] + usage["completion_tokens"]
    assert_cycle(ledger(gw, u["userId"], "openai", m0), prompt + out_cap, used, "chat")
    assert_cycle(ledger(gw, u["userId"], "$", m0), cost(MODEL, prompt, out_cap),
                 cost_micros(usage, MODEL), "chat")


def test_prompt_estimate_counts_bytes_of_all_messages(gw):
    """ceil(total bytes / 4) over every message text (multi-byte UTF-8
    counted in bytes), not per message and not in characters."""
    msgs = [{"role": "system", "content": "Be brief"},                      # 8 bytes
            {"role": "user", "content": "héllo wörld ✓"},                   # 17 bytes
            {"role": "assistant", "content": "ok"},                         # 2
            {"role": "user", "content": "and again?"}]                      # 10
    nbytes = sum(len(m["content"].encode()) for m in msgs)
    assert nbytes == 37
    prompt = ceil4(nbytes)                                                  # 10
    assert prompt != sum(ceil4(len(m["content"].encode())) for m in msgs)   # 2+5+1+3 = 11
    assert prompt != ceil4(sum(len(m["content"]) for m in msgs))            # 34 chars -> 9
    u = user(gw)
    m0 = mark(gw)
    r = chat(gw, u["token"], chat_body(MODEL, messages=msgs, max_tokens=20))
    assert r.status == 200, r
    usage = r.json()["usage"]
    assert_cycle(ledger(gw, u["userId"], "openai", m0), prompt + 20,
                 usage["prompt_tokens"] + usage["completion_tokens"], "chat")


def test_no_money_budget_no_money_hold(gw):
    """An owner without a "$" pool is billed in tokens only: no budget is
    created or touched."""
    u = user(gw)
    m0 = mark(gw)
    r = chat(gw, u["token"], chat_body(MODEL, "tokens only", max_tokens=10))
    assert r.status == 200, r
    assert pool_of(gw, u["userId"], "$") is None
    assert [k for k, _ in owner_rows(gw, u["userId"], m0)] == ["reserve", "settle"]


def test_stream_settles_to_final_usage(gw):
    u = user(gw, money=10**9)
    text = text_of(700)
    prompt = ceil4(700)
    m0 = mark(gw)
    r = chat(gw, u["token"], chat_body(MODEL, text, stream=True, include_usage=True,
                                       max_tokens=30))
    assert r.status == 200, r
    chunks = sse_json(sse_events(r.body))
    usage = [c for c in chunks if c.get("usage")][-1]["usage"]
    used = usage["prompt_tokens"] + usage["completion_tokens"]
    rows = wait_settled(gw, u["userId"], "openai", m0)
    assert_cycle(rows, prompt + 30, used, "chat")
    assert_cycle(wait_settled(gw, u["userId"], "$", m0), cost(MODEL, prompt, 30),
                 cost_micros(usage, MODEL), "chat")


def test_stream_without_include_usage_still_settles_to_usage(gw):
    """The client did not ask for usage: the settle still uses the real
    usage, the same as the identical non-streamed call's (the stubs are
    deterministic)."""
    u = user(gw)
    text = text_of(321, "nostreamusage ")
    ref = chat(gw, u["token"], chat_body(MODEL, text))
    assert ref.status == 200, ref
    ru = ref.json()["usage"]
    m0 = mark(gw)
    r = chat(gw, u["token"], chat_body(MODEL, text, stream=True))
    assert r.status == 200, r
    assert all("usage" not in c for c in sse_json(sse_events(r.body)))
    rows = wait_settled(gw, u["userId"], "openai", m0)
    assert_cycle(rows, ceil4(321) + MAX_OUTPUT, ru["prompt_tokens"] + ru["completion_tokens"],
                 "chat")


def test_stream_cut_by_client_billed_for_what_was_produced(gw, slow_stubs):
    """The client hangs up after the first token: the reservation is
    settled (not left open, not released) to what the gateway recorded as
    produced — at least the prompt and the tokens the client got, less than
    the hold."""
    u = user(gw, money=10**9)
    text = text_of(200, "cut ")
    prompt = ceil4(200)
    _, met0 = gw.metrics()
    m0 = mark(gw)
    body = json.dumps(chat_body(SLOW, text, stream=True, max_tokens=32)).encode()
    req = (f"POST {CHAT} HTTP/1.1\r\nHost: x\r\n"
           f"Authorization: Bearer {u['token']}\r\nContent-Type: application/json\r\n"
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
    received = 0                              # content bytes of the complete frames
    for line in got.split(b"\n")[:-1]:
        if line.startswith(b"data: {"):
            try:
                frame = json.loads(line[6:])
            except ValueError:
                continue
            for ch in frame.get("choices", []):
                received += len(((ch.get("delta") or {}).get("content") or "").encode())
    rows = wait_settled(gw, u["userId"], "slowstream", m0)
    assert [x["kind"] for x in rows] == ["reserve", "settle"], rows
    billed = rows[1]["amount"]
    assert_cycle(rows, prompt + 32, billed, "chat")
    assert received > 0, got
    assert prompt + ceil4(received) <= billed <= prompt + 32, (billed, prompt, received)

    def produced(m):
        v = sum(delta(m, met0, "leaky_provider_tokens_total", provider="slowstream",
                      model=SLOW, kind=k) for k in ("input", "output"))
        assert v == billed, f"recorded as produced: {v}, billed: {billed}"
    _, met1 = gw.eventually(produced, deadline_s=20)
    out = delta(met1, met0, "leaky_provider_tokens_total", provider="slowstream", model=SLOW,
                kind="output")
    money = wait_settled(gw, u["userId"], "$", m0)
    assert_cycle(money, cost(MODEL, prompt, 32), cost(MODEL, billed - out, out), "chat")
    assert len(slow_stubs.requests()) == 1


def test_stream_cut_by_upstream_billed_for_what_was_streamed(gw, stubs):
    """The upstream drops the stream after some tokens (no usage came): the
    call produced output, so it is settled — not released — to the prompt
    estimate plus the estimate of the content streamed."""
    u = user(gw)
    text = text_of(160, "drop ")
    m0 = mark(gw)
    stubs.fault(OPENAI_CHAT, count=1, drop_after=3)
    r = chat(gw, u["token"], chat_body(MODEL, text, stream=True, include_usage=True,
                                       max_tokens=30))
    assert r.status == 200, r
    frames = sse_json(sse_events(r.body))
    assert "error" in frames[-1], frames[-1]
    content = "".join((ch.get("delta") or {}).get("content") or ""
                      for f in frames for ch in f.get("choices", []))
    assert content, frames
    rows = wait_settled(gw, u["userId"], "openai", m0)
    assert_cycle(rows, ceil4(160) + 30, ceil4(160) + ceil4(len(content.encode())), "chat")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_provider_failure_releases_everything(gw, stubs, stream):
    """HTTP 500 before any output: both pools exactly as before, with a
    reserve and a release row each."""
    u = user(gw, money=10**9)
    before = snap(gw, u["userId"])
    m0 = mark(gw)
    stubs.fault(OPENAI_CHAT, count=1, status=500)
    r = chat(gw, u["token"], chat_body(MODEL, "this call fails", max_tokens=25,
                                       stream=True if stream else None))
    assert_openai_error(r, 502, "server_error", "upstream_error")
    assert len(stubs.requests()) == 1
    prompt = ceil4(len("this call fails"))
    tok = wait_settled(gw, u["userId"], "openai", m0)
    resv = assert_cycle(tok, prompt + 25, None, "chat", closing="release")
    money = wait_settled(gw, u["userId"], "$", m0)
    assert_cycle(money, cost(MODEL, prompt, 25), None, "chat", closing="release")
    assert money[0]["reservation"] == resv
    assert snap(gw, u["userId"]) == before
    assert open_holds(gw, resv) == 0


# ---- gw: the reference chat route is billed the same way ----

REF_CHAT = "/api/v1/openai/chat"


def test_reference_chat_is_billed(gw, stubs):
    """POST /api/v1/{provider}/chat holds prompt + the default model's
    output cap (sent upstream) on the caller's pool and its price on the
    money budget, then settles both to the usage (ledger reason
    "reference"); the §6 headers are on the answer."""
    u = user(gw, money=10**9)
    prompt = text_of(403, "ref ")
    est = ceil4(len(prompt))
    m0 = mark(gw)
    r = gw.post_json(REF_CHAT, {"prompt": prompt}, headers=u["h"])
    assert r.status == 200, r
    msg = r.json()["message"]
    assert msg and len(msg) % 4 == 0, msg          # the stub: 4 bytes per token
    used = est + len(msg) // 4
    tok = wait_settled(gw, u["userId"], "openai", m0)
    resv = assert_cycle(tok, est + MAX_OUTPUT, used, "reference")
    money = wait_settled(gw, u["userId"], "$", m0)
    assert money[0]["reservation"] == resv
    assert money[0]["amount"] == cost(MODEL, est, MAX_OUTPUT), money
    assert money[1]["amount"] == cost(MODEL, est, len(msg) // 4), money
    assert pool_of(gw, u["userId"])["remaining"] == FUNDS - used
    assert r.header("X-RateLimit-Limit") and r.header("RateLimit-Policy"), r.headers


def test_reference_chat_refusals(gw, stubs):
    """No pool: 402 "insufficient token quota", the stub not called; a
    provider failure: 502, the reservation released."""
    u = user(gw, tokens=0)
    r = gw.post_json(REF_CHAT, {"prompt": "no pool"}, headers=u["h"])
    assert r.status == 402 and r.json()["message"] == "insufficient token quota", r
    assert r.header("X-RateLimit-Limit"), r.headers
    assert stubs.requests() == []
    u = user(gw)
    m0 = mark(gw)
    stubs.fault(OPENAI_CHAT, count=3, status=500)       # >= retry_attempts
    r = gw.post_json(REF_CHAT, {"prompt": "this call fails"}, headers=u["h"])
    assert r.status == 502 and r.json()["message"] == "provider call failed", r
    rows = wait_settled(gw, u["userId"], "openai", m0)
    assert_cycle(rows, ceil4(len("this call fails")) + MAX_OUTPUT, None, "reference",
                 closing="release")
    assert pool_of(gw, u["userId"])["remaining"] == FUNDS


# ---- gw: quota refusals ----

def test_no_pool_refused(gw, stubs):
    u = user(gw, tokens=0)
    m0 = mark(gw)
    r = chat(gw, u["token"], chat_body(MODEL, "no pool", max_tokens=5))
    e = assert_insufficient_quota(r)
    assert "quota" in e["message"], e
    assert stubs.requests() == []
    assert db_query(gw.data_dir, "SELECT count(*) FROM pools WHERE owner_id = ?",
                    (u["userId"],))[0][0] == 0
    assert mark(gw) == m0


def test_short_pool_refused_at_the_exact_boundary(gw, stubs):
    """Pool of 100; prompt 10: max_tokens 91 (101) is refused and changes
    nothing; max_tokens 90 (exactly 100) passes."""
    u = user(gw, tokens=100)
    text = text_of(40)
    before = pool_of(gw, u["userId"])
    m0 = mark(gw)
    r = chat(gw, u["token"], chat_body(MODEL, text, max_tokens=91))
    e = assert_insufficient_quota(r)
    assert "token quota" in e["message"], e
    assert stubs.requests() == []
    assert pool_of(gw, u["userId"]) == before
    assert owner_rows(gw, u["userId"], m0) == []
    # without max_tokens the hold is prompt + 16384: refused too
    assert_insufficient_quota(chat(gw, u["token"], chat_body(MODEL, text)))
    assert stubs.requests() == []
    r = chat(gw, u["token"], chat_body(MODEL, text, max_tokens=90))
    assert r.status == 200, r
    usage = r.json()["usage"]
    assert_cycle(ledger(gw, u["userId"], "openai", m0), 100,
                 usage["prompt_tokens"] + usage["completion_tokens"], "chat")


def test_short_money_budget_refused_at_the_exact_boundary(gw, stubs):
    text = text_of(400)
    prompt = ceil4(400)
    price = cost(MODEL, prompt, 200)
    u = user(gw, money=price - 1)
    before = snap(gw, u["userId"])
    m0 = mark(gw)
    r = chat(gw, u["token"], chat_body(MODEL, text, max_tokens=200))
    e = assert_insufficient_quota(r)
    assert "money budget" in e["message"], e
    assert stubs.requests() == []
    assert snap(gw, u["userId"]) == before
    assert owner_rows(gw, u["userId"], m0) == []
    # a budget of exactly the price passes
    fund(gw, u["userId"], providers=[], money=1)
    m1 = mark(gw)
    r = chat(gw, u["token"], chat_body(MODEL, text, max_tokens=200))
    assert r.status == 200, r
    usage = r.json()["usage"]
    assert_cycle(ledger(gw, u["userId"], "$", m1), price, cost_micros(usage, MODEL), "chat")


# ---- gw: the payer named by OpenAI-Organization ----

def test_org_payer(gw, stubs, adm):
    org = make_org(gw, adm["h"])
    grant(gw, adm["h"], 10**6, org=org, provider="openai")
    grant(gw, adm["h"], 10**8, org=org, provider="$")
    member = user(gw, money=10**8)             # its own pools must not be touched
    add_member(gw, adm["h"], org, member["userId"])
    mine = snap(gw, member["userId"])
    m0 = mark(gw)
    text = text_of(120)
    prompt = ceil4(120)
    r = chat(gw, member["token"], chat_body(MODEL, text, max_tokens=15),
             headers={"OpenAI-Organization": org})
    assert r.status == 200, r
    usage = r.json()["usage"]
    assert_cycle(ledger(gw, org, "openai", m0), prompt + 15,
                 usage["prompt_tokens"] + usage["completion_tokens"], "chat")
    assert_cycle(ledger(gw, org, "$", m0), cost(MODEL, prompt, 15), cost_micros(usage, MODEL),
                 "chat")
    assert snap(gw, member["userId"]) == mine
    assert owner_rows(gw, member["userId"], m0) == []

    # an ADMIN may name any org (not a member)
    fund(gw, adm["userId"])
    m1 = mark(gw)
    r = chat(gw, adm["token"], chat_body(MODEL, text, max_tokens=15),
             headers={"OpenAI-Organization": org})
    assert r.status == 200, r
    assert [x["kind"] for x in ledger(gw, org, "openai", m1)] == ["reserve", "settle"]
    assert owner_rows(gw, adm["userId"], m1) == []


def test_org_payer_refusals(gw, stubs, adm):
    org = make_org(gw, adm["h"])
    grant(gw, adm["h"], 10**6, org=org, provider="openai")
    outsider = user(gw)
    m0 = mark(gw)
    r = chat(gw, outsider["token"], chat_body(MODEL, "not mine", max_tokens=5),
             headers={"OpenAI-Organization": org})
    assert_openai_error(r, 403, "permission_error", "not_org_member")
    for bad in ("not-a-uuid", "org-123", org[:-1], org + "0", "{" + org + "}"):
        r = chat(gw, outsider["token"], chat_body(MODEL, "bad org", max_tokens=5),
                 headers={"OpenAI-Organization": bad})
        assert_openai_error(r, 400, "invalid_request_error", "invalid_organization")
    # a member of an org without a pool: insufficient_quota, not the
    # member's own pools
    poor = make_org(gw, adm["h"])
    add_member(gw, adm["h"], poor, outsider["userId"])
    m1 = mark(gw)
    r = chat(gw, outsider["token"], chat_body(MODEL, "poor org", max_tokens=5),
             headers={"OpenAI-Organization": poor})
    e = assert_insufficient_quota(r)
    assert "organization" in e["message"], e
    assert stubs.requests() == []
    assert owner_rows(gw, outsider["userId"], m0) == []
    assert mark(gw) == m1


# ---- gw: embeddings ----

def test_embeddings_billed_on_input_tokens(gw, stubs):
    u = user(gw, money=10**8)
    inputs = ["a" * 401, "hello", "xyz"] + ["b"] * 40
    estimate = ceil4(sum(len(s) for s in inputs))          # 449 bytes: 113
    m0 = mark(gw)
    r = v1_post(gw, u["token"], EMBED, {"model": EMBEDDER, "input": inputs})
    assert r.status == 200, r
    usage = r.json()["usage"]
    assert usage["prompt_tokens"] == sum(ceil4(len(s)) for s in inputs)   # the stubs: 144
    assert_cycle(ledger(gw, u["userId"], "openai", m0), estimate, usage["prompt_tokens"],
                 "embeddings")
    assert_cycle(ledger(gw, u["userId"], "$", m0), cost(EMBEDDER, estimate, 0),
                 cost_micros({"prompt_tokens": usage["prompt_tokens"]}, EMBEDDER), "embeddings")
    assert pool_of(gw, u["userId"])["remaining"] == FUNDS - usage["prompt_tokens"]


def test_embeddings_refused_without_quota(gw, stubs):
    u = user(gw, tokens=0)
    r = v1_post(gw, u["token"], EMBED, {"model": EMBEDDER, "input": "x"})
    assert_insufficient_quota(r)
    assert stubs.requests() == []


# ---- gw: headers on every response ----

def test_rate_limit_headers_on_v1_answers(gw, stubs):
    u = user(gw)
    broke = user(gw, tokens=0)
    answers = {
        "200": chat(gw, u["token"], chat_body(MODEL, "headers", max_tokens=5)),
        "stream": chat(gw, u["token"], chat_body(MODEL, "headers", stream=True, max_tokens=5)),
        "embeddings": v1_post(gw, u["token"], EMBED, {"model": EMBEDDER, "input": "x"}),
        "429-quota": chat(gw, broke["token"], chat_body(MODEL, "headers", max_tokens=5)),
    }
    stubs.fault(OPENAI_CHAT, count=1, status=500)
    answers["502"] = chat(gw, u["token"], chat_body(MODEL, "headers", max_tokens=5))
    assert [a.status for a in answers.values()] == [200, 200, 200, 429, 502]
    for what, a in answers.items():
        h = rl(a)
        assert h["limit_tokens"] == GENEROUS_LIMITS["token_capacity"], (what, h)


@pytest.mark.parametrize("case", ["bad-body", "unknown-model", "bad-org"])
def test_rate_limit_headers_on_v1_errors_before_admission(gw, stubs, case):
    """API.md §4: the x-ratelimit-* headers are on every /v1 response —
    errors answered before any bucket was charged included (at least the
    request family, which every request counts against)."""
    u = user(gw)
    if case == "bad-body":
        r = chat(gw, u["token"], {"model": MODEL, "messages": []})
        assert r.status == 400, r
    elif case == "unknown-model":
        r = chat(gw, u["token"], chat_body("gpt-9-ultra"))
        assert r.status == 404, r
    else:
        r = chat(gw, u["token"], chat_body(MODEL), headers={"OpenAI-Organization": "nope"})
        assert r.status == 400, r
    rl(r, tokens=False)


# ---- gw: concurrency ----

@pytest.mark.parametrize("nbytes,max_tokens", [(40, 8), (200, 100)], ids=["exact", "refunds"])
def test_concurrent_reservations_never_overspend(gw, nbytes, max_tokens):
    """32 calls at once on a pool that holds 10 worst cases (plus less than
    one).  "exact": max_tokens 8, which the stubs always answer in full, so
    usage == hold and exactly 10 calls can ever pass.  "refunds": hold 150,
    usage 58..82, so settles give room back: the first 10 holds always fit
    (at least 10 pass) and the 32 together would use at least 32 x 58 > the
    pool (not all pass), whatever the interleaving.  Every answer is 200 or
    insufficient_quota, the pool is never overdrawn, and it is charged
    exactly the usage of the 200s."""
    n = 32
    prompt = ceil4(nbytes)
    hold = prompt + max_tokens
    funds = 10 * hold + hold - 1
    assert max_tokens == 8 or n * (prompt + 8) > funds
    u = user(gw, tokens=funds, providers=["openai"], money=10**9)
    pid = pool_of(gw, u["userId"])["id"]
    bodies = [chat_body(MODEL, text_of(nbytes, f"c{i:02d} "), max_tokens=max_tokens,
                        stream=True if i % 2 else None, include_usage=True if i % 2 else None)
              for i in range(n)]
    results = [None] * n
    barrier = threading.Barrier(n)
    stop = threading.Event()
    bad_samples = []

    def call(i):
        try:
            barrier.wait(30)
            results[i] = chat(gw, u["token"], bodies[i], timeout=60)
        except Exception as e:        # noqa: BLE001 — reported below
            results[i] = e

    def watch():
        while not stop.is_set():
            t, rem, res = db_query(gw.data_dir, "SELECT total, remaining, reserved FROM pools "
                                                "WHERE id = ?", (pid,))[0]
            if rem < 0 or res < 0 or rem + res > t or res > n * hold:
                bad_samples.append((t, rem, res))

    w = threading.Thread(target=watch, daemon=True)
    w.start()
    threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
        assert not t.is_alive(), "a client thread did not finish"
    stop.set()
    w.join(30)
    errors = [x for x in results if not hasattr(x, "status")]
    assert not errors, errors
    used = 0
    ok = 0
    for i, r in enumerate(results):
        if r.status == 429:
            assert_insufficient_quota(r)
            continue
        assert r.status == 200, r
        ok += 1
        if i % 2:
            usage = [c for c in sse_json(sse_events(r.body)) if c.get("usage")][-1]["usage"]
        else:
            usage = r.json()["usage"]
        assert usage["prompt_tokens"] == prompt, usage
        used += usage["prompt_tokens"] + usage["completion_tokens"]
    assert not bad_samples, bad_samples[:5]
    if max_tokens == 8:
        assert ok == 10, f"{ok} calls passed on a pool for exactly 10"
        assert used == 10 * hold
    else:
        assert ok >= 10, f"only {ok} calls passed; the first 10 holds always fit"
    assert ok < n, "nothing was refused: the pool was not short"
    wait_until(lambda: pool_of(gw, u["userId"])["reserved"] == 0 and
               pool_of(gw, u["userId"], "$")["reserved"] == 0, "the pools to settle")
    p = pool_of(gw, u["userId"])
    assert p["total"] == funds and p["remaining"] == funds - used, (p, used)
    rows = ledger(gw, u["userId"])
    settles = [x for x in rows if x["kind"] == "settle"]
    assert len(settles) == ok and sum(x["amount"] for x in settles) == used
    assert [x for x in rows if x["kind"] == "release"] == []
    assert db_query(gw.data_dir, "SELECT count(*) FROM reservations WHERE pool_id = ?",
                    (pid,))[0][0] == 0
    assert_check_ok(gw.config_path)


# ---- gw: metrics ----

def test_quota_and_decision_metrics(gw, stubs):
    rich = user(gw, money=10**9)
    broke = user(gw, tokens=0)
    short = user(gw, tokens=10)
    poor = user(gw, money=1)
    m0 = metrics_now(gw)
    assert chat(gw, rich["token"], chat_body(MODEL, "ok", max_tokens=5)).status == 200
    assert_insufficient_quota(chat(gw, broke["token"], chat_body(MODEL, "x", max_tokens=5)))
    assert_insufficient_quota(chat(gw, short["token"], chat_body(MODEL, "x", max_tokens=50)))
    assert_insufficient_quota(chat(gw, poor["token"], chat_body(MODEL, "x", max_tokens=5000)))
    stubs.fault(OPENAI_CHAT, count=1, status=500)
    assert chat(gw, rich["token"], chat_body(MODEL, "fail", max_tokens=5)).status == 502
    want = {"reserved": 2, "settled": 1, "released": 1, "no_pool": 1, "denied": 1,
            "money_denied": 1, "error": 0}

    def check(m):
        got = {k: delta(m, m0, "leaky_quota_reservations_total", outcome=k) for k in want}
        assert got == want, got
        for scope in ("requests", "tokens"):
            assert delta(m, m0, "leaky_ratelimit_decisions_total", scope=scope,
                         outcome="allowed") == 5, scope
            assert delta(m, m0, "leaky_ratelimit_decisions_total", scope=scope,
                         outcome="refused") == 0, scope
    text, _ = gw.eventually(check)
    assert "# TYPE leaky_quota_reservations_total counter" in text
    assert "# TYPE leaky_ratelimit_decisions_total counter" in text


# ---- lim: token buckets ----

def test_bucket_charged_prompt_plus_max_tokens_then_settled(lim, stubs):
    u = user(lim)
    now = set_clock_ms(lim, (clock_ms(lim) // 60000 + 1) * 60000 + 17250)
    r1 = chat(lim, u["token"], chat_body(MODEL, text_of(403), max_tokens=40))
    assert r1.status == 200, r1
    h1 = rl(r1)
    charge1 = 101 + 40
    assert h1["limit_tokens"] == CAPACITY, h1
    assert h1["remaining_tokens"] == CAPACITY - charge1, h1
    assert h1["reset_tokens"] == go_duration(charge1 * 1000 // RATE), h1     # "14.1s"
    assert h1["limit_requests"] == 1_000_000, h1
    assert h1["reset_requests"] == go_duration(60000 - now % 60000) == "42.75s", (h1, now)
    u1 = r1.json()["usage"]
    used1 = u1["prompt_tokens"] + u1["completion_tokens"]
    assert used1 < charge1
    # no max_tokens: the bucket is charged the prompt alone, on top of the
    # first call's real usage (the clock has not moved: nothing leaked)
    r2 = chat(lim, u["token"], chat_body(MODEL, text_of(200)))
    assert r2.status == 200, r2
    h2 = rl(r2)
    assert h2["remaining_tokens"] == CAPACITY - used1 - 50, (h2, used1)
    assert h2["remaining_requests"] == h1["remaining_requests"] - 1, (h1, h2)


def test_bucket_refunded_when_quota_refuses_or_provider_fails(lim, stubs):
    """What admission charged the bucket is given back when the pool
    refuses the call and when the provider fails before any output: the
    headers of those answers and the next admission show the bucket as if
    they had not happened."""
    u = user(lim, tokens=300)
    r = chat(lim, u["token"], chat_body(MODEL, text_of(403), max_tokens=40))   # 141
    assert r.status == 200, r
    usage = r.json()["usage"]
    used1 = usage["prompt_tokens"] + usage["completion_tokens"]
    # the pool (300 - used1 left) cannot hold 101 + 199 = 300
    r = chat(lim, u["token"], chat_body(MODEL, text_of(403), max_tokens=199))
    assert_insufficient_quota(r)
    h = rl(r)
    assert h["remaining_tokens"] == CAPACITY - used1, (h, used1)
    stubs.fault(OPENAI_CHAT, count=1, status=500)
    r = chat(lim, u["token"], chat_body(MODEL, text_of(40), max_tokens=10))    # 20
    assert_openai_error(r, 502, "server_error", "upstream_error")
    h = rl(r)
    assert h["remaining_tokens"] == CAPACITY - used1, (h, used1)
    r = chat(lim, u["token"], chat_body(MODEL, text_of(40), max_tokens=10))
    assert r.status == 200, r
    assert rl(r)["remaining_tokens"] == CAPACITY - used1 - 20


def test_bucket_debt_then_exact_retry(lim, stubs):
    """A prompt of 995 without max_tokens is admitted (995 <= 1000); its
    completion pushes the bucket into debt.  The next call is refused with
    the exact wait, and admitted once the clock moved that much."""
    u = user(lim)
    r = chat(lim, u["token"], chat_body(MODEL, text_of(3980)))
    assert r.status == 200, r
    assert rl(r)["remaining_tokens"] == CAPACITY - 995
    usage = r.json()["usage"]
    level = usage["prompt_tokens"] + usage["completion_tokens"]
    assert level > CAPACITY, usage
    before = pool_of(lim, u["userId"])
    m0 = mark(lim)
    _, met0 = lim.metrics()
    small = chat_body(MODEL, text_of(20))                            # 5 tokens
    r = chat(lim, u["token"], small)
    e = assert_openai_error(r, 429, "tokens", "rate_limit_exceeded")
    assert len(stubs.requests()) == 1, "the refused call reached the provider"
    wait_ms = (level + 5 - CAPACITY) * 1000 // RATE
    assert r.header("retry-after-ms") == str(wait_ms), r.headers
    assert r.header("retry-after") == str(-(-wait_ms // 1000)), r.headers
    h = rl(r)
    assert h["remaining_tokens"] == 0 and h["limit_tokens"] == CAPACITY, h
    assert f"try again in {go_duration(wait_ms)}" in e["message"], e
    assert pool_of(lim, u["userId"]) == before and mark(lim) == m0
    lim.eventually(moved(met0, "leaky_ratelimit_decisions_total", 1, scope="tokens",
                         outcome="refused"))
    advance(lim, wait_ms - 1)
    r = chat(lim, u["token"], small)
    assert r.status == 429, r
    assert r.header("retry-after-ms") == "1", r.headers
    advance(lim, 1)
    r = chat(lim, u["token"], small)
    assert r.status == 200, r
    assert rl(r)["remaining_tokens"] == 0


def test_request_too_large_for_the_bucket(lim, stubs):
    u = user(lim)
    m0 = mark(lim)
    _, met0 = lim.metrics()
    r = chat(lim, u["token"], chat_body(MODEL, text_of(403), max_tokens=900))    # 1001
    e = assert_openai_error(r, 400, "invalid_request_error", "request_too_large")
    assert "1000" in e["message"] and "1001" in e["message"], e
    assert stubs.requests() == []
    assert owner_rows(lim, u["userId"], m0) == []
    lim.eventually(moved(met0, "leaky_ratelimit_decisions_total", 1, scope="tokens",
                         outcome="too_large"))
    # nothing was charged: exactly the capacity still passes
    r = chat(lim, u["token"], chat_body(MODEL, text_of(403), max_tokens=899))     # 1000
    assert r.status == 200, r
    assert rl(r)["remaining_tokens"] == 0


def test_request_too_large_carries_rate_limit_headers(lim):
    u = user(lim)
    r = chat(lim, u["token"], chat_body(MODEL, text_of(403), max_tokens=900))
    assert r.status == 400, r
    h = rl(r)
    assert h["limit_tokens"] == CAPACITY and h["remaining_tokens"] == CAPACITY, h


def test_tier_multiplier(lim, stubs):
    """ADMIN ×2: a 1500-token request passes for the admin and is too large
    for a USER; 2001 is too large for the admin."""
    advance(lim, 300_000)                   # the admin's bucket (shared) drains
    a = admin_identity(lim)
    fund(lim, a["userId"])
    u = user(lim)
    body = chat_body(MODEL, text_of(403), max_tokens=1399)                       # 1500
    r = chat(lim, a["token"], body)
    assert r.status == 200, r
    h = rl(r)
    assert h["limit_tokens"] == 2 * CAPACITY and h["remaining_tokens"] == 500, h
    assert_openai_error(chat(lim, u["token"], body), 400, "invalid_request_error",
                        "request_too_large")
    advance(lim, 300_000)
    r = chat(lim, a["token"], chat_body(MODEL, text_of(403), max_tokens=1900))   # 2001
    assert_openai_error(r, 400, "invalid_request_error", "request_too_large")


# ---- rq: the request limit of the dispatcher ----

def new_window(g):
    """Move the manual clock to the start of the next calendar minute."""
    return set_clock_ms(g, (clock_ms(g) // WINDOW_MS + 1) * WINDOW_MS)


def assert_whitelisted(g, times=5):
    for path in ("/healthz", "/readyz", "/metrics"):
        for _ in range(times):
            r = g.get(path)
            assert r.status == 200, (path, r)


def test_request_limit_v1_models(rq):
    new_window(rq)
    a, b = user(rq, tokens=0), user(rq, tokens=0)
    _, m0 = rq.metrics()
    for i in range(REQ_LIMIT):
        r = rq.get(MODELS_PATH, headers=a["h"])
        assert r.status == 200, r
        h = rl(r, tokens=False)
        assert (h["limit_requests"], h["remaining_requests"]) == (REQ_LIMIT, REQ_LIMIT - 1 - i)
        assert h["reset_requests"] == "1m0s", h
        assert r.header("x-ratelimit-limit-tokens") is None   # no token bucket on this route
    r = rq.get(MODELS_PATH, headers=a["h"])
    e = assert_openai_error(r, 429, "requests", "rate_limit_exceeded")
    assert r.header("retry-after") == "60" and r.header("retry-after-ms") == "60000", r.headers
    h = rl(r, tokens=False)
    assert h["remaining_requests"] == 0 and h["reset_requests"] == "1m0s", h
    assert "1m0s" in e["message"], e
    # another user counts on its own; the ops endpoints are never limited
    r = rq.get(MODELS_PATH, headers=b["h"])
    assert r.status == 200 and rl(r, tokens=False)["remaining_requests"] == REQ_LIMIT - 1, r
    assert_whitelisted(rq)
    # the window is the calendar minute
    advance(rq, WINDOW_MS - 1)
    r = rq.get(MODELS_PATH, headers=a["h"])
    assert_openai_error(r, 429, "requests", "rate_limit_exceeded")
    assert r.header("retry-after-ms") == "1" and r.header("retry-after") == "1", r.headers
    advance(rq, 1)
    r = rq.get(MODELS_PATH, headers=a["h"])
    assert r.status == 200, r
    assert rl(r, tokens=False)["remaining_requests"] == REQ_LIMIT - 1

    def check(m):
        assert delta(m, m0, "leaky_ratelimit_decisions_total", scope="requests",
                     outcome="allowed") == REQ_LIMIT + 2
        assert delta(m, m0, "leaky_ratelimit_decisions_total", scope="requests",
                     outcome="refused") == 2
    rq.eventually(check)


def test_request_limit_api_v1_envelope_and_headers(rq):
    new_window(rq)
    u = user(rq, tokens=0)
    for i in range(REQ_LIMIT):
        r = rq.get(ME, headers=u["h"])
        assert r.status == 200, r
        h = rate_headers(r)
        assert (h["limit"], h["remaining"], h["used"]) == (REQ_LIMIT, REQ_LIMIT - 1 - i, i + 1)
        assert h["name"] == "requests" and h["window"] == 60 and h["reset"] == 60, h
    r = rq.get(ME, headers=u["h"])
    assert r.status == 429, r
    b = r.json()
    assert set(b) == {"message", "timestamp", "status", "path", "correlationId",
                      "retryAfterSeconds"}, b
    assert b["status"] == 429 and b["path"] == ME and b["retryAfterSeconds"] == 60, b
    assert ISO_MS_Z.match(b["timestamp"]) and b["correlationId"] == r.header("X-Correlation-Id")
    h = rate_headers(r)
    assert h["remaining"] == 0 and h["retry_after"] == 60 and h["reset"] == 60, h
    # one window per client across the routes without an override
    assert_openai_error(rq.get(MODELS_PATH, headers=u["h"]), 429, "requests",
                        "rate_limit_exceeded")
    new_window(rq)
    assert rq.get(ME, headers=u["h"]).status == 200


def test_request_limit_public_routes_per_ip(rq):
    new_window(rq)
    a, pa = register(rq)
    b, pb = register(rq)
    for who, pw in ((a, pa), (b, pb), (a, pa)):           # three users' logins, one address
        r = rq.post_json("/api/v1/auth/login", {"username": who["username"], "password": pw})
        assert r.status == 200, r
    r = rq.post_json("/api/v1/auth/login", {"username": b["username"], "password": pb})
    assert r.status == 429, r
    body = r.json()
    assert body["path"] == "/api/v1/auth/login" and body["retryAfterSeconds"] == 60, body
    assert rate_headers(r)["retry_after"] == 60
    r = rq.get("/api/v1/tokens/status")                   # public, the same address
    assert r.status == 429, r
    # an authenticated user is counted by its id, not the address
    r = rq.get(MODELS_PATH, headers=bearer(a["token"]))
    assert r.status == 200, r
    assert_whitelisted(rq)


def test_invalid_v1_requests_count_against_request_limit(rq, stubs):
    """The request limit applies to every request of a client: answers
    refused by validation on a route that admits itself count too (else a
    client may send invalid requests without limit)."""
    new_window(rq)
    u = user(rq, tokens=0)
    for _ in range(REQ_LIMIT):
        r = chat(rq, u["token"], {"model": MODEL, "messages": []})
        assert r.status == 400, r
    r = rq.get(MODELS_PATH, headers=u["h"])
    assert_openai_error(r, 429, "requests", "rate_limit_exceeded")
    assert stubs.requests() == []
