"""
tokens_fixture.py — helpers for test_tokens.py: the token routes (API.md §2,
§6, §7) driven over HTTP, the quota ledger read straight from leaky.db, and
a crowd of keep-alive clients for the concurrency invariants.

  new_user() / admin_identity()   {userId, token, h (the bearer header)}
  grant() / adjust()              POST /admin/v1/quotas/grant | adjust
  quota() / org_quota()           GET  /api/v1/tokens/quota[/org] (checked shape)
  consume()                       POST /api/v1/tokens/consume
  rate_headers()                  the X-RateLimit-* / RateLimit-* / RateLimit
                                  headers of a consume, parsed and checked for
                                  internal consistency
  make_org() / add_member()       an org and its members (admin API)
  clock_ms() / advance() /        the manual clock (POST /admin/v1/clock)
  set_clock()
  audit_rows()                    GET /admin/v1/audit
  ctl_check()                     leakyctl -c CONF check
  db_query()                      a read-only query on leaky.db
  Crowd                           N threads, each with its own keep-alive
                                  connection, posting one consume body until
                                  a deadline or until told to stop; counts
                                  the statuses.

Nothing here sleeps for a fixed time: waits poll with a deadline.
"""

import http.client
import json
import re
import sqlite3
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timezone

from conftest import ISO_MS_Z, LEAKYCTL, UUID_ANY, bearer, login, register, run
from stubs_fixture import ADMIN_PASSWORD

STATUS = "/api/v1/tokens/status"
QUOTA = "/api/v1/tokens/quota"
QUOTA_ORG = "/api/v1/tokens/quota/org"
CONSUME = "/api/v1/tokens/consume"
GRANT = "/admin/v1/quotas/grant"
ADJUST = "/admin/v1/quotas/adjust"
AUDIT = "/admin/v1/audit"
CLOCK = "/admin/v1/clock"
ORGS = "/admin/v1/orgs"
OPENAI_CHAT = "/openai/v1/chat/completions"

EX_DATAERR = 65

QUOTA_FIELDS = {"provider", "totalTokens", "remainingTokens", "reservedTokens", "window",
                "resetTime", "updatedAt"}
CONSUME_OK_FIELDS = {"allowed", "capacity", "used", "remaining", "waitSeconds", "timestamp",
                     "providerResponse"}
CONSUME_429_FIELDS = {"allowed", "capacity", "used", "remaining", "waitSeconds", "timestamp",
                      "retryAfterSeconds"}
PROVIDER_RESPONSE_FIELDS = {"id", "provider", "received", "created", "message"}


def iso_to_ms(s):
    d = datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return round(d.timestamp() * 1000)


# ---- identities ----

def new_user(gw):
    b, _ = register(gw)
    return {"userId": b["userId"], "token": b["token"], "h": bearer(b["token"])}


def admin_identity(gw):
    b = login(gw, "admin", ADMIN_PASSWORD)
    return {"userId": b["userId"], "token": b["token"], "h": bearer(b["token"])}


# ---- admin quota writes ----

def _change(gw, path, adm_h, body, expect):
    r = gw.post_json(path, body, headers=adm_h)
    if expect is not None:
        assert r.status == expect, (path, body, r)
    return r


def grant(gw, adm_h, tokens, *, user=None, org=None, provider="openai", reason="test grant",
          expect=200, **extra):
    """POST /admin/v1/quotas/grant; user / org are ids.  Returns the Response."""
    body = {"provider": provider, "tokens": tokens, "reason": reason}
    if user is not None:
        body["userId"] = user
    if org is not None:
        body["orgId"] = org
    body.update(extra)
    return _change(gw, GRANT, adm_h, body, expect)


def adjust(gw, adm_h, delta, *, user=None, org=None, provider="openai", reason="test adjust",
           expect=200, **extra):
    body = {"provider": provider, "delta": delta, "reason": reason}
    if user is not None:
        body["userId"] = user
    if org is not None:
        body["orgId"] = org
    body.update(extra)
    return _change(gw, ADJUST, adm_h, body, expect)


# ---- quota reads ----

def check_pool_shape(b, id_field):
    assert set(b) == QUOTA_FIELDS | {id_field}, b
    assert UUID_ANY.match(b[id_field]), b
    for k in ("totalTokens", "remainingTokens", "reservedTokens"):
        assert isinstance(b[k], int) and not isinstance(b[k], bool) and b[k] >= 0, b
    assert b["remainingTokens"] + b["reservedTokens"] <= b["totalTokens"], b
    assert b["window"] in ("none", "hour", "day", "month"), b
    if b["window"] == "none":
        assert b["resetTime"] is None, b
    else:
        assert ISO_MS_Z.match(b["resetTime"]), b
    assert ISO_MS_Z.match(b["updatedAt"]), b
    return b


