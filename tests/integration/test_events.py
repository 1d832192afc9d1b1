"""The event log, the transactional outbox and `leakyctl events` (issue 6,
API.md §7) against a real leakyd and the built-in stubs.

Events are read the way an operator reads them: `leakyctl -d DIR events
tail --topic T --from 0` (the log opened read-only beside the running
server), after GET /admin/v1/events shows the outbox drained (pending 0),
polled, never slept for.  A spending call's outbox row is committed with
its settle or release (or alone for a refusal), so a test first waits for
the call's ledger row when the call was settled after its answer.

  gw    one gateway for the module ([events] fsync on, the default):
        exactly one token-usage event per spending request (consume 200,
        /v1 chat plain and streamed, 402, 429 rate limited, 429
        insufficient_quota, 400 too large, provider failure) with its
        fields and correlationId = the answer's X-Correlation-Id or
        x-request-id; audit events for quota grants and identity changes,
        equal to the audit rows (one written by an offline `leakyctl quota
        grant` too: the relay's poll finds it); order (event ids strictly increasing,
        offsets contiguous from 0); GET /admin/v1/events and /metrics;
        leakyctl events tail|show|stat|replay, their errors, --follow.
  own   servers of their own (fsync on as well): a restart keeps the events
        and continues the offsets; a torn tail (garbage or half a record
        appended to a topic's last segment while leakyd is stopped) is cut
        at start with a log line, the earlier events intact and the next
        one at the right offset; SIGKILL in the middle of a consume load:
        after a restart every settle of a consume has exactly one usage
        event (joined on the ledger's correlation_id), no usage event lacks
        its ledger change, no event id appears twice, and `leakyctl check`
        passes.

No [events] fsync = no anywhere: nothing here is slow enough to need it.
"""

import json
import os
import selectors
import sqlite3
import signal
import subprocess
import time
from collections import Counter

import pytest

from conftest import ISO_MS_Z, LEAKYCTL, Leakyd, clean_env, metric, register, run
from stubs_fixture import (GATEWAY_ENV, ceil4, chat, chat_body, cost_micros,
                           fund, gateway_config, sse_events, sse_json, start_gateway,
                           start_stubs)
from tokens_fixture import (OPENAI_CHAT, Crowd, add_member, admin_identity, assert_check_ok,
                            audit_rows, consume, db_query, grant, make_org, new_user, wait_until)

EVENTS = "/admin/v1/events"
USAGE = "token-usage"
AUDIT_TOPIC = "audit"
MODEL = "gpt-4o-mini"
EX_USAGE, EX_DATAERR, EX_NOINPUT = 64, 65, 66
USAGE_FIELDS = {"type", "time", "correlationId", "userId", "orgId", "keyId", "provider", "model",
                "endpoint", "allowed", "reason", "outcome", "stream", "tokens", "estimated",
                "costMicros", "requestedTokens", "latencyMs"}
TOKEN_FIELDS = {"input", "cachedInput", "output", "reasoning", "total"}
LINE_FIELDS = {"topic", "offset", "time", "key", "type", "eventId", "payload"}
DEFAULT_WHITELIST = "/actuator/**,/healthz,/readyz,/metrics,/openapi.json"


# ---- fixtures ----

@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    s = start_stubs(tmp_path_factory.mktemp("stubs"))
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def clean_stubs(stubs):
    stubs.reset()
    yield
    stubs.clear_faults()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, stubs):
    """The [limits] defaults (a USER's openai token bucket: 1000, 10/s) so
    consume can be rate limited; /v1 calls stay far below it."""
    g = start_gateway(tmp_path_factory.mktemp("gw"), stubs.port, threads=32)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def adm(gw):
    return admin_identity(gw)


# ---- helpers ----

def ctl(srv, *args, **kw):
    return run([LEAKYCTL, "-d", srv.data_dir, *args], **kw)


def events_status(srv, adm_h):
    r = srv.get(EVENTS, headers=adm_h)
    assert r.status == 200, r
    return r.json()


def drained(srv, adm_h):
    """Wait until the outbox is empty (every committed event is in the
    log); returns the status."""
    return wait_until(lambda: (lambda s: s if s["outbox"]["pending"] == 0 else None)(
        events_status(srv, adm_h)), "outbox pending 0", deadline_s=30)


def tail(srv, topic, *extra):
    """`leakyctl events tail --topic T --from 0`: the parsed lines."""
    p = ctl(srv, "events", "tail", "--topic", topic, "--from", "0", *extra)
    assert p.returncode == 0, p.stderr
    out = [json.loads(line) for line in p.stdout.splitlines()]
    for ev in out:
        assert set(ev) >= LINE_FIELDS, ev
        assert ev["topic"] == topic and ISO_MS_Z.match(ev["time"]), ev
        assert isinstance(ev["payload"], dict), ev   # the JSON itself, not a string
    return out


