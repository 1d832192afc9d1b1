"""Analytics (issue 7, API.md §3) against a real leakyd, the built-in stubs
and the manual clock: every answer of /api/v1/analytics/* and of `leakyctl
usage` equals a sum this test computes on its own from the event log
(`leakyctl events tail --topic token-usage --from 0`), never from
analytics.db.

  world     one gateway (manual clock, long JWTs) and a usage history made
            with consume and /v1 chat across several minutes, two hours and
            the UTC day boundary 2030-01-01 / 2030-01-02: users A and B in
            org O (A also spends from O's pool), C alone, D without pools
            (402s), rate-limited 429s (consume and chat), gemini chats, and
            the anomaly reference case on qwen (100, 100, then 300 tokens in
            10-minute windows: ratio 3.0, an anomaly).  Waiting for the
            ingest polls: the outbox drained (GET /admin/v1/events), then
            leaky_analytics_lag_events 0 in /metrics.
  queries   usage, report, anomalies, cost (every groupBy x bucket), a
            user's day, as ADMIN and as a USER (its own and its orgs' rows);
            parameter clamps and 400s with API.md's names.
  leakyctl  usage report|top|cost|anomalies --json print what the API
            answers (--now = the server's manual clock); --user/--org; the
            tables; exit codes 64, 66, 1; analytics rebuild refused (75)
            while leakyd runs, then with it stopped reproduces every number.
  crash     a gateway of its own killed with SIGKILL while a consume load
            is being ingested, restarted: every fact once, the rollups equal
            the facts, the API equals the log; then the stored offset set
            back to 0 (a replay of everything): nothing counted twice.

Nothing sleeps for a fixed time: waits poll with a deadline.
"""

import json
import signal
import sqlite3
from collections import Counter, defaultdict
from datetime import datetime, timezone

import pytest

from conftest import LEAKYCTL, Leakyd, metric, parse_metrics, run
from stubs_fixture import (GATEWAY_ENV, chat, chat_body, fund, gateway_config, start_stubs)
from tokens_fixture import (Crowd, add_member, admin_identity, advance, clock_ms, consume,
                            grant, iso_to_ms, make_org, new_user, set_clock, wait_until)

AN = "/api/v1/analytics"
EVENTS = "/admin/v1/events"
MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
EX_USAGE, EX_NOINPUT, EX_TEMPFAIL = 64, 66, 75
GROUPS = ("user", "org", "provider", "model")
BUCKETS = {"minute": MIN, "hour": HOUR, "day": DAY}
LONG_JWT = {"auth": {"token_ttl_s": 604800}}


# ---- helpers ----

def ctl(data_dir, *args, **kw):
    return run([LEAKYCTL, "-d", data_dir, *args], **kw)


def ms_iso(ms):
    d = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def get_json(gw, path, h, status=200):
    r = gw.get(path, headers=h)
    assert r.status == status, (path, r)
    return r.json()


def caught_up(gw, adm_h):
    """Every committed usage event is in the log and in analytics.db."""
    wait_until(lambda: get_json(gw, EVENTS, adm_h)["outbox"]["pending"] == 0,
               "outbox pending 0", deadline_s=30)

    def lag0():
        m = parse_metrics(gw.get("/metrics").text)
        return metric(m, "leaky_analytics_lag_events") == 0
    wait_until(lag0, "leaky_analytics_lag_events 0", deadline_s=30)


def log_events(data_dir):
    """The token-usage payloads, each with its eventId, from the log."""
    p = ctl(data_dir, "events", "tail", "--topic", "token-usage", "--from", "0")
    assert p.returncode == 0, p.stderr
    out = []
    for line in p.stdout.splitlines():
        ev = json.loads(line)
        pl = dict(ev["payload"])
        pl["eventId"] = ev["eventId"]
        pl["at"] = iso_to_ms(pl["time"])
        out.append(pl)
    return out


def visible(evs, scope):
    """scope None: ADMIN; else (user id, {org ids})."""
    if scope is None:
        return evs
    uid, orgs = scope
    return [e for e in evs if e["userId"] == uid or (e["orgId"] or "") in orgs]


def tot(e):
    return e["tokens"]["total"]


# ---- the expected answers, from the log ----