def quota_resp(gw, h, user_id, provider="openai"):
    return gw.get(f"{QUOTA}?userId={user_id}&provider={provider}", headers=h)


def quota(gw, h, user_id, provider="openai"):
    """The user's pool (200 asserted, shape checked)."""
    r = quota_resp(gw, h, user_id, provider)
    assert r.status == 200, r
    b = check_pool_shape(r.json(), "userId")
    assert b["userId"] == user_id and b["provider"] == provider.lower(), b
    return b


def org_quota_resp(gw, h, org_id, provider="openai"):
    return gw.get(f"{QUOTA_ORG}?orgId={org_id}&provider={provider}", headers=h)


def org_quota(gw, h, org_id, provider="openai"):
    r = org_quota_resp(gw, h, org_id, provider)
    assert r.status == 200, r
    b = check_pool_shape(r.json(), "orgId")
    assert b["orgId"] == org_id and b["provider"] == provider.lower(), b
    return b


# ---- consume ----

def consume(gw, h, user_id, tokens, provider="openai", **extra):
    body = {"userId": user_id, "provider": provider, "tokens": tokens}
    body.update(extra)
    return gw.post_json(CONSUME, body, headers=h)


_POLICY = re.compile(r'^"([^"]+)";q=(\d+);w=(\d+)$')
_RATELIMIT = re.compile(r'^"([^"]+)";r=(\d+);t=(\d+)$')


def rate_headers(r):
    """API.md §6 on a consume answer: every header present, integers, and
    consistent with each other.  Returns {limit, remaining, used, reset,
    name, window, retry_after (None when absent)}."""
    out = {}
    for k in ("Limit", "Remaining", "Used", "Reset"):
        v = r.header(f"X-RateLimit-{k}")
        assert v is not None and re.match(r"^\d+$", v), f"X-RateLimit-{k}: {v!r} on {r}"
        out[k.lower()] = int(v)
    assert out["used"] == out["limit"] - out["remaining"], (out, r.headers)
    pol = r.header("RateLimit-Policy")
    m = _POLICY.match(pol or "")
    assert m, f"RateLimit-Policy: {pol!r} on {r}"
    out["name"], q, out["window"] = m.group(1), int(m.group(2)), int(m.group(3))
    assert q == out["limit"], (pol, out)
    rl = r.header("RateLimit")
    m = _RATELIMIT.match(rl or "")
    assert m, f"RateLimit: {rl!r} on {r}"
    assert m.group(1) == out["name"], (rl, pol)
    assert int(m.group(2)) == out["remaining"] and int(m.group(3)) == out["reset"], (rl, out)
    ra = r.header("Retry-After")
    out["retry_after"] = int(ra) if ra is not None else None
    if r.status == 429:
        assert ra is not None and re.match(r"^\d+$", ra) and int(ra) >= 1, r.headers
        assert int(ra) == max(out["reset"], 1), (ra, out)
    else:
        assert ra is None, f"Retry-After on a {r.status}: {r.headers}"
    return out


# ---- orgs ----

def make_org(gw, adm_h, name=None):
    r = gw.post_json(ORGS, {"name": name or f"org-{uuid.uuid4().hex[:10]}"}, headers=adm_h)
    assert r.status == 201, r
    return r.json()["orgId"]


def add_member(gw, adm_h, org_id, user_id, role="USER"):
    r = gw.post_json(f"{ORGS}/{org_id}/members", {"userId": user_id, "role": role},
                     headers=adm_h)
    assert r.status == 201, r


# ---- the manual clock ----

def clock_ms(gw):
    r = gw.get(CLOCK)
    assert r.status == 200, r
    b = r.json()
    assert b["manual"] is True, b
    return b["nowMs"]


def advance(gw, ms):
    before = clock_ms(gw)
    r = gw.post_json(CLOCK, {"advanceMs": ms})
    assert r.status == 200, r
    assert r.json()["nowMs"] == before + ms, r
    return before + ms


def set_clock(gw, iso):
    r = gw.post_json(CLOCK, {"set": iso})
    assert r.status == 200, r
    return r.json()["nowMs"]


# ---- audit, leakyctl, leaky.db ----

def audit_rows(gw, adm_h, action=None, target=None):
    r = gw.get(f"{AUDIT}?limit=1000", headers=adm_h)
    assert r.status == 200, r
    rows = r.json()["items"]
    return [x for x in rows if (action is None or x["action"] == action) and
            (target is None or x["target"] == target)]


