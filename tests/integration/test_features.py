"""Feature flags at runtime (issue 5, API.md §7): GET /admin/v1/features and
PUT /admin/v1/features/{feature} against a real leakyd and the stubs.

  - the shape of both answers; 401 / 403 / 404 / 400 and their messages;
  - quota-enforcement off: a consume with no pool at all is served (200) and
    no pool appears; back on: 402 "insufficient token quota";
  - rate-limiting off: a consume larger than what is left in the token bucket
    (and larger than the bucket itself) is served, without rate-limit
    headers; back on: 429 again, the bucket as it was (manual clock: nothing
    leaks meanwhile);
  - an override survives a SIGHUP reload (also one that changes [features]
    in the file: the file's value becomes the configured one, the override
    still wins), {"enabled": null} returns to the configured value, and a
    restart ends every override;
  - a [features] value from the file shows as "configured";
  - every change writes one "feature.set" audit row and one info log line
    carrying the request's correlation id; a refused change writes neither;
  - concurrent changes, reloads and consumes: the audit rows form one chain
    (each row's "previous" is the "effective" of the row before it) that
    ends in what GET shows, and every consume is a 200 or a 402.

Overrides are server-wide: tests on the shared gateway clear them on
teardown (the `flags` fixture).  Nothing here sleeps for a fixed time.
"""

import json
import signal
import threading
import time

import pytest

from conftest import Leakyd, assert_error_body, assert_unauthorized, render_config
from stubs_fixture import GATEWAY_ENV, gateway_config, start_gateway, start_stubs
from tokens_fixture import (CONSUME, admin_identity, audit_rows, consume, grant, new_user, quota,
                            quota_resp, rate_headers)

FEATURES = "/admin/v1/features"
NAMES = ("rate-limiting", "quota-enforcement", "saga-purchases")
ENTRY_FIELDS = {"name", "enabled", "configured", "override"}
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Used",
                "X-RateLimit-Reset", "RateLimit-Policy", "RateLimit", "Retry-After")