def exp_report(evs, provider, start, end):
    w = [e for e in evs if e["provider"] == provider and start <= e["at"] < end]
    n = len(w)
    allowed = sum(1 for e in w if e["allowed"])
    tokens = sum(tot(e) for e in w)
    per = defaultdict(lambda: [0, 0])
    for e in w:
        if e["userId"]:
            per[e["userId"]][0] += tot(e)
            per[e["userId"]][1] += 1
    top = sorted(per.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[:5]
    return {"provider": provider, "windowStart": ms_iso(start), "windowEnd": ms_iso(end),
            "totalEvents": n, "allowedEvents": allowed, "deniedEvents": n - allowed,
            "totalTokens": tokens, "averageTokensPerEvent": tokens / n if n else 0,
            "uniqueUsers": len(per), "sampleLimit": 1000,
            "topUsers": [{"userId": u, "totalTokens": t, "events": c}
                         for u, (t, c) in top]}


def exp_anomaly(evs, provider, now, minutes, n, threshold):
    W = minutes * MIN

    def window_sum(a, b):
        return sum(tot(e) for e in evs if e["provider"] == provider and a <= e["at"] < b)
    cur = window_sum(now - W, now)
    base = [window_sum(now - (k + 1) * W, now - k * W) for k in range(1, n + 1)]
    avg = sum(base) / n
    ratio = cur / avg if avg else None
    return {"provider": provider, "windowStart": ms_iso(now - W), "windowEnd": ms_iso(now),
            "baselineWindows": n, "currentTokens": cur, "baselineAverageTokens": avg,
            "ratio": ratio, "thresholdMultiplier": threshold,
            "anomaly": ratio is not None and ratio >= threshold}


def exp_cost(evs, frm, to, group, bucket, provider=None):
    rf, rt = frm // MIN * MIN, -(-to // MIN) * MIN
    key = {"user": "userId", "org": "orgId", "provider": "provider", "model": "model"}[group]
    sums = defaultdict(lambda: [0, 0, 0])
    for e in evs:
        if not (rf <= e["at"] < rt) or (provider and e["provider"] != provider):
            continue
        b = e["at"] // BUCKETS[bucket] * BUCKETS[bucket]
        s = sums[(b, e[key] or "")]
        s[0] += e["costMicros"]
        s[1] += 1
        s[2] += tot(e)
    items = [{"bucketStart": ms_iso(b), "group": g, "costMicros": c, "requests": r,
              "totalTokens": t} for (b, g), (c, r, t) in sorted(sums.items())]
    return {"from": ms_iso(rf), "to": ms_iso(rt), "groupBy": group, "bucket": bucket,
            "provider": provider, "unit": "micro-USD", "items": items, "count": len(items),
            "totalCostMicros": sum(i["costMicros"] for i in items)}


def exp_usage(evs, provider, limit):
    w = sorted((e for e in evs if e["provider"] == provider),
               key=lambda e: (e["at"], e["eventId"]), reverse=True)[:limit]
    return {"provider": provider, "count": len(w),
            "items": [{"key": {"provider": provider, "timestamp": e["time"]},
                       "userId": e["userId"], "tokens": tot(e), "allowed": e["allowed"]}
                      for e in w]}


def exp_daily(evs, uid, day):
    start = iso_to_ms(day + "T00:00:00.000Z")
    w = [e for e in evs if e["userId"] == uid and start <= e["at"] < start + DAY]
    refused = Counter()
    for e in w:
        if not e["allowed"]:
            r = e["reason"]
            refused["rateLimited" if r in ("rate_limited", "request_too_large") else
                    "insufficientQuota" if r == "insufficient_quota" else "other"] += 1
    return {"userId": uid, "day": day, "dayStart": ms_iso(start), "requests": len(w),
            "allowedRequests": sum(1 for e in w if e["allowed"]),
            "refused": {k: refused[k] for k in ("rateLimited", "insufficientQuota", "other")},
            "tokens": {k: sum(e["tokens"][k] for e in w)
                       for k in ("input", "cachedInput", "output", "total")},
            "costMicros": sum(e["costMicros"] for e in w),
            "latencyMs": {"sum": sum(e["latencyMs"] for e in w),
                          "max": max((e["latencyMs"] for e in w), default=0)}}


def approx_equal(got, want):
    """Equal, floats compared to 1e-9 relative."""
    if isinstance(want, float) or isinstance(got, float):
        return got is not None and want is not None and \
            abs(got - want) <= 1e-9 * max(1.0, abs(want))
    if isinstance(want, dict):
        return isinstance(got, dict) and set(got) == set(want) and \
            all(approx_equal(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and \
            all(approx_equal(a, b) for a, b in zip(got, want))
    return got == want


def assert_eq(got, want, what):
    assert approx_equal(got, want), f"{what}:\n got  {got}\n want {want}"


# ---- the world ----

T0 = "2030-01-01T21:58:00.000Z"
ANOMALY_NOW = "2030-01-02T01:00:00.000Z"


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    s = start_stubs(tmp_path_factory.mktemp("stubs"))
    yield s
    s.stop()


def gateway(tmp, stubs_port, name, **extra):
    cfg = gateway_config(stubs_port, manual_clock=True, extra=dict(LONG_JWT, **extra))
    return Leakyd(tmp, cfg, env=GATEWAY_ENV, name=name)


@pytest.fixture(scope="module")
def world(tmp_path_factory, stubs):
    tmp = tmp_path_factory.mktemp("gw")
    gw = gateway(tmp, stubs.port, "gw").start()
    w = {"tmp": tmp, "gw": gw, "stubs": stubs}
    try:
        set_clock(gw, T0)
        adm = admin_identity(gw)
        A, B, C, D = (new_user(gw) for _ in range(4))
        O = make_org(gw, adm["h"])
        add_member(gw, adm["h"], O, A["userId"])
        add_member(gw, adm["h"], O, B["userId"])
        for u in (A, B, C):
            fund(gw, u["userId"], 10_000_000)
        grant(gw, adm["h"], 10_000_000, org=O)
        corr = []

        def ok(r, status=200):
            assert r.status == status, r
            corr.append(r)
            return r

        # minute 0 and 1: consume, org pool, chat, 402
        advance(gw, 10_000)
        ok(consume(gw, A["h"], A["userId"], 100))
        ok(consume(gw, A["h"], A["userId"], 70, orgId=O))
        ok(consume(gw, B["h"], B["userId"], 50, orgId=O))
        ok(chat(gw, C["token"], chat_body("gpt-4o-mini", "hello there", max_tokens=20)))
        ok(consume(gw, D["h"], D["userId"], 40), 402)
        advance(gw, MIN)
        ok(consume(gw, A["h"], A["userId"], 200))
        ok(chat(gw, A["token"], chat_body("o4-mini", "a longer question " * 8, max_tokens=30)))
        # a rate-limited consume (USER bucket 1000) and a rate-limited chat
        ok(consume(gw, C["h"], C["userId"], 900))
        ok(consume(gw, C["h"], C["userId"], 200), 429)
        r = chat(gw, C["token"], chat_body("gpt-4o-mini", "hi", max_tokens=500))
        assert r.status == 429 and r.json()["error"]["code"] == "rate_limit_exceeded", r
        # two minutes on, then past 23:00
        advance(gw, 2 * MIN + 5_000)
        ok(consume(gw, B["h"], B["userId"], 120))
        ok(chat(gw, B["token"], chat_body("gemini-2.0-flash", "bonjour", max_tokens=10)))
        advance(gw, 61 * MIN)
        ok(consume(gw, A["h"], A["userId"], 300))
        ok(consume(gw, D["h"], D["userId"], 5), 402)
        # the day boundary: the last instant of 2030-01-01 and the first of the 2nd
        set_clock(gw, "2030-01-01T23:59:59.999Z")
        ok(consume(gw, B["h"], B["userId"], 11))
        set_clock(gw, "2030-01-02T00:00:00.000Z")
        ok(consume(gw, B["h"], B["userId"], 13))
        ok(consume(gw, A["h"], A["userId"], 17, orgId=O))
        advance(gw, 90_000)
        ok(chat(gw, C["token"], chat_body("qwen-plus", "ni hao", max_tokens=10)))
        ok(consume(gw, C["h"], C["userId"], 42))
        # the anomaly reference on provider "gemini" by consume: 100 in
        # [now-30m, now-20m), 100 in [now-20m, now-10m), 300 in [now-10m, now)
        now = iso_to_ms(ANOMALY_NOW)
        for at, n in ((now - 25 * MIN, 100), (now - 15 * MIN, 100), (now - 5 * MIN, 300)):
            set_clock(gw, ms_iso(at))
            ok(consume(gw, C["h"], C["userId"], n, provider="gemini"))
        set_clock(gw, ANOMALY_NOW)
        caught_up(gw, adm["h"])
        w.update(adm=adm, A=A, B=B, C=C, D=D, O=O, now=clock_ms(gw))
        w["events"] = log_events(gw.data_dir)
        yield w
    finally:
        g = w["gw"]
        if g.running:
            g.stop()


def admin_h(w):
    return w["adm"]["h"]


def test_history_is_in_the_log(world):
    """The test's own bookkeeping: refusals and both days are there."""
    evs = world["events"]
    reasons = Counter(e["reason"] for e in evs if not e["allowed"])
    assert reasons["insufficient_quota"] == 2 and reasons["rate_limited"] == 2, reasons
    days = Counter(e["time"][:10] for e in evs)
    assert set(days) == {"2030-01-01", "2030-01-02"}, days
    assert {e["provider"] for e in evs} == {"openai", "gemini", "qwen"}
    assert any(e["orgId"] == world["O"] for e in evs)
    assert all(e["costMicros"] >= 0 for e in evs)
    assert any(e["costMicros"] > 0 for e in evs)


# ======================================================== queries ====

def test_health(world):
    b = get_json(world["gw"], f"{AN}/health", {})
    assert b["service"] == "analytics-service" and b["status"] == "ok", b


@pytest.mark.parametrize("provider", ["openai", "gemini", "qwen"])
def test_report_every_window(world, provider):
    gw, evs, now = world["gw"], world["events"], world["now"]
    for minutes in (1, 5, 60, 120, 180, 1440):
        got = get_json(gw, f"{AN}/report?provider={provider}&windowMinutes={minutes}",
                       admin_h(world))
        assert_eq(got, exp_report(evs, provider, now - minutes * MIN, now),
                  f"report {provider} {minutes}")
    got = get_json(gw, f"{AN}/report?provider={provider}", admin_h(world))   # default 60
    assert_eq(got, exp_report(evs, provider, now - 60 * MIN, now), "report default")


def test_report_windows_over_the_history(world):
    """Move the clock back over the history: the windows hold the minutes,
    the hours and the day boundary."""
    gw, evs = world["gw"], world["events"]
    try:
        for at in ("2030-01-01T21:59:00.000Z", "2030-01-01T22:00:30.000Z",
                   "2030-01-01T23:00:00.000Z", "2030-01-01T23:59:59.999Z",
                   "2030-01-02T00:00:00.000Z", "2030-01-02T00:00:00.001Z",
                   "2030-01-02T00:05:00.000Z"):
            now = set_clock(gw, at)
            for minutes in (1, 2, 61, 1440):
                got = get_json(gw, f"{AN}/report?provider=openai&windowMinutes={minutes}",
                               admin_h(world))
                assert_eq(got, exp_report(evs, "openai", now - minutes * MIN, now),
                          f"report at {at} over {minutes}")
    finally:
        set_clock(gw, ANOMALY_NOW)


def test_usage_newest_first(world):
    gw, evs = world["gw"], world["events"]
    for provider in ("openai", "gemini", "qwen"):
        for q, limit in (("", 20), ("&limit=3", 3), ("&limit=0", 1), ("&limit=-5", 1),
                         ("&limit=100000", 200)):
            got = get_json(gw, f"{AN}/usage?provider={provider}{q}", admin_h(world))
            assert_eq(got, exp_usage(evs, provider, limit), f"usage {provider}{q}")


def test_anomaly_reference_case(world):
    gw = world["gw"]
    got = get_json(gw, f"{AN}/anomalies?provider=gemini&windowMinutes=10&baselineWindows=2",
                   admin_h(world))
    assert (got["currentTokens"], got["baselineAverageTokens"], got["ratio"],
            got["thresholdMultiplier"], got["anomaly"]) == (300, 100.0, 3.0, 2.0, True), got
    # a ratio below the threshold is no anomaly
    got = get_json(gw, f"{AN}/anomalies?provider=gemini&windowMinutes=10&baselineWindows=2"
                       "&thresholdMultiplier=3.01", admin_h(world))
    assert (got["ratio"], got["anomaly"]) == (3.0, False), got
    # three baselines, the oldest empty: mean 200/3 (empty windows count), ratio 4.5
    got = get_json(gw, f"{AN}/anomalies?provider=gemini&windowMinutes=10&baselineWindows=3",
                   admin_h(world))
    assert (got["baselineAverageTokens"], got["ratio"]) == (200 / 3, 4.5), got
    # a zero baseline: ratio null, no anomaly
    got = get_json(gw, f"{AN}/anomalies?provider=gemini&windowMinutes=1&baselineWindows=1",
                   admin_h(world))
    assert (got["ratio"], got["anomaly"], got["baselineAverageTokens"]) == \
        (None, False, 0), got


def test_anomalies_equal_the_log(world):
    gw, evs, now = world["gw"], world["events"], world["now"]
    for provider in ("openai", "gemini", "qwen"):
        for minutes, n, thr in ((10, 2, 2.0), (1, 1, 1.0), (60, 4, 1.5), (30, 24, 2.0),
                                (120, 3, 1.0)):
            got = get_json(gw, f"{AN}/anomalies?provider={provider}&windowMinutes={minutes}"
                               f"&baselineWindows={n}&thresholdMultiplier={thr}",
                           admin_h(world))
            assert_eq(got, exp_anomaly(evs, provider, now, minutes, n, thr),
                      f"anomalies {provider} {minutes} {n} {thr}")


def cost_q(frm, to, group, bucket, provider=None):
    q = f"{AN}/cost?from={ms_iso(frm)}&to={ms_iso(to)}&groupBy={group}&bucket={bucket}"
    return q + (f"&provider={provider}" if provider else "")


def test_cost_every_group_and_bucket(world):
    gw, evs, now = world["gw"], world["events"], world["now"]
    frm = iso_to_ms(T0) - HOUR
    for group in GROUPS:
        for bucket in BUCKETS:
            for provider in (None, "openai"):
                got = get_json(gw, cost_q(frm, now + 1, group, bucket, provider),
                               admin_h(world))
                assert_eq(got, exp_cost(evs, frm, now + 1, group, bucket, provider),
                          f"cost {group} {bucket} {provider}")
    # ranges that cut the history: widened to whole minutes
    for a, b in (("2030-01-01T21:59:30.000Z", "2030-01-01T22:01:10.500Z"),
                 ("2030-01-01T23:59:59.999Z", "2030-01-02T00:00:00.001Z"),
                 ("2030-01-01T22:00:00.000Z", "2030-01-02T00:00:00.000Z")):
        got = get_json(gw, cost_q(iso_to_ms(a), iso_to_ms(b), "user", "minute"),
                       admin_h(world))
        assert_eq(got, exp_cost(evs, iso_to_ms(a), iso_to_ms(b), "user", "minute"),
                  f"cost {a}..{b}")
    # Unix milliseconds work as well as ISO
    got = get_json(gw, f"{AN}/cost?from={frm}&to={now + 1}&groupBy=user&bucket=day",
                   admin_h(world))
    assert_eq(got, exp_cost(evs, frm, now + 1, "user", "day"), "cost ms")


def test_cost_defaults(world):
    """groupBy provider, bucket hour, from the day before to now, whichever
    parameters are given."""
    gw, evs, now = world["gw"], world["events"], world["now"]
    frm = iso_to_ms(T0) - HOUR
    got = get_json(gw, f"{AN}/cost", admin_h(world))
    assert_eq(got, exp_cost(evs, now - DAY, now, "provider", "hour"), "cost defaults")
    got = get_json(gw, f"{AN}/cost?bucket=day", admin_h(world))
    assert_eq(got, exp_cost(evs, now - DAY, now, "provider", "day"), "cost groupBy default")
    got = get_json(gw, f"{AN}/cost?groupBy=user", admin_h(world))
    assert_eq(got, exp_cost(evs, now - DAY, now, "user", "hour"), "cost bucket default")
    got = get_json(gw, f"{AN}/cost?from={frm}&to={now + 1}", admin_h(world))
    assert_eq(got, exp_cost(evs, frm, now + 1, "provider", "hour"), "cost from/to only")
    got = get_json(gw, f"{AN}/cost?provider=openai", admin_h(world))
    assert ctl_json(world, "usage", "cost", "--provider", "openai", "--now",
                    ms_iso(now)) == got


def test_user_daily(world):
    gw, evs = world["gw"], world["events"]
    for u in ("A", "B", "C", "D"):
        uid = world[u]["userId"]
        for day in ("2030-01-01", "2030-01-02", "2030-01-03"):
            got = get_json(gw, f"{AN}/users/{uid}/daily?day={day}", admin_h(world))
            assert_eq(got, exp_daily(evs, uid, day), f"daily {u} {day}")


# ---- the USER restriction ----

def test_user_sees_its_own_and_its_orgs_rows(world):
    gw, evs, now = world["gw"], world["events"], world["now"]
    A, B, C, O = world["A"], world["B"], world["C"], world["O"]
    for who, scope in ((A, (A["userId"], {O})), (B, (B["userId"], {O})),
                       (C, (C["userId"], set()))):
        mine = visible(evs, scope)
        assert 0 < len(mine) < len(evs)
        for provider in ("openai", "gemini"):
            got = get_json(gw, f"{AN}/report?provider={provider}&windowMinutes=1440", who["h"])
            assert_eq(got, exp_report(mine, provider, now - DAY, now), "USER report")
            got = get_json(gw, f"{AN}/usage?provider={provider}&limit=200", who["h"])
            assert_eq(got, exp_usage(mine, provider, 200), "USER usage")
            got = get_json(gw, f"{AN}/anomalies?provider={provider}&windowMinutes=10"
                               "&baselineWindows=3", who["h"])
            assert_eq(got, exp_anomaly(mine, provider, now, 10, 3, 2.0), "USER anomalies")
        frm = iso_to_ms(T0) - HOUR
        for group in GROUPS:
            got = get_json(gw, cost_q(frm, now + 1, group, "minute"), who["h"])
            assert_eq(got, exp_cost(mine, frm, now + 1, group, "minute"), f"USER cost {group}")
    # B's org-pool spending shows in A's view; C's never does
    a_view = get_json(gw, cost_q(iso_to_ms(T0) - HOUR, now + 1, "user", "day"), A["h"])
    users = {i["group"] for i in a_view["items"]}
    assert B["userId"] in users and C["userId"] not in users, a_view
    # another user's day, seen by A: only the rows A may see (B's org rows)
    got = get_json(gw, f"{AN}/users/{B['userId']}/daily?day=2030-01-01", A["h"])
    assert_eq(got, exp_daily(visible(evs, (A["userId"], {O})), B["userId"], "2030-01-01"),
              "A reads B's day")
    got = get_json(gw, f"{AN}/users/{C['userId']}/daily?day=2030-01-01", A["h"])
    assert got["requests"] == 0 and got["costMicros"] == 0, got


def test_anonymous_is_refused(world):
    r = world["gw"].get(f"{AN}/report?provider=openai")
    assert r.status == 401, r


# ---- parameters ----

def test_clamps(world):
    gw, now, h = world["gw"], world["now"], admin_h(world)
    b = get_json(gw, f"{AN}/report?provider=openai&windowMinutes=0", h)
    assert b["windowStart"] == ms_iso(now - MIN), b
    b = get_json(gw, f"{AN}/report?provider=openai&windowMinutes=-7", h)
    assert b["windowStart"] == ms_iso(now - MIN), b
    b = get_json(gw, f"{AN}/report?provider=openai&windowMinutes=99999", h)
    assert b["windowStart"] == ms_iso(now - 1440 * MIN), b
    b = get_json(gw, f"{AN}/report?provider=OpenAI&limit=0", h)
    assert b["provider"] == "openai" and b["sampleLimit"] == 1, b
    b = get_json(gw, f"{AN}/report?provider=openai&limit=99999", h)
    assert b["sampleLimit"] == 5000, b
    b = get_json(gw, f"{AN}/anomalies?provider=openai", h)
    assert (b["baselineWindows"], b["thresholdMultiplier"]) == (4, 2.0), b
    assert b["windowStart"] == ms_iso(now - 60 * MIN), b
    b = get_json(gw, f"{AN}/anomalies?provider=openai&baselineWindows=0"
                     "&thresholdMultiplier=0.5&windowMinutes=5000", h)
    assert (b["baselineWindows"], b["thresholdMultiplier"]) == (1, 1.0), b
    assert b["windowStart"] == ms_iso(now - 1440 * MIN), b
    b = get_json(gw, f"{AN}/anomalies?provider=openai&baselineWindows=99", h)
    assert b["baselineWindows"] == 24, b


@pytest.mark.parametrize("path,message", [
    ("/report", "provider is required"),
    ("/report?provider=", "provider is required"),
    ("/report?provider=no%20such!", "invalid provider"),
    ("/report?provider=openai&windowMinutes=ten", "windowMinutes must be an integer"),
    ("/report?provider=openai&limit=1.5", "limit must be an integer"),
    ("/usage", "provider is required"),
    ("/usage?provider=openai&limit=x", "limit must be an integer"),
    ("/anomalies", "provider is required"),
    ("/anomalies?provider=openai&baselineWindows=2.5", "baselineWindows must be an integer"),
    ("/anomalies?provider=openai&thresholdMultiplier=high",
     "thresholdMultiplier must be a number"),
    ("/anomalies?provider=openai&thresholdMultiplier=inf",
     "thresholdMultiplier must be a number"),
    ("/cost?groupBy=team", "groupBy must be one of user, org, provider, model"),
    ("/cost?groupBy=USER", "groupBy must be one of user, org, provider, model"),
    ("/cost?groupBy=user&bucket=week", "bucket must be one of minute, hour, day"),
    ("/cost?from=yesterday",
     "from must be an ISO-8601 UTC time (2026-02-05T10:00:00Z) or Unix milliseconds"),
    ("/cost?to=2030-13-01T00:00:00Z",
     "to must be an ISO-8601 UTC time (2026-02-05T10:00:00Z) or Unix milliseconds"),
    ("/cost?groupBy=org&bucket=day&from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z", "from must be before to"),
    ("/cost?groupBy=org&bucket=day&from=2030-01-01T00:00:00Z&to=2030-01-01T00:00:00Z", "from must be before to"),
    ("/cost?groupBy=org&bucket=day&from=2028-01-01T00:00:00Z"
     "&to=2030-01-01T00:00:00Z",
     "the range from..to must not exceed 366 days"),
    ("/cost?provider=a%20b", "invalid provider"),
    ("/users/not-a-uuid/daily?day=2030-01-01", "invalid userId"),
    ("/users/6f1c2a0e-3b4d-4c5e-8f90-1a2b3c4d5e6f/daily", "day is required"),
    ("/users/6f1c2a0e-3b4d-4c5e-8f90-1a2b3c4d5e6f/daily?day=2030-02-30",
     "day must be a date YYYY-MM-DD"),
    ("/users/6f1c2a0e-3b4d-4c5e-8f90-1a2b3c4d5e6f/daily?day=20300101",
     "day must be a date YYYY-MM-DD"),
])
def test_400s(world, path, message):
    r = world["gw"].get(AN + path, headers=admin_h(world))
    assert r.status == 400, r
    b = r.json()
    assert b["message"] == message and b["status"] == 400, b
    assert b["path"] == AN + path.split("?")[0], b


# ======================================================= leakyctl ====

def ctl_json(w, *args):
    p = ctl(w["gw"].data_dir, *args, "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_ctl_prints_what_the_api_answers(world):
    gw, now, h = world["gw"], world["now"], admin_h(world)
    nows = ms_iso(now)
    for provider in ("openai", "gemini"):
        for minutes in (10, 60, 1440):
            api = get_json(gw, f"{AN}/report?provider={provider}&windowMinutes={minutes}", h)
            assert ctl_json(world, "usage", "report", "--provider", provider.upper(),
                            "--window", str(minutes), "--now", nows) == api
            top = ctl_json(world, "usage", "top", "--provider", provider, "--window",
                           str(minutes), "--now", str(now))
            assert top == {k: api[k] for k in ("provider", "windowStart", "windowEnd",
                                               "topUsers")}, top
            top2 = ctl_json(world, "usage", "top", "--provider", provider, "--window",
                            str(minutes), "--now", nows, "--limit", "2")
            assert top2["topUsers"] == api["topUsers"][:2]
        for minutes, n, thr in ((10, 2, "2.0"), (60, 4, "1.5"), (0, 99, "0.1")):
            api = get_json(gw, f"{AN}/anomalies?provider={provider}&windowMinutes={minutes}"
                               f"&baselineWindows={n}&thresholdMultiplier={thr}", h)
            assert ctl_json(world, "usage", "anomalies", "--provider", provider, "--window",
                            str(minutes), "--baselines", str(n), "--threshold", thr,
                            "--now", nows) == api
    frm = ms_iso(iso_to_ms(T0) - HOUR)
    to = ms_iso(now + 1)
    for group in GROUPS:
        for bucket in BUCKETS:
            api = get_json(gw, f"{AN}/cost?from={frm}&to={to}&groupBy={group}"
                               f"&bucket={bucket}", h)
            assert ctl_json(world, "usage", "cost", "--from", frm, "--to", to, "--group-by",
                            group, "--bucket", bucket) == api
    api = get_json(gw, f"{AN}/cost?provider=openai&groupBy=model&bucket=minute", h)
    assert ctl_json(world, "usage", "cost", "--provider", "openai", "--group-by", "model",
                    "--bucket", "minute", "--now", nows) == api
    # report over an explicit range equals the log
    a, b = iso_to_ms("2030-01-01T21:58:00.000Z"), iso_to_ms("2030-01-02T00:00:00.000Z")
    got = ctl_json(world, "usage", "report", "--provider", "openai", "--from", ms_iso(a),
                   "--to", str(b))
    assert_eq(got, exp_report(world["events"], "openai", a, b), "ctl report --from/--to")


def test_ctl_user_and_org_restrictions(world):
    gw, now, evs = world["gw"], world["now"], world["events"]
    A, C, O = world["A"], world["C"], world["O"]
    nows = ms_iso(now)
    me = get_json(gw, "/api/v1/auth/me", A["h"])
    # --user by name and by id: what the API shows that USER
    for ref in (me["username"], A["userId"].upper()):
        api = get_json(gw, f"{AN}/report?provider=openai&windowMinutes=1440", A["h"])
        assert ctl_json(world, "usage", "report", "--provider", "openai", "--window", "1440",
                        "--now", nows, "--user", ref) == api
        api = get_json(gw, f"{AN}/cost?groupBy=user&bucket=minute", A["h"])
        assert ctl_json(world, "usage", "cost", "--group-by", "user", "--bucket", "minute",
                        "--now", nows, "--user", ref) == api
    # --org: that org's rows only
    frm = iso_to_ms(T0) - HOUR
    got = ctl_json(world, "usage", "cost", "--group-by", "user", "--bucket", "day", "--from",
                   str(frm), "--to", str(now + 1), "--org", O)
    org_rows = [e for e in evs if e["orgId"] == O]
    assert org_rows
    assert_eq(got, exp_cost(org_rows, frm, now + 1, "user", "day"), "ctl --org")
    got = ctl_json(world, "usage", "report", "--provider", "openai", "--window", "1440",
                   "--now", nows, "--org", O)
    assert_eq(got, exp_report(org_rows, "openai", now - DAY, now), "ctl report --org")
    assert C["userId"] not in {u["userId"] for u in got["topUsers"]}


def test_ctl_tables(world):
    dd, nows = world["gw"].data_dir, ms_iso(world["now"])
    p = ctl(dd, "usage", "report", "--provider", "openai", "--window", "1440", "--now", nows)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["PROVIDER", "WINDOW_START", "WINDOW_END", "EVENTS", "ALLOWED",
                                "DENIED", "TOKENS", "USERS"], p.stdout
    api = get_json(world["gw"], f"{AN}/report?provider=openai&windowMinutes=1440",
                   admin_h(world))
    assert lines[1].split() == ["openai", api["windowStart"], api["windowEnd"],
                                str(api["totalEvents"]), str(api["allowedEvents"]),
                                str(api["deniedEvents"]), str(api["totalTokens"]),
                                str(api["uniqueUsers"])], p.stdout
    assert len(lines[0]) == len(lines[1]), p.stdout      # aligned
    assert "top users:" in lines, p.stdout
    p = ctl(dd, "usage", "cost", "--group-by", "model", "--bucket", "hour", "--now", nows)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[1].split() == ["BUCKET", "GROUP", "COST_MICROS", "REQUESTS", "TOKENS"]
    api = get_json(world["gw"], f"{AN}/cost?groupBy=model&bucket=hour", admin_h(world))
    rows = [ln.split() for ln in lines[2:]]
    assert rows[-1][0] == "total" and int(rows[-1][1]) == api["totalCostMicros"], rows
    assert len(rows) == api["count"] + 1, (rows, api)
    for row, item in zip(rows, api["items"]):
        assert row == [item["bucketStart"], item["group"] or "-", str(item["costMicros"]),
                       str(item["requests"]), str(item["totalTokens"])], (row, item)
    p = ctl(dd, "usage", "anomalies", "--provider", "gemini", "--window", "10", "--baselines",
            "2", "--now", nows)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0].split()[:4] == ["PROVIDER", "WINDOW_START", "WINDOW_END",
                                                    "BASELINES"], p.stdout
    assert "3.00" in p.stdout and "yes" in p.stdout, p.stdout
    p = ctl(dd, "usage", "top", "--provider", "openai", "--window", "1440", "--now", nows)
    assert p.returncode == 0 and p.stdout.split()[:4] == ["RANK", "USER", "TOKENS", "EVENTS"]


@pytest.mark.parametrize("args,rc,msg", [
    (("usage", "report"), EX_USAGE, "--provider is required"),
    (("usage", "report", "--provider", "openai", "--window", "x"), EX_USAGE,
     "--window must be an integer"),
    (("usage", "report", "--provider", "openai", "--from", "1"), EX_USAGE,
     "--from and --to go together"),
    (("usage", "report", "--provider", "openai", "--from", "5", "--to", "5"), EX_USAGE,
     "--from must be before --to"),
    (("usage", "top", "--provider", "openai", "--limit", "6"), EX_USAGE, "--limit must be 1-5"),
    (("usage", "anomalies", "--provider", "openai", "--threshold", "nan"), EX_USAGE,
     "--threshold must be a number"),
    (("usage", "anomalies", "--provider", "openai", "--from", "1"), EX_USAGE,
     "unknown option"),
    (("usage", "cost", "--group-by", "team"), EX_USAGE, "--group-by must be one of"),
    (("usage", "cost", "--bucket", "week"), EX_USAGE, "--bucket must be one of"),
    (("usage", "cost", "--from", "tomorrow"), EX_USAGE, "--from must be an ISO-8601"),
    (("usage", "cost", "--provider", "a b"), EX_USAGE, "invalid provider"),
    (("usage", "cost", "--user", "x", "--org", "y"), EX_USAGE, "not both"),
    (("usage", "cost", "--user", "nobody-here"), 1, "no such user 'nobody-here'"),
    (("usage", "cost", "--org", "no-such-org"), 1, "no such org"),
    (("analytics", "rebuild", "extra"), EX_USAGE, "unexpected argument"),
])
def test_ctl_bad_arguments(world, args, rc, msg):
    p = ctl(world["gw"].data_dir, *args)
    assert p.returncode == rc, (p.returncode, p.stderr)
    assert msg in p.stderr, p.stderr


def test_ctl_without_analytics_db(tmp_path):
    for args in (("usage", "report", "--provider", "openai"), ("usage", "cost"),
                 ("usage", "top", "--provider", "openai"),
                 ("usage", "anomalies", "--provider", "openai")):
        p = ctl(str(tmp_path), *args)
        assert p.returncode == EX_NOINPUT and "no analytics database" in p.stderr, p.stderr


# ---- rebuild (last in the module: it stops and restarts the gateway) ----

def snapshot(gw, h, now):
    """Every answer the rebuild must reproduce."""
    out = {}
    for provider in ("openai", "gemini", "qwen"):
        out[f"report {provider}"] = get_json(
            gw, f"{AN}/report?provider={provider}&windowMinutes=1440", h)
        out[f"usage {provider}"] = get_json(gw, f"{AN}/usage?provider={provider}&limit=200", h)
        out[f"anomalies {provider}"] = get_json(
            gw, f"{AN}/anomalies?provider={provider}&windowMinutes=10&baselineWindows=2", h)
    frm = ms_iso(iso_to_ms(T0) - HOUR)
    for group in GROUPS:
        for bucket in BUCKETS:
            out[f"cost {group} {bucket}"] = get_json(
                gw, f"{AN}/cost?from={frm}&to={ms_iso(now + 1)}&groupBy={group}"
                    f"&bucket={bucket}", h)
    return out


def analytics_rows(data_dir):
    # not mode=ro: after a SIGKILL the first reader may have to recover the WAL index
    c = sqlite3.connect(f"{data_dir}/analytics.db", timeout=10)
    try:
        days = [r[0] for r in c.execute("SELECT day FROM days ORDER BY day")]
        facts = []
        for d in days:
            facts += [r[0] for r in c.execute(f"SELECT event_id FROM usage_{d}")]
        roll = c.execute("SELECT count(*), coalesce(sum(requests), 0), "
                         "coalesce(sum(total), 0), coalesce(sum(cost_micros), 0) "
                         "FROM rollup_minute").fetchone()
        off = c.execute("SELECT next_offset FROM consumer_offsets WHERE consumer = "
                        "'analytics' AND topic = 'token-usage'").fetchall()
        return days, facts, roll, (off[0][0] if off else None)
    finally:
        c.close()


def test_zz_rebuild(world, stubs):
    gw, h, now = world["gw"], admin_h(world), world["now"]
    before = snapshot(gw, h, now)
    ctl_before = {p: ctl_json(world, "usage", "report", "--provider", p, "--window", "1440",
                              "--now", ms_iso(now)) for p in ("openai", "gemini", "qwen")}
    # refused while leakyd holds the log
    p = ctl(gw.data_dir, "analytics", "rebuild")
    assert p.returncode == EX_TEMPFAIL and "leakyd is running" in p.stderr, p.stderr
    days0, facts0, roll0, off0 = analytics_rows(gw.data_dir)
    gw.stop()
    p = ctl(gw.data_dir, "analytics", "rebuild")
    assert p.returncode == 0, p.stderr
    n = len(world["events"])
    assert f"ingested {n} events from topic token-usage (duplicates 0, bad 0" in p.stdout, \
        p.stdout
    assert f"next offset {n}" in p.stdout, p.stdout
    days1, facts1, roll1, off1 = analytics_rows(gw.data_dir)
    assert (days1, sorted(facts1), off1) == (days0, sorted(facts0), off0)
    assert sorted(facts1) == sorted(e["eventId"] for e in world["events"])
    assert roll1[1:] == roll0[1:], (roll0, roll1)       # the same sums (rows may group
    #                                                     differently: one batch now)
    # offline, the CLI answers as before
    for prov, want in ctl_before.items():
        assert ctl_json(world, "usage", "report", "--provider", prov, "--window", "1440",
                        "--now", ms_iso(now)) == want
    # and leakyd, restarted on the rebuilt file, answers as before, adding
    # nothing (the offset was rebuilt with the rows)
    gw2 = gateway(world["tmp"], stubs.port, "gw2").start()
    world["gw"] = gw2
    set_clock(gw2, ms_iso(now))
    adm = admin_identity(gw2)
    caught_up(gw2, adm["h"])
    after = snapshot(gw2, adm["h"], now)
    for k in before:
        assert after[k] == before[k], k
    m = parse_metrics(gw2.get("/metrics").text)
    assert metric(m, "leaky_analytics_events_total", outcome="duplicate") == 0


# ========================================================== crash ====

def test_sigkill_mid_ingest_counts_everything_once(tmp_path, stubs):
    """kill -9 while a consume load is being ingested (one event per
    transaction: the ingest is busy all the time), restart, catch up: every
    event once; then the offset set back to 0 (replay all): still once."""
    extra = {"analytics": {"ingest_batch": 1, "ingest_poll_ms": 1},
             "limits": {"token_capacity": 10**9, "token_rate": 10**9}}
    first = gateway(tmp_path, stubs.port, "first", **extra).start()
    second = third = crowd = None
    try:
        set_clock(first, "2030-03-01T23:59:00.000Z")
        adm = admin_identity(first)
        u = new_user(first)
        grant(first, adm["h"], 10**9, user=u["userId"])
        crowd = Crowd(first, 8, {"userId": u["userId"], "provider": "openai", "tokens": 3},
                      u["h"]).start()

        def ingesting():
            m = parse_metrics(first.get("/metrics").text)
            return (metric(m, "leaky_analytics_events_total", outcome="ingested") or 0) >= 200
        wait_until(ingesting, "200 events ingested", deadline_s=60)
        first.signal(signal.SIGKILL)
        assert first.wait_exit() == -signal.SIGKILL
        crowd.stop()
        crowd.join()
        crowd = None
        _, facts, _, off = analytics_rows(first.data_dir)
        print(f"killed with {len(facts)} facts stored, offset {off}")
        assert len(facts) == len(set(facts)) == off

        second = gateway(tmp_path, stubs.port, "second", **extra).start()
        set_clock(second, "2030-03-02T00:01:00.000Z")
        adm = admin_identity(second)
        caught_up(second, adm["h"])
        evs = log_events(second.data_dir)
        check_all_once(second, adm["h"], evs)
        second.stop()

        # a replay of everything: the stored offset back to 0
        c = sqlite3.connect(f"{second.data_dir}/analytics.db", timeout=10)
        with c:
            c.execute("UPDATE consumer_offsets SET next_offset = 0 WHERE consumer = "
                      "'analytics' AND topic = 'token-usage'")
        c.close()
        third = gateway(tmp_path, stubs.port, "third", **extra).start()
        set_clock(third, "2030-03-02T00:01:00.000Z")
        adm = admin_identity(third)
        caught_up(third, adm["h"])
        m = parse_metrics(third.get("/metrics").text)
        assert metric(m, "leaky_analytics_events_total", outcome="duplicate") == len(evs)
        assert metric(m, "leaky_analytics_events_total", outcome="ingested") == 0
        check_all_once(third, adm["h"], log_events(third.data_dir))
        third.stop()
    finally:
        if crowd:
            crowd.stop()
            crowd.join()
        for g in (first, second, third):
            if g and g.running:
                g.stop()


def check_all_once(gw, h, evs):
    _, facts, roll, off = analytics_rows(gw.data_dir)
    assert sorted(facts) == sorted(e["eventId"] for e in evs)
    assert off == len(evs)
    assert roll[1:] == (len(evs), sum(tot(e) for e in evs), sum(e["costMicros"] for e in evs))
    now = clock_ms(gw)
    frm = iso_to_ms("2030-03-01T00:00:00.000Z")
    for bucket in BUCKETS:
        got = get_json(gw, cost_q(frm, now, "user", bucket), h)
        assert_eq(got, exp_cost(evs, frm, now, "user", bucket), f"cost after restart {bucket}")
    got = get_json(gw, f"{AN}/report?provider=openai&windowMinutes=1440", h)
    assert_eq(got, exp_report(evs, "openai", now - DAY, now), "report after restart")