def usage_events(srv, adm_h):
    drained(srv, adm_h)
    return tail(srv, USAGE)


def events_of(srv, adm_h, corr):
    """The usage events whose correlationId is corr."""
    return [e for e in usage_events(srv, adm_h) if e["payload"]["correlationId"] == corr]


def one_event(srv, adm_h, corr):
    evs = events_of(srv, adm_h, corr)
    assert len(evs) == 1, f"{len(evs)} usage events for {corr}: {evs}"
    ev = evs[0]
    assert ev["type"] == "TOKEN_USAGE" and ev["key"] == ev["payload"]["userId"], ev
    p = ev["payload"]
    assert set(p) == USAGE_FIELDS, p
    assert set(p["tokens"]) == TOKEN_FIELDS, p
    assert p["type"] == "TOKEN_USAGE" and ISO_MS_Z.match(p["time"]), p
    assert p["tokens"]["total"] == p["tokens"]["input"] + p["tokens"]["output"], p
    assert isinstance(p["latencyMs"], int) and p["latencyMs"] >= 0, p
    return p


def settled(srv, corr, kinds=("settle", "release")):
    """Wait until the ledger has the closing row of the call corr."""
    q = "SELECT count(*) FROM ledger WHERE correlation_id = ? AND kind IN (%s)" % \
        ",".join("?" * len(kinds))
    wait_until(lambda: db_query(srv.data_dir, q, (corr, *kinds))[0][0] >= 1,
               f"the ledger row closing {corr}", deadline_s=30)


def corr_of(r):
    c = r.header("X-Correlation-Id") or r.header("x-request-id")
    assert c, r.headers
    return c


def v1_user(gw):
    u = new_user(gw)
    fund(gw, u["userId"])
    return u


# ======================================================= usage events ====

def test_consume_200_one_event(gw, adm):
    u = new_user(gw)
    grant(gw, adm["h"], 1000, user=u["userId"])
    r = consume(gw, u["h"], u["userId"], 25)
    assert r.status == 200, r
    p = one_event(gw, adm["h"], corr_of(r))
    assert (p["userId"], p["provider"], p["model"], p["endpoint"]) == \
        (u["userId"], "openai", None, "consume"), p
    assert (p["allowed"], p["reason"], p["stream"]) == (True, None, False), p
    assert p["tokens"] == {"input": 25, "cachedInput": 0, "output": 0, "reasoning": 0,
                           "total": 25}, p
    assert (p["costMicros"], p["requestedTokens"], p["orgId"], p["keyId"]) == \
        (0, 25, None, None), p
    # the ledger's settle row carries the same correlation id
    rows = db_query(gw.data_dir, "SELECT kind, amount FROM ledger WHERE correlation_id = ? "
                                 "ORDER BY id", (p["correlationId"],))
    assert rows == [("reserve", 25), ("settle", 25)], rows


def test_consume_402_one_event(gw, adm):
    u = new_user(gw)
    r = consume(gw, u["h"], u["userId"], 40)
    assert r.status == 402, r
    p = one_event(gw, adm["h"], corr_of(r))
    assert (p["allowed"], p["reason"], p["userId"]) == (False, "insufficient_quota",
                                                        u["userId"]), p
    assert p["tokens"]["total"] == 0 and p["costMicros"] == 0 and p["outcome"] is None, p
    assert p["requestedTokens"] == 40, p
    assert db_query(gw.data_dir, "SELECT count(*) FROM ledger WHERE correlation_id = ?",
                    (p["correlationId"],))[0][0] == 0


def test_consume_429_rate_limited_one_event(gw, adm):
    u = new_user(gw)
    grant(gw, adm["h"], 5000, user=u["userId"])
    r1 = consume(gw, u["h"], u["userId"], 990)
    assert r1.status == 200, r1
    r = consume(gw, u["h"], u["userId"], 60)
    assert r.status == 429, r
    p = one_event(gw, adm["h"], corr_of(r))
    assert (p["allowed"], p["reason"], p["provider"]) == (False, "rate_limited", "openai"), p
    assert p["tokens"]["total"] == 0 and p["requestedTokens"] == 60, p
    assert one_event(gw, adm["h"], corr_of(r1))["allowed"] is True


def test_consume_too_large_one_event(gw, adm):
    u = new_user(gw)
    grant(gw, adm["h"], 5000, user=u["userId"])
    r = consume(gw, u["h"], u["userId"], 1001)
    assert r.status == 400, r
    p = one_event(gw, adm["h"], corr_of(r))
    assert (p["allowed"], p["reason"]) == (False, "request_too_large"), p