# The reference's [limits] defaults: a USER's token bucket.
USER_CAP = 1000


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    s = start_stubs(tmp_path_factory.mktemp("stubs"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, stubs):
    """The shared gateway: default config, manual clock (never moved here,
    so no bucket leaks between two requests of a test)."""
    g = start_gateway(tmp_path_factory.mktemp("gw"), stubs.port, manual_clock=True)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def adm(gw):
    return admin_identity(gw)


@pytest.fixture
def flags(gw, adm):
    """The shared gateway with no override before and after the test."""
    for n in NAMES:
        put(gw, adm["h"], n, {"enabled": None})
    yield gw
    for n in NAMES:
        put(gw, adm["h"], n, {"enabled": None})


# ---- helpers ----

def put_raw(srv, h, name, raw):
    headers = {"Content-Type": "application/json"}
    headers.update(h or {})
    return srv.request("PUT", f"{FEATURES}/{name}", body=raw, headers=headers)


def put_resp(srv, h, name, obj):
    return put_raw(srv, h, name, json.dumps(obj).encode())


def put(srv, h, name, obj, expect=200):
    r = put_resp(srv, h, name, obj)
    assert r.status == expect, (name, obj, r)
    return r.json()


def features(srv, h):
    """{name: entry} from GET /admin/v1/features (shape checked)."""
    r = srv.get(FEATURES, headers=h)
    assert r.status == 200, r
    assert r.header("Content-Type") == "application/json", r.header("Content-Type")
    b = r.json()
    assert set(b) == {"features"}, b
    assert [e["name"] for e in b["features"]] == list(NAMES), b
    out = {}
    for e in b["features"]:
        check_entry(e)
        out[e["name"]] = e
    return out


def check_entry(e):
    assert set(e) == ENTRY_FIELDS, e
    assert isinstance(e["enabled"], bool) and isinstance(e["configured"], bool), e
    assert e["override"] in (True, False, None), e
    # effective = the override, else the configured value
    assert e["enabled"] == (e["configured"] if e["override"] is None else e["override"]), e
    return e


def entry(name, enabled, configured, override):
    return {"name": name, "enabled": enabled, "configured": configured, "override": override}


def stub_calls(stubs):
    return len(stubs.requests("/openai/v1/chat/completions"))


def reloads_done(srv):
    return sum(1 for r in srv._records_lenient()
               if r.get("msg", "").startswith("reload: configuration reloaded"))


def sighup(srv, deadline_s=20.0):
    """SIGHUP, then wait until the log shows the reload finished."""
    before = reloads_done(srv)
    srv.signal(signal.SIGHUP)
    deadline = time.monotonic() + deadline_s
    while reloads_done(srv) <= before:
        assert srv.running, f"leakyd exited during the reload:\n{srv.log_text()}"
        assert time.monotonic() < deadline, f"the reload never finished:\n{srv.log_text()}"
        time.sleep(0.02)


def rewrite_config(srv, extra):
    """Write srv's config file again with `extra` sections merged in."""
    for sec, keys in extra.items():
        srv.config.setdefault(sec, {}).update(keys)
    with open(srv.config_path, "w") as f:
        f.write(render_config(srv.config))


def no_rate_headers(r):
    present = {k: r.header(k) for k in RATE_HEADERS if r.header(k) is not None}
    assert not present, f"rate-limit headers without rate limiting: {present}"


# ================================================================ reads ====

def test_get_shape_defaults(flags, adm):
    f = features(flags, adm["h"])
    assert f == {n: entry(n, True, True, None) for n in NAMES}, f
    r = flags.get(FEATURES, headers=adm["h"])
    assert r.header("Cache-Control") == "no-store"


def test_requires_admin(flags, adm):
    assert_unauthorized(flags.get(FEATURES), FEATURES)
    path = f"{FEATURES}/quota-enforcement"
    assert_unauthorized(put_resp(flags, None, "quota-enforcement", {"enabled": False}), path)
    u = new_user(flags)
    r = flags.get(FEATURES, headers=u["h"])
    assert assert_error_body(r, 403, FEATURES)["message"] == "admin role required"
    r = put_resp(flags, u["h"], "quota-enforcement", {"enabled": False})
    assert assert_error_body(r, 403, path)["message"] == "admin role required"
    # a refusal changed nothing and audited nothing
    assert features(flags, adm["h"])["quota-enforcement"]["override"] is None
    assert not [x for x in audit_rows(flags, adm["h"], "feature.set") if x["actor"] == u["userId"]]


@pytest.mark.parametrize("name", ["nosuch", "Quota-Enforcement", "RATE-LIMITING", "quota",
                                  "quota-enforcement-", "ratelimiting", "rate_limiting_"])
def test_unknown_feature_is_404(flags, adm, name):
    before = len(audit_rows(flags, adm["h"], "feature.set"))
    r = put_resp(flags, adm["h"], name, {"enabled": False})
    assert assert_error_body(r, 404, f"{FEATURES}/{name}")["message"] == "unknown feature"
    assert len(audit_rows(flags, adm["h"], "feature.set")) == before


@pytest.mark.parametrize("raw", [b"{}", b'{"enable":true}', b'{"enabled":"true"}',
                                 b'{"enabled":1}', b'{"enabled":0}', b'{"enabled":[]}',
                                 b'{"enabled":{}}', b"[true]", b"true", b"null"],
                         ids=lambda b: b.decode())
def test_bad_body_is_400(flags, adm, raw):
    before = len(audit_rows(flags, adm["h"], "feature.set"))
    r = put_raw(flags, adm["h"], "quota-enforcement", raw)
    b = assert_error_body(r, 400, f"{FEATURES}/quota-enforcement")
    assert b["message"] == "enabled must be true, false or null", b
    assert features(flags, adm["h"])["quota-enforcement"] == \
        entry("quota-enforcement", True, True, None)
    assert len(audit_rows(flags, adm["h"], "feature.set")) == before


def test_malformed_json_is_400(flags, adm):
    r = put_raw(flags, adm["h"], "quota-enforcement", b'{"enabled":')
    assert r.status == 400, r
    assert features(flags, adm["h"])["quota-enforcement"]["override"] is None


# ====================================================== quota-enforcement ====

def test_quota_enforcement_toggle(flags, adm, stubs):
    gw = flags
    u = new_user(gw)
    uid = u["userId"]
    r = consume(gw, u["h"], uid, 10)                       # no pool at all
    assert assert_error_body(r, 402, CONSUME)["message"] == "insufficient token quota"

    b = put(gw, adm["h"], "quota-enforcement", {"enabled": False})
    assert b == entry("quota-enforcement", False, True, False), b
    assert features(gw, adm["h"])["quota-enforcement"] == b
    calls = stub_calls(stubs)
    r = consume(gw, u["h"], uid, 10)
    assert r.status == 200, r
    assert r.json()["allowed"] is True and r.json()["providerResponse"]["provider"] == "openai"
    assert stub_calls(stubs) == calls + 1                  # the provider was called
    assert quota_resp(gw, u["h"], uid).status == 404       # and no pool was made or charged

    b = put(gw, adm["h"], "quota-enforcement", {"enabled": True})
    assert b == entry("quota-enforcement", True, True, True), b
    r = consume(gw, u["h"], uid, 10)
    assert assert_error_body(r, 402, CONSUME)["message"] == "insufficient token quota"

    # off again, then null: back to the configured value (on)
    put(gw, adm["h"], "quota-enforcement", {"enabled": False})
    assert consume(gw, u["h"], uid, 10).status == 200
    b = put(gw, adm["h"], "quota-enforcement", {"enabled": None})
    assert b == entry("quota-enforcement", True, True, None), b
    assert features(gw, adm["h"])["quota-enforcement"] == b
    r = consume(gw, u["h"], uid, 10)
    assert assert_error_body(r, 402, CONSUME)["message"] == "insufficient token quota"
    # the other feature was never touched
    assert features(gw, adm["h"])["rate-limiting"] == entry("rate-limiting", True, True, None)


def test_config_key_spelling_is_accepted(flags, adm):
    b = put(flags, adm["h"], "quota_enforcement", {"enabled": False})
    assert b == entry("quota-enforcement", False, True, False), b
    b = put(flags, adm["h"], "rate_limiting", {"enabled": False})
    assert b == entry("rate-limiting", False, True, False), b
    b = put(flags, adm["h"], "saga_purchases", {"enabled": False})
    assert b == entry("saga-purchases", False, True, False), b
    assert features(flags, adm["h"]) == {n: entry(n, False, True, False) for n in NAMES}


# ========================================================== rate-limiting ====

def test_rate_limiting_toggle(flags, adm, stubs):
    gw = flags
    u = new_user(gw)
    uid = u["userId"]
    grant(gw, adm["h"], 100_000, user=uid)
    r = consume(gw, u["h"], uid, USER_CAP)                 # the whole bucket
    assert r.status == 200 and r.json()["remaining"] == 0, r
    r = consume(gw, u["h"], uid, 500)
    assert r.status == 429, r
    assert rate_headers(r)["remaining"] == 0

    b = put(gw, adm["h"], "rate-limiting", {"enabled": False})
    assert b == entry("rate-limiting", False, True, False), b
    calls = stub_calls(stubs)
    r = consume(gw, u["h"], uid, 500)                      # more than is left: served
    assert r.status == 200, r
    body = r.json()
    assert body["allowed"] is True and body["waitSeconds"] == 0, body
    # no bucket was consulted: the body has no bucket to report, and no
    # rate-limit header is sent
    assert (body["capacity"], body["used"], body["remaining"]) == (0, 0, 0), body
    no_rate_headers(r)
    r = consume(gw, u["h"], uid, 5 * USER_CAP)             # more than the bucket itself
    assert r.status == 200, r
    no_rate_headers(r)
    assert stub_calls(stubs) == calls + 2
    # quotas still apply while rate limiting is off
    assert quota(gw, u["h"], uid)["remainingTokens"] == 100_000 - USER_CAP - 500 - 5 * USER_CAP

    b = put(gw, adm["h"], "rate-limiting", {"enabled": True})
    assert b == entry("rate-limiting", True, True, True), b
    r = consume(gw, u["h"], uid, 500)
    assert r.status == 429, r
    h = rate_headers(r)              # the bucket as it was: nothing was charged meanwhile
    assert (h["name"], h["limit"], h["remaining"]) == ("tokens-openai", USER_CAP, 0), h
    r = consume(gw, u["h"], uid, 5 * USER_CAP)
    assert assert_error_body(r, 400, CONSUME)["message"] == "tokens exceed bucket capacity"

    b = put(gw, adm["h"], "rate-limiting", {"enabled": None})
    assert b == entry("rate-limiting", True, True, None), b
    assert consume(gw, u["h"], uid, 500).status == 429


# ================================================================ audit ====

def test_audit_rows_and_log(flags, adm):
    gw = flags
    rows0 = audit_rows(gw, adm["h"], "feature.set", "quota-enforcement")

    r = put_resp(gw, adm["h"], "quota-enforcement", {"enabled": False})
    assert r.status == 200, r
    rows = audit_rows(gw, adm["h"], "feature.set", "quota-enforcement")
    assert len(rows) == len(rows0) + 1, rows
    row = rows[0]                                          # newest first
    assert row["actor"] == adm["userId"], row
    assert row["detail"] == {"name": "quota-enforcement", "enabled": False, "effective": False,
                             "previous": True}, row
    # one info line for the change, with the request's correlation id
    cid = r.header("X-Correlation-Id")
    rec = gw.wait_log(lambda x: x.get("correlationId") == cid and x.get("feature") ==
                      "quota-enforcement", "the feature change")
    assert rec["level"] == "info", rec
    assert "turned off" in rec["msg"] and adm["userId"] in rec["msg"], rec

    # setting the same value again is still a change request: audited, previous False
    put(gw, adm["h"], "quota-enforcement", {"enabled": False})
    put(gw, adm["h"], "quota-enforcement", {"enabled": None})
    rows = audit_rows(gw, adm["h"], "feature.set", "quota-enforcement")
    assert len(rows) == len(rows0) + 3, rows
    assert rows[1]["detail"] == {"name": "quota-enforcement", "enabled": False,
                                 "effective": False, "previous": False}, rows[1]
    assert rows[0]["detail"] == {"name": "quota-enforcement", "enabled": None,
                                 "effective": True, "previous": False}, rows[0]


# ==================================================== file, reload, restart ====

def test_configured_value_from_the_file(leakyd_factory, stubs):
    srv = leakyd_factory(gateway_config(stubs.port, manual_clock=True,
                                        extra={"features": {"quota_enforcement": False}}),
                         env=GATEWAY_ENV)
    a = admin_identity(srv)
    f = features(srv, a["h"])
    assert f["quota-enforcement"] == entry("quota-enforcement", False, False, None), f
    assert f["rate-limiting"] == entry("rate-limiting", True, True, None), f
    u = new_user(srv)
    assert consume(srv, u["h"], u["userId"], 10).status == 200     # no pool needed
    b = put(srv, a["h"], "quota-enforcement", {"enabled": True})
    assert b == entry("quota-enforcement", True, False, True), b
    r = consume(srv, u["h"], u["userId"], 10)
    assert assert_error_body(r, 402, CONSUME)["message"] == "insufficient token quota"
    b = put(srv, a["h"], "quota-enforcement", {"enabled": None})
    assert b == entry("quota-enforcement", False, False, None), b
    assert consume(srv, u["h"], u["userId"], 10).status == 200


def test_override_survives_reload(leakyd_factory, stubs):
    srv = leakyd_factory(gateway_config(stubs.port, manual_clock=True), env=GATEWAY_ENV)
    a = admin_identity(srv)
    u = new_user(srv)
    uid = u["userId"]
    assert consume(srv, u["h"], uid, 10).status == 402
    put(srv, a["h"], "quota-enforcement", {"enabled": False})
    assert consume(srv, u["h"], uid, 10).status == 200

    # a reload of the same file keeps the override, and does not report it
    # as a change of the file
    sighup(srv)
    last = [r["msg"] for r in srv._records_lenient()
            if r.get("msg", "").startswith("reload: configuration reloaded")][-1]
    assert last == "reload: configuration reloaded (0 changes)", last
    assert not any("[features]" in r.get("msg", "") for r in srv._records_lenient()), \
        "an override was logged as a [features] change"
    f = features(srv, a["h"])
    assert f["quota-enforcement"] == entry("quota-enforcement", False, True, False), f
    assert f["rate-limiting"] == entry("rate-limiting", True, True, None), f
    assert consume(srv, u["h"], uid, 10).status == 200

    # a reload that changes [features]: the file's values become the
    # configured ones; an override still wins, a feature without one follows
    put(srv, a["h"], "rate-limiting", {"enabled": True})
    rewrite_config(srv, {"features": {"quota_enforcement": True, "rate_limiting": False}})
    sighup(srv)
    f = features(srv, a["h"])
    assert f["quota-enforcement"] == entry("quota-enforcement", False, True, False), f
    assert f["rate-limiting"] == entry("rate-limiting", True, False, True), f
    assert consume(srv, u["h"], uid, 10).status == 200
    r = consume(srv, u["h"], uid, 2 * USER_CAP)            # rate limiting: still on
    assert assert_error_body(r, 400, CONSUME)["message"] == "tokens exceed bucket capacity"

    # null: back to what the reloaded file says
    b = put(srv, a["h"], "quota-enforcement", {"enabled": None})
    assert b == entry("quota-enforcement", True, True, None), b
    r = consume(srv, u["h"], uid, 10)
    assert assert_error_body(r, 402, CONSUME)["message"] == "insufficient token quota"
    b = put(srv, a["h"], "rate-limiting", {"enabled": None})
    assert b == entry("rate-limiting", False, False, None), b
    put(srv, a["h"], "quota-enforcement", {"enabled": False})
    r = consume(srv, u["h"], uid, 2 * USER_CAP)            # no bucket any more
    assert r.status == 200, r
    no_rate_headers(r)


def test_restart_ends_overrides(leakyd_factory, stubs):
    cfg = gateway_config(stubs.port, manual_clock=True)
    srv = leakyd_factory(cfg, env=GATEWAY_ENV)
    a = admin_identity(srv)
    put(srv, a["h"], "quota-enforcement", {"enabled": False})
    put(srv, a["h"], "rate-limiting", {"enabled": False})
    put(srv, a["h"], "saga-purchases", {"enabled": False})
    assert features(srv, a["h"]) == {n: entry(n, False, True, False) for n in NAMES}
    srv.stop()
    # the same data directory and config, a new process
    again = Leakyd(srv.tmp, cfg, env=GATEWAY_ENV, name="restarted")
    assert again.data_dir == srv.data_dir
    again.start()
    try:
        a = admin_identity(again)
        assert features(again, a["h"]) == {n: entry(n, True, True, None) for n in NAMES}
        # the audit rows of the first run are still there
        rows = audit_rows(again, a["h"], "feature.set")
        assert {x["target"] for x in rows} == set(NAMES), rows
        u = new_user(again)
        r = consume(again, u["h"], u["userId"], 10)
        assert assert_error_body(r, 402, CONSUME)["message"] == "insufficient token quota"
    finally:
        again.stop()


def test_concurrent_changes_reloads_and_consumes(leakyd_factory, stubs):
    srv = leakyd_factory(gateway_config(stubs.port, manual_clock=True), env=GATEWAY_ENV)
    a = admin_identity(srv)
    users = [new_user(srv) for _ in range(2)]
    statuses, errors, ok_puts = [], [], []
    lock = threading.Lock()
    stop = threading.Event()

    def toggler(i):
        try:
            for k in range(20):
                value = [True, False, None][(i + k) % 3]
                r = put_resp(srv, a["h"], "quota-enforcement", {"enabled": value})
                assert r.status == 200, r
                check_entry(r.json())
                with lock:
                    ok_puts.append(value)
        except Exception as e:          # reported below
            with lock:
                errors.append(repr(e))

    def consumer(u):
        try:
            while not stop.is_set():
                r = consume(srv, u["h"], u["userId"], 1)
                with lock:
                    statuses.append(r.status)
        except Exception as e:
            with lock:
                errors.append(repr(e))

    togglers = [threading.Thread(target=toggler, args=(i,), daemon=True) for i in range(4)]
    consumers = [threading.Thread(target=consumer, args=(u,), daemon=True) for u in users]
    for t in togglers + consumers:
        t.start()
    for _ in range(3):
        sighup(srv)
    for t in togglers:
        t.join(120)
        assert not t.is_alive()
    stop.set()
    for t in consumers:
        t.join(120)
        assert not t.is_alive()
    assert not errors, errors
    assert len(ok_puts) == 80
    assert statuses and set(statuses) <= {200, 402}, set(statuses)

    rows = audit_rows(srv, a["h"], "feature.set", "quota-enforcement")
    assert len(rows) == 80, len(rows)
    chain = sorted(rows, key=lambda x: x["id"])
    assert chain[0]["detail"]["previous"] is True, chain[0]
    for prev, row in zip(chain, chain[1:]):
        assert row["detail"]["previous"] == prev["detail"]["effective"], (prev, row)
    for row in chain:
        d = row["detail"]
        assert d["effective"] == (True if d["enabled"] is None else d["enabled"]), row
    last = chain[-1]["detail"]
    f = features(srv, a["h"])["quota-enforcement"]
    assert (f["enabled"], f["override"]) == (last["effective"], last["enabled"]), (f, last)
    assert f["configured"] is True, f