def ctl_check(conf_path):
    return run([LEAKYCTL, "-c", str(conf_path), "check"])


LEDGER_OK = re.compile(r"^quota ledger: (\d+) pools?, each equal to the sum of its ledger: ok$",
                       re.M)


def assert_check_ok(conf_path, min_pools=1):
    """leakyctl check exits 0 and says the quota ledger is ok."""
    p = ctl_check(conf_path)
    assert p.returncode == 0, p.stdout + p.stderr
    m = LEDGER_OK.search(p.stdout)
    assert m, p.stdout
    assert int(m.group(1)) >= min_pools, p.stdout
    assert p.stdout.strip().endswith("check: ok"), p.stdout
    return p


def db_query(data_dir, sql, args=()):
    """Rows of a read-only query on leaky.db (fine while leakyd runs: WAL)."""
    c = sqlite3.connect(f"file:{data_dir}/leaky.db?mode=ro", uri=True, timeout=10)
    try:
        return c.execute(sql, args).fetchall()
    finally:
        c.close()


def pool_row(data_dir, owner_id, provider="openai"):
    """{total, remaining, reserved, settled_sum, settles, open_reservations} of
    one pool, straight from leaky.db."""
    rows = db_query(data_dir, "SELECT id, total, remaining, reserved FROM pools "
                              "WHERE owner_id = ? AND provider = ?", (owner_id, provider))
    assert len(rows) == 1, rows
    pid, total, remaining, reserved = rows[0]
    settled = db_query(data_dir, "SELECT count(*), coalesce(sum(amount), 0) FROM ledger "
                                 "WHERE pool_id = ? AND kind = 'settle'", (pid,))[0]
    held = db_query(data_dir, "SELECT count(*), coalesce(sum(held), 0) FROM reservations "
                              "WHERE pool_id = ?", (pid,))[0]
    return {"id": pid, "total": total, "remaining": remaining, "reserved": reserved,
            "settles": settled[0], "settled_sum": settled[1], "open": held[0],
            "held": held[1]}


# ---- a crowd of keep-alive clients ----

class Crowd:
    """n threads, each with its own keep-alive HTTPConnection, posting the
    same consume body as fast as they can until `seconds` have passed (or
    stop() is called).  After join(): statuses (Counter), errors (list of
    exception reprs), t_first (monotonic, just before the first request was
    released) and t_last (just after the last answer)."""

    def __init__(self, gw, n, body, headers, seconds=None):
        self.gw, self.n, self.seconds = gw, n, seconds
        self.raw = json.dumps(body).encode()
        self.headers = dict(headers, **{"Content-Type": "application/json"})
        self.statuses = Counter()
        self.errors = []
        self.bad = []                  # (status, body) of answers outside `expected`
        self._lock = threading.Lock()
        self._go = threading.Event()
        self._stop = threading.Event()
        self._ready = threading.Barrier(n + 1)
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(n)]
        self.t_first = self.t_last = None
        self.deadline = None

    def _run(self):
        c = http.client.HTTPConnection(self.gw.host, self.gw.port, timeout=30)
        mine = Counter()
        try:
            c.connect()
            self._ready.wait(30)
            self._go.wait(30)
            while not self._stop.is_set() and time.monotonic() < self.deadline:
                c.request("POST", CONSUME, body=self.raw, headers=self.headers)
                resp = c.getresponse()
                data = resp.read()
                mine[resp.status] += 1
                if resp.status not in (200, 402, 429):
                    with self._lock:
                        if len(self.bad) < 20:
                            self.bad.append((resp.status, data[:300]))
        except Exception as e:           # counted; the test decides whether it is expected
            with self._lock:
                self.errors.append(repr(e))
        finally:
            c.close()
            with self._lock:
                self.statuses.update(mine)

    def start(self):
        for t in self._threads:
            t.start()
        self._ready.wait(30)             # every connection is open
        self.t_first = time.monotonic()
        self.deadline = self.t_first + (self.seconds if self.seconds else 3600)
        self._go.set()
        return self

    def stop(self):
        self._stop.set()

    def join(self, timeout=120):
        for t in self._threads:
            t.join(timeout)
            assert not t.is_alive(), "a client thread did not finish"
        self.t_last = time.monotonic()
        return self

    @property
    def elapsed(self):
        return self.t_last - self.t_first


def wait_until(pred, what, deadline_s=20.0, step=0.01):
    deadline = time.monotonic() + deadline_s
    while True:
        v = pred()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(step)