def test_consume_provider_failure_one_event(gw, adm, stubs):
    u = new_user(gw)
    grant(gw, adm["h"], 1000, user=u["userId"])
    stubs.fault(OPENAI_CHAT, count=3, status=500)       # >= retry_attempts
    r = consume(gw, u["h"], u["userId"], 30)
    assert r.status == 502, r
    p = one_event(gw, adm["h"], corr_of(r))
    assert (p["allowed"], p["reason"]) == (True, "provider_failed"), p
    assert p["outcome"] not in (None, "ok"), p
    assert p["tokens"]["total"] == 0 and p["costMicros"] == 0, p
    rows = db_query(gw.data_dir, "SELECT kind FROM ledger WHERE correlation_id = ? ORDER BY id",
                    (p["correlationId"],))
    assert rows == [("reserve",), ("release",)], rows


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_v1_chat_200_one_event(gw, adm, stream):
    u = v1_user(gw)
    text = "Tell me about leaky buckets."
    body = chat_body(MODEL, text, max_tokens=40,
                     **({"stream": True, "include_usage": True} if stream else {}))
    r = chat(gw, u["token"], body)
    assert r.status == 200, r
    if stream:
        frames = sse_json(sse_events(r.body))
        usage = [f for f in frames if f.get("usage")][-1]["usage"]
    else:
        usage = r.json()["usage"]
    corr = corr_of(r)
    settled(gw, corr)
    p = one_event(gw, adm["h"], corr)
    assert (p["userId"], p["provider"], p["model"], p["endpoint"]) == \
        (u["userId"], "openai", MODEL, "chat"), p
    assert (p["allowed"], p["reason"], p["stream"], p["outcome"]) == \
        (True, None, stream, "ok"), p
    assert p["tokens"]["input"] == usage["prompt_tokens"], (p, usage)
    assert p["tokens"]["output"] == usage["completion_tokens"], (p, usage)
    assert p["costMicros"] == cost_micros(usage, MODEL), (p, usage)
    assert p["requestedTokens"] == ceil4(len(text)) + 40, p


def test_v1_chat_insufficient_quota_one_event(gw, adm):
    u = new_user(gw)                                      # no pools
    r = chat(gw, u["token"], chat_body(MODEL, "hello", max_tokens=5))
    assert r.status == 429 and r.json()["error"]["code"] == "insufficient_quota", r
    p = one_event(gw, adm["h"], corr_of(r))
    assert (p["allowed"], p["reason"], p["model"], p["endpoint"]) == \
        (False, "insufficient_quota", MODEL, "chat"), p


def test_v1_chat_rate_limited_one_event(gw, adm):
    """consume and /v1 chat of one user share the openai token bucket:
    after a consume of 990 a chat asking for 100 more is refused."""
    u = v1_user(gw)
    assert consume(gw, u["h"], u["userId"], 990).status == 200
    r = chat(gw, u["token"], chat_body(MODEL, "hello", max_tokens=100))
    assert r.status == 429 and r.json()["error"]["code"] == "rate_limit_exceeded", r
    p = one_event(gw, adm["h"], corr_of(r))
    assert (p["allowed"], p["reason"], p["model"]) == (False, "rate_limited", MODEL), p


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_v1_chat_provider_failure_one_event(gw, adm, stubs, stream):
    u = v1_user(gw)
    stubs.fault(OPENAI_CHAT, count=1, status=500)
    r = chat(gw, u["token"], chat_body(MODEL, "this call fails", max_tokens=25,
                                       stream=True if stream else None))
    assert r.status == 502, r
    corr = corr_of(r)
    settled(gw, corr, ("release",))
    p = one_event(gw, adm["h"], corr)
    assert (p["allowed"], p["reason"]) == (True, "provider_failed"), p
    assert p["tokens"]["total"] == 0 and p["costMicros"] == 0, p


# ======================================================= audit events ====

def test_grants_and_identity_changes_are_audit_events(gw, adm):
    u = new_user(gw)                                          # user.registered
    grant(gw, adm["h"], 777, user=u["userId"], reason="audit me")   # quota.granted
    org = make_org(gw, adm["h"])                              # org.created
    add_member(gw, adm["h"], org, u["userId"])                # org.member.added
    r = gw.request("POST", f"/admin/v1/users/{u['userId']}/disable", headers=adm["h"])
    assert r.status in (200, 204), r                          # user.disabled
    drained(gw, adm["h"])
    evs = tail(gw, AUDIT_TOPIC)
    by_id = {e["payload"]["id"]: e for e in evs}
    assert len(by_id) == len(evs), "two events for one audit row"
    rows = [x for x in audit_rows(gw, adm["h"]) if x["target"] in (u["userId"], org)]
    actions = Counter(x["action"] for x in rows)
    for a in ("user.registered", "quota.granted", "org.created", "org.member.added",
              "user.disabled"):
        assert actions[a] >= 1, (a, actions)
    for row in rows:
        ev = by_id.get(row["id"])
        assert ev is not None, f"no audit event for {row}"
        p = ev["payload"]
        assert ev["type"] == row["action"] and ev["key"] == (row["target"] or ""), (ev, row)
        assert (p["at"], p["actor"], p["action"], p["target"]) == \
            (row["at"], row["actor"], row["action"], row["target"]), (p, row)
        assert p["detail"] == row["detail"], (p, row)   # the object, not a string
    g = [by_id[x["id"]]["payload"] for x in rows if x["action"] == "quota.granted"]
    assert isinstance(g[0]["detail"], dict), g


def test_offline_leakyctl_change_reaches_the_log(gw, adm):
    """leakyctl writes its audit row and outbox row in its own transaction,
    in another process: leakyd's relay finds it without a kick (its poll)."""
    me, _ = register(gw)
    p = ctl(gw, "quota", "grant", "--user", me["username"], "openai", "123", "--reason",
            "offline grant")
    assert p.returncode == 0, p.stderr
    drained(gw, adm["h"])
    evs = [e for e in tail(gw, AUDIT_TOPIC) if e["key"] == me["userId"] and
           e["type"] == "quota.granted"]
    assert len(evs) == 1, evs
    assert evs[0]["payload"]["actor"] == "leakyctl", evs
    assert isinstance(evs[0]["payload"]["detail"], dict), evs


def test_order_ids_and_offsets(gw, adm):
    u = new_user(gw)
    grant(gw, adm["h"], 10_000, user=u["userId"])
    for _ in range(5):
        assert consume(gw, u["h"], u["userId"], 3).status == 200
    drained(gw, adm["h"])
    seen = set()
    for topic in (USAGE, AUDIT_TOPIC):
        evs = tail(gw, topic)
        assert [e["offset"] for e in evs] == list(range(len(evs))), topic
        ids = [e["eventId"] for e in evs]
        assert all(a < b for a, b in zip(ids, ids[1:])), (topic, ids)
        assert not seen & set(ids), "an event id in two topics"
        seen |= set(ids)
    st = events_status(gw, adm["h"])
    assert max(seen) == st["outbox"]["lastEventId"], st


# =============================================== admin status, metrics ====

def test_admin_events_shape(gw, adm):
    u = new_user(gw)
    grant(gw, adm["h"], 100, user=u["userId"])
    assert consume(gw, u["h"], u["userId"], 1).status == 200
    st = drained(gw, adm["h"])
    assert set(st) == {"topics", "consumers", "outbox", "relay"}, st
    names = [t["name"] for t in st["topics"]]
    assert names == sorted(names) and {USAGE, AUDIT_TOPIC} <= set(names), st
    for t in st["topics"]:
        assert set(t) == {"name", "startOffset", "endOffset", "bytes", "segments"}, t
        assert 0 <= t["startOffset"] <= t["endOffset"] and t["bytes"] > 0, t
        assert t["segments"] >= 1, t
    assert set(st["outbox"]) == {"pending", "oldestPendingAgeMs", "lastEventId",
                                 "publishedRetained"}, st
    assert st["outbox"]["pending"] == 0 and st["outbox"]["oldestPendingAgeMs"] == 0, st
    assert st["outbox"]["lastEventId"] >= 1, st
    assert set(st["relay"]) == {"published", "batches", "failures", "lastLagMs"}, st
    # a fresh log in this process: the relay appended every event there is
    assert st["relay"]["published"] == sum(t["endOffset"] for t in st["topics"]), st
    assert st["relay"]["failures"] == 0, st
    for c in st["consumers"]:
        assert set(c) == {"name", "topic", "nextOffset", "lag"}, c
    usage = {t["name"]: t for t in st["topics"]}[USAGE]
    assert usage["endOffset"] == len(tail(gw, USAGE)), usage
    # admin only
    r = gw.get(EVENTS, headers=u["h"])
    assert r.status == 403, r
    assert gw.get(EVENTS).status == 401


def test_metrics(gw, adm):
    drained(gw, adm["h"])
    text, m = gw.metrics()
    for name in ("leaky_outbox_pending", "leaky_events_published_total",
                 "leaky_relay_lag_seconds"):
        assert f"# TYPE {name} " in text, name
        assert metric(m, name) is not None, name
    assert metric(m, "leaky_outbox_pending") == 0
    assert metric(m, "leaky_events_published_total") >= 1
    assert metric(m, "leaky_relay_lag_seconds") >= 0
    st = events_status(gw, adm["h"])
    for t in st["topics"]:
        assert metric(m, "leaky_events_end_offset", topic=t["name"]) is not None, t


# ================================================ leakyctl events ====

def test_ctl_tail_default_limit_and_show(gw, adm):
    u = new_user(gw)
    grant(gw, adm["h"], 10_000, user=u["userId"])
    for _ in range(12):
        assert consume(gw, u["h"], u["userId"], 2).status == 200
    drained(gw, adm["h"])
    everything = tail(gw, USAGE)
    end = len(everything)
    p = ctl(gw, "events", "tail", "--topic", USAGE)           # the last 10
    assert p.returncode == 0, p.stderr
    last = [json.loads(x) for x in p.stdout.splitlines()]
    assert last == everything[-10:], (last, everything[-10:])
    p = ctl(gw, "events", "tail", "--topic", USAGE, "--limit", "3")
    assert [json.loads(x) for x in p.stdout.splitlines()] == everything[-3:]
    p = ctl(gw, "events", "tail", "--topic", USAGE, "--from", str(end - 5), "--limit", "2")
    assert [json.loads(x) for x in p.stdout.splitlines()] == everything[end - 5:end - 3]
    p = ctl(gw, "events", "tail", "--topic", USAGE, "--from", str(end + 100))
    assert p.returncode == 0 and p.stdout == "", p
    # show: one event, pretty
    ev = everything[-1]
    p = ctl(gw, "events", "show", "--topic", USAGE, str(ev["offset"]))
    assert p.returncode == 0, p.stderr
    assert f"offset:  {ev['offset']}\n" in p.stdout and f"eventId: {ev['eventId']}\n" in p.stdout
    pretty = p.stdout.split("payload:\n", 1)[1]
    assert json.loads(pretty) == ev["payload"] and "\n\t" in pretty, pretty
    p = ctl(gw, "events", "show", "--topic", USAGE, str(end + 100))
    assert p.returncode == 1 and "no event at offset" in p.stderr, p


@pytest.mark.parametrize("args,rc,msg", [
    (["tail"], EX_USAGE, "--topic is required"),
    (["tail", "--topic", "No Such!"], EX_USAGE, "invalid topic"),
    (["tail", "--topic", USAGE, "--from", "-1"], EX_USAGE, "--from must be"),
    (["tail", "--topic", USAGE, "--limit", "0"], EX_USAGE, "--limit must be"),
    (["tail", "--topic", USAGE, "--bogus"], EX_USAGE, "unknown option"),
    (["tail", "--topic", "no-such-topic"], 1, "no such topic"),
    (["show", "--topic", USAGE], EX_USAGE, "OFFSET is required"),
    (["show", "--topic", USAGE, "x"], EX_USAGE, "invalid offset"),
    (["show", "--topic", "no-such-topic", "0"], 1, "no such topic"),
    (["stat", "extra"], EX_USAGE, "unexpected argument"),
    (["replay", "--topic", USAGE, "--from", "0"], EX_USAGE, "--consumer is required"),
    (["replay", "--consumer", "Bad Name", "--topic", USAGE, "--from", "0"], EX_USAGE,
     "invalid consumer name"),
    (["replay", "--consumer", "c", "--topic", USAGE], EX_USAGE, "--from OFFSET is required"),
    (["replay", "--consumer", "c", "--topic", "no-such-topic", "--from", "0"], 1,
     "no such topic"),
])
def test_ctl_bad_arguments(gw, args, rc, msg):
    p = ctl(gw, "events", *args)
    assert p.returncode == rc, (p.returncode, p.stdout, p.stderr)
    assert msg in p.stderr, p.stderr
    assert p.stdout == "", p.stdout


def test_ctl_stat_and_replay(gw, adm):
    st = drained(gw, adm["h"])
    ends = {t["name"]: t["endOffset"] for t in st["topics"]}
    p = ctl(gw, "events", "stat", "--json")
    assert p.returncode == 0, p.stderr
    js = json.loads(p.stdout)
    assert set(js) == {"topics", "outbox", "consumers"}, js
    assert {t["name"]: t for t in js["topics"]}.keys() >= ends.keys(), js
    for t in js["topics"]:
        assert t["endOffset"] >= ends.get(t["name"], 0), (t, ends)
    assert js["outbox"]["lastEventId"] >= st["outbox"]["lastEventId"], js
    # replay: a new consumer, then moved back; past the end is refused
    end = ends[USAGE]
    name = f"replay-test-{os.getpid()}"
    p = ctl(gw, "events", "replay", "--consumer", name, "--topic", USAGE, "--from", str(end))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"consumer {name} topic {USAGE}: next offset {end} (new)"), p
    p = ctl(gw, "events", "replay", "--consumer", name, "--topic", USAGE, "--from", "1")
    assert p.returncode == 0, p.stderr
    assert f"next offset {end} -> 1" in p.stdout, p.stdout
    p = ctl(gw, "events", "replay", "--consumer", name, "--topic", USAGE, "--from",
            str(end + 1000))
    assert p.returncode == EX_DATAERR and "past the end" in p.stderr, p
    assert db_query(gw.data_dir, "SELECT next_offset FROM consumer_offsets WHERE consumer = ?",
                    (name,)) == [(1,)]
    # stat shows it (text and JSON, and the admin API)
    p = ctl(gw, "events", "stat")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert any(x.startswith("outbox pending=") for x in lines), lines
    lag_line = [x for x in lines if x.startswith(f"consumer {name} ")]
    assert lag_line, lines
    lag = int(lag_line[0].rsplit("lag=", 1)[1])
    assert lag >= end - 1, lag_line
    c = [x for x in events_status(gw, adm["h"])["consumers"] if x["name"] == name]
    assert c and c[0]["topic"] == USAGE and c[0]["nextOffset"] == 1, c
    assert c[0]["lag"] >= end - 1, c


def test_ctl_without_a_database(tmp_path):
    d = str(tmp_path / "empty")
    os.makedirs(d)
    p = run([LEAKYCTL, "-d", d, "events", "stat"])
    assert p.returncode == EX_NOINPUT, p
    p = run([LEAKYCTL, "-d", d, "events", "tail", "--topic", USAGE])
    assert p.returncode == 1 and "no such topic" in p.stderr, p


def read_lines(proc, n, deadline_s=20.0):
    """n lines from proc's stdout (a pipe), waiting at most deadline_s."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    out, buf = [], b""
    deadline = time.monotonic() + deadline_s
    try:
        while len(out) < n:
            left = deadline - time.monotonic()
            assert left > 0, f"only {len(out)} of {n} lines: {out}"
            if not sel.select(left):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            assert chunk, f"stdout closed after {len(out)} lines (rc {proc.poll()})"
            buf += chunk
            while b"\n" in buf and len(out) < n:
                line, buf = buf.split(b"\n", 1)
                out.append(json.loads(line))
    finally:
        sel.close()
    assert buf == b"", buf
    return out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_ctl_tail_follow(gw, adm, sig):
    u = new_user(gw)
    grant(gw, adm["h"], 10_000, user=u["userId"])
    assert consume(gw, u["h"], u["userId"], 1).status == 200
    drained(gw, adm["h"])
    last = tail(gw, USAGE)[-2:]
    proc = subprocess.Popen([LEAKYCTL, "-d", gw.data_dir, "events", "tail", "--topic", USAGE,
                             "--limit", "2", "--follow"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=clean_env())
    try:
        assert read_lines(proc, 2) == last
        corrs = []
        for _ in range(3):
            r = consume(gw, u["h"], u["userId"], 1)
            assert r.status == 200, r
            corrs.append(corr_of(r))
        new = read_lines(proc, 3)
        assert [e["payload"]["correlationId"] for e in new] == corrs, new
        assert [e["offset"] for e in new] == [last[-1]["offset"] + i for i in (1, 2, 3)], new
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == 0
        assert proc.stdout.read() == b""
        err = proc.stderr.read().decode()
        assert "Sanitizer" not in err and "runtime error" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


# =========================================== restarts and crashes ====

def own_gateway(tmp, stubs_port, name, **kw):
    cfg = gateway_config(stubs_port, **kw)
    return Leakyd(tmp, cfg, env=GATEWAY_ENV, name=name)


def test_restart_keeps_events_and_continues_offsets(tmp_path, stubs):
    first = own_gateway(tmp_path / "gw", stubs.port, "first").start()
    try:
        adm = admin_identity(first)
        u = new_user(first)
        grant(first, adm["h"], 1000, user=u["userId"])
        for _ in range(3):
            assert consume(first, u["h"], u["userId"], 5).status == 200
        drained(first, adm["h"])
        before = {t: tail(first, t) for t in (USAGE, AUDIT_TOPIC)}
        last_id = events_status(first, adm["h"])["outbox"]["lastEventId"]
        first.stop()
        second = own_gateway(tmp_path / "gw", stubs.port, "second").start()
        try:
            # the same events, offsets and ids, read from the restarted log
            for t, evs in before.items():
                assert tail(second, t) == evs, t
            adm = admin_identity(second)
            r = consume(second, u["h"], u["userId"], 5)
            assert r.status == 200, r
            drained(second, adm["h"])
            after = tail(second, USAGE)
            assert after[:len(before[USAGE])] == before[USAGE]
            assert len(after) == len(before[USAGE]) + 1, after
            new = after[-1]
            assert new["offset"] == len(before[USAGE]), new
            assert new["eventId"] > last_id, (new, last_id)
            assert new["payload"]["correlationId"] == corr_of(r), new
            # the relay published nothing twice at start
            st = events_status(second, adm["h"])
            assert st["relay"]["failures"] == 0, st
        finally:
            second.stop()
    finally:
        if first.running:
            first.stop()


def last_segment(data_dir, topic):
    d = os.path.join(data_dir, "events", topic)
    segs = sorted(f for f in os.listdir(d) if f.endswith(".log"))
    assert segs, os.listdir(d)
    return os.path.join(d, segs[-1])


@pytest.mark.parametrize("tear", ["garbage", "half-record"])
def test_torn_tail_is_cut_at_start(tmp_path, stubs, tear):
    first = own_gateway(tmp_path / "gw", stubs.port, "first").start()
    adm = admin_identity(first)
    u = new_user(first)
    grant(first, adm["h"], 1000, user=u["userId"])
    for _ in range(4):
        assert consume(first, u["h"], u["userId"], 7).status == 200
    drained(first, adm["h"])
    before = tail(first, USAGE)
    first.stop()
    seg = last_segment(first.data_dir, USAGE)
    size = os.path.getsize(seg)
    with open(seg, "rb") as f:
        data = f.read()
    if tear == "garbage":
        junk = b"\x00\xffnot a record\x13\x37" * 5
    else:
        # the first 60 bytes of the last record again: a record cut short
        last_start = data.rfind(b"LTE1")
        assert last_start >= 0
        junk = data[last_start:last_start + 60]
    with open(seg, "ab") as f:
        f.write(junk)
    # leakyctl reads around it (read-only: it cuts nothing)
    assert tail(first, USAGE) == before
    assert os.path.getsize(seg) == size + len(junk)
    second = own_gateway(tmp_path / "gw", stubs.port, "second").start()
    try:
        rec = second.wait_log(lambda r: "torn tail" in r.get("msg", ""), "the torn tail line")
        assert rec["level"] == "warn", rec
        assert f"cut {len(junk)} byte(s)" in rec["msg"], rec
        assert os.path.getsize(seg) == size
        assert tail(second, USAGE) == before
        adm = admin_identity(second)
        r = consume(second, u["h"], u["userId"], 7)
        assert r.status == 200, r
        drained(second, adm["h"])
        after = tail(second, USAGE)
        assert after[:-1] == before and after[-1]["offset"] == len(before), after[-1]
        assert after[-1]["payload"]["correlationId"] == corr_of(r)
    finally:
        second.stop()


def test_sigkill_under_consume_load(tmp_path):
    """kill -9 while 32 clients consume (slow stubs: calls are in flight),
    restart, drain: events and ledger agree exactly."""
    tokens = 3
    slow = start_stubs(tmp_path / "slowstubs", {"latency_ms": 100}, expect_errors=True)
    cfg = gateway_config(slow.port, threads=64, providers={"openai": {"bulkhead": 256}},
                         extra={"limits": {"whitelist": DEFAULT_WHITELIST +
                                           ",/api/v1/tokens/**",
                                           # 32 clients x 3 tokens at ~300/s would
                                           # outrun the default 10 tokens/s bucket
                                           "token_capacity": 10**9, "token_rate": 10**9}})
    gw_dir = tmp_path / "gw"
    first = Leakyd(gw_dir, cfg, env=GATEWAY_ENV, name="first")
    second = crowd = None
    try:
        first.start()
        adm = admin_identity(first)
        u = new_user(first)
        uid = u["userId"]
        grant(first, adm["h"], 10_000_000, user=uid)
        crowd = Crowd(first, 32, {"userId": uid, "provider": "openai", "tokens": tokens},
                      u["h"]).start()
        wait_until(lambda: db_query(first.data_dir, "SELECT count(*) FROM ledger "
                                                    "WHERE kind = 'settle'")[0][0] >= 300,
                   "300 settled calls", deadline_s=60)
        first.signal(signal.SIGKILL)
        assert first.wait_exit() == -signal.SIGKILL
        crowd.stop()
        crowd.join()
        assert set(crowd.statuses) <= {200}, (crowd.statuses, crowd.bad)
        pending_at_kill = db_query(first.data_dir, "SELECT count(*) FROM outbox "
                                                   "WHERE published_at IS NULL")[0][0]
        print(f"killed after {crowd.statuses[200]} answered 200s with "
              f"{pending_at_kill} outbox rows pending")

        second = Leakyd(gw_dir, cfg, env=GATEWAY_ENV, name="second")
        second.start()
        adm = admin_identity(second)
        drained(second, adm["h"])
        usage = tail(second, USAGE)
        audit = tail(second, AUDIT_TOPIC)
        # no event id twice, anywhere; offsets contiguous; ids increasing
        ids = [e["eventId"] for e in usage + audit]
        assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]
        for evs in (usage, audit):
            assert [e["offset"] for e in evs] == list(range(len(evs)))
            assert all(a["eventId"] < b["eventId"] for a, b in zip(evs, evs[1:]))
        # the outbox rows and the log agree: every row is in the log once
        rows = db_query(second.data_dir, "SELECT id, topic FROM outbox ORDER BY id")
        assert sorted(ids) == [r[0] for r in rows], "outbox rows and log events differ"
        mine = [e["payload"] for e in usage if e["payload"]["userId"] == uid]
        by_corr = Counter(p["correlationId"] for p in mine)
        assert all(n == 1 for n in by_corr.values()), \
            [c for c, n in by_corr.items() if n > 1][:5]
        settles = db_query(second.data_dir,
                           "SELECT correlation_id, amount FROM ledger WHERE kind = 'settle' "
                           "AND reason = 'consume'")
        assert len(settles) >= 300, len(settles)
        billed = {p["correlationId"]: p for p in mine if p["allowed"] and p["reason"] is None}
        # every settle of a consume has exactly one usage event, with its amount
        for corr, amount in settles:
            assert by_corr[corr] == 1, f"settle {corr} has {by_corr[corr]} usage events"
            assert billed[corr]["tokens"]["total"] == amount == tokens, billed[corr]
        # and no billed usage event exists without its settle
        assert set(billed) == {c for c, _ in settles}, \
            set(billed) ^ {c for c, _ in settles}
        # released at start (the calls in flight) have no usage event
        released = db_query(second.data_dir,
                            "SELECT correlation_id FROM ledger WHERE kind = 'release'")
        assert not {c for (c,) in released} & set(billed)
        failed = [p for p in mine if p["reason"] == "provider_failed"]
        for p in failed:
            assert (p["correlationId"],) in released, p
        assert len(mine) == len(billed) + len(failed), Counter(p["reason"] for p in mine)
        assert_check_ok(second.config_path)
        second.stop()
        assert_check_ok(second.config_path)
    finally:
        if crowd is not None:
            crowd.stop()
        for s in (first, second):
            if s is not None and s.running:
                s.proc.kill()
                s.proc.wait()
        slow.stop()


def record_starts(path):
    """Byte positions of the records of a segment file (frame.h: magic,
    then body_len, the record is 8 + body_len bytes)."""
    data = open(path, "rb").read()
    pos, out = 0, []
    while pos < len(data):
        assert data[pos:pos + 4] == b"LTE1", (path, pos)
        out.append(pos)
        pos += 8 + int.from_bytes(data[pos + 4:pos + 8], "little")
    assert pos == len(data), (path, pos, len(data))
    return out


def test_crash_that_kept_one_topic_of_a_batch(tmp_path, stubs):
    """A batch's topics are separate files synced one after another: a
    crash can keep the token-usage part of a batch and lose the audit part.
    The relay's recovery works per topic, so the lost audit event (whose id
    is below the largest id in the log) is appended again, once."""
    first = own_gateway(tmp_path / "gw", stubs.port, "first").start()
    adm = admin_identity(first)
    u = new_user(first)
    grant(first, adm["h"], 1000, user=u["userId"])           # an audit event
    assert consume(first, u["h"], u["userId"], 5).status == 200   # a later usage event
    drained(first, adm["h"])
    audit = tail(first, AUDIT_TOPIC)
    usage = tail(first, USAGE)
    lost = audit[-1]
    assert lost["eventId"] < usage[-1]["eventId"], (lost, usage[-1])
    first.stop()
    # the crash: the audit topic's last record never reached the disk, and
    # its outbox row was never marked published
    seg = last_segment(first.data_dir, AUDIT_TOPIC)
    with open(seg, "r+b") as f:
        f.truncate(record_starts(seg)[-1])
    with sqlite3.connect(os.path.join(first.data_dir, "leaky.db")) as c:
        c.execute("UPDATE outbox SET published_at = NULL WHERE id = ?", (lost["eventId"],))
    second = own_gateway(tmp_path / "gw", stubs.port, "second").start()
    try:
        adm = admin_identity(second)
        drained(second, adm["h"])
        again = tail(second, AUDIT_TOPIC)
        ids = [e["eventId"] for e in again]
        assert ids.count(lost["eventId"]) == 1, ids
        assert again[len(audit) - 1]["eventId"] == lost["eventId"], again
        assert again[len(audit) - 1]["payload"] == lost["payload"]
        assert [e["offset"] for e in again] == list(range(len(again)))
        # nothing else was appended twice
        assert [e["eventId"] for e in tail(second, USAGE)] == [e["eventId"] for e in usage]
    finally:
        second.stop()
