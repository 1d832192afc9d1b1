"""Lifecycle: SIGHUP reload, graceful shutdown with a request in flight,
readiness while storage is still opening."""

import os
import re
import signal
import sqlite3
import threading
import time

import pytest

from conftest import (LEAKYCTL, assert_error_body, metric, parse_metrics, render_config,
                      merge, run)

CLOCK = "/admin/v1/clock"
SLEEP = "/admin/v1/debug/sleep"


def post_size(srv, n):
    """POST a JSON body of exactly n bytes to the clock (manual clock off:
    403 once past the body checks)."""
    head = b'{"advanceMs": 1, "pad": "'
    body = head + b"p" * (n - len(head) - 2) + b'"}'
    assert len(body) == n
    return srv.post_json(CLOCK, raw=body)


def wait_metric(srv, name, value, deadline_s=10, **labels):
    deadline = time.monotonic() + deadline_s
    while True:
        _, m = srv.metrics()
        if metric(m, name, **labels) == value:
            return m
        assert time.monotonic() < deadline, f"{name}{labels} never reached {value}"
        time.sleep(0.02)


def rewrite(srv, over):
    srv.config = merge(srv.config, over)
    with open(srv.config_path, "w") as f:
        f.write(render_config(srv.config))


# ---- SIGHUP ----

def test_sighup_reload_applies_reloadable_keys(leakyd_factory):
    srv = leakyd_factory({"http": {"max_body": "2K", "threads": 16}})
    assert post_size(srv, 3000).status == 413
    rewrite(srv, {"http": {"max_body": "4K", "threads": 32}, "log": {"level": "warn"}})
    srv.signal(signal.SIGHUP)
    wait_metric(srv, "leaky_config_reloads_total", 1, outcome="ok")
    recs = srv.records()
    msgs = [(r["level"], r["msg"]) for r in recs]
    assert ("info", "reload: [http] max_body changed from '2K' to '4K'") in msgs, msgs
    assert ("info", "reload: [log] level changed from 'info' to 'warn'") in msgs, msgs
    assert ("warn", "reload: [http] threads changed from '16' to '32' but needs a restart; "
                    "keeping '16'") in msgs, msgs
    # The new limit is enforced ...
    assert post_size(srv, 3000).status == 403
    r = post_size(srv, 4097)
    assert_error_body(r, 413, CLOCK, "limit of 4096 bytes")
    # ... and the new level: no more info lines (access log included).
    n_before = len(srv.records())
    for _ in range(3):
        assert srv.get("/healthz").status == 200
    srv.stop()
    after = srv.records()[n_before:]
    assert all(r["level"] in ("warn", "error") for r in after), after


def test_sighup_broken_file_keeps_old_config(leakyd_factory):
    srv = leakyd_factory({"http": {"max_body": "2K"}}, expect_errors=True)
    good = srv.config
    with open(srv.config_path, "w") as f:
        f.write("[http]\nmax_body = 8K\nthreads = many\n")
    srv.signal(signal.SIGHUP)
    wait_metric(srv, "leaky_config_reloads_total", 1, outcome="error")
    err = srv.wait_log(lambda r: r["level"] == "error" and "reload failed" in r["msg"],
                       "the reload error")
    assert f"{srv.config_path}:3:" in err["msg"], err
    assert "configuration unchanged" in err["msg"]
    # Still serving, with the old limit (8K was not applied).
    assert srv.get("/readyz").status == 200
    assert post_size(srv, 3000).status == 413
    # A later good reload works and is counted separately.
    with open(srv.config_path, "w") as f:
        f.write(render_config(merge(good, {"http": {"max_body": "8K"}})))
    srv.signal(signal.SIGHUP)
    m = wait_metric(srv, "leaky_config_reloads_total", 1, outcome="ok")
    assert metric(m, "leaky_config_reloads_total", outcome="error") == 1
    assert post_size(srv, 3000).status == 403
    srv.wait_log(lambda r: r["msg"] == "reload: configuration reloaded (1 change)",
                 "the reload summary")
    srv.stop()


# ---- graceful shutdown ----

class Slow(threading.Thread):
    def __init__(self, srv, ms):
        super().__init__(daemon=True)
        self.srv, self.ms = srv, ms
        self.result = self.error = None

    def run(self):
        try:
            self.result = self.srv.request("POST", f"{SLEEP}?ms={self.ms}", timeout=60)
        except Exception as e:
            self.error = e


def wait_inflight(srv, n, deadline_s=20):
    """Poll /metrics until n requests besides the scrape are in flight, on two
    scrapes in a row (a scrape's count is dropped just after its response is
    written, so the next scrape may, rarely, still see it)."""
    deadline = time.monotonic() + deadline_s
    streak = 0
    while streak < 2:
        _, m = srv.metrics()
        streak = streak + 1 if metric(m, "leaky_http_inflight_requests") == n + 1 else 0
        assert time.monotonic() < deadline, f"never saw {n} request(s) in flight"
        if streak < 2:
            time.sleep(0.01)


def test_graceful_shutdown_with_request_in_flight(leakyd_factory):
    srv = leakyd_factory({"debug": {"test_endpoints": True}})
    slow = Slow(srv, 1500)
    slow.start()
    wait_inflight(srv, 1)
    srv.signal(signal.SIGTERM)
    # Draining: /readyz says so, new requests are refused (or, once the
    # listener is gone, cannot connect).
    saw_ready_503 = saw_new_503 = False
    deadline = time.monotonic() + 20
    while not saw_ready_503 and time.monotonic() < deadline:
        try:
            r = srv.get("/readyz")
        except OSError:
            break
        if r.status == 503:
            saw_ready_503 = True
            assert r.header("Connection") == "close"
            assert r.header("Retry-After") == "1"
            b = r.json()
            assert b["status"] == "not ready"
            assert b["reasons"] == ["shutting down"], b
        else:
            assert r.status == 200
            time.sleep(0.01)
    assert saw_ready_503, "never saw /readyz 503 while draining"
    # Probes are still answered while draining (liveness stays 200) ...
    try:
        r = srv.get("/healthz")
        assert r.status == 200
        r = srv.get("/actuator/health/readiness")
        assert r.status == 503 and r.json() == {"status": "OUT_OF_SERVICE"}
    except (ConnectionRefusedError, ConnectionResetError):
        pass
    # ... anything else is refused.
    try:
        r = srv.get("/openapi.json")
        assert_error_body(r, 503, "/openapi.json", "shutting down")
        assert r.header("Retry-After") == "1"
        assert r.header("Connection") == "close"
        saw_new_503 = True
    except (ConnectionRefusedError, ConnectionResetError):
        pass
    slow.join(30)
    assert slow.error is None, slow.error
    assert slow.result.status == 200
    assert slow.result.json() == {"sleptMs": 1500}
    assert srv.wait_exit() == 0
    recs = srv.check_log()
    msgs = [r["msg"] for r in recs]
    assert "SIGTERM: shutting down" in msgs
    # At least the sleep (a probe of ours may be in flight at that moment too).
    draining = [i for i, m in enumerate(msgs)
                if re.match(r"^draining: [12] request\(s\) in flight$", m)]
    assert len(draining) == 1, msgs
    assert msgs[-1] == "stopped"
    assert not any("still in flight" in m or "second signal" in m for m in msgs), msgs
    # The in-flight request was logged as done before "stopped", after "draining".
    done = [i for i, r in enumerate(recs) if r.get("route") == SLEEP and r.get("status") == 200]
    assert len(done) == 1
    assert draining[0] < done[0] < len(msgs) - 1
    if saw_new_503:
        assert any(r.get("route") == "/openapi.json" and r.get("status") == 503 for r in recs)
    # Connection refused after exit.
    with pytest.raises(OSError):
        srv.get("/healthz")


def test_shutdown_drain_deadline(leakyd_factory):
    srv = leakyd_factory({"http": {"drain_timeout_ms": 200}, "debug": {"test_endpoints": True}})
    slow = Slow(srv, 20000)
    slow.start()
    wait_inflight(srv, 1)
    srv.signal(signal.SIGTERM)
    assert srv.wait_exit(deadline_s=15) == 0
    slow.join(15)
    assert not slow.is_alive()
    assert slow.result is None, "the slow request should have been cut"
    msgs = [r["msg"] for r in srv.check_log()]
    assert "leaving with 1 request(s) still in flight" in msgs
    assert msgs[-1] == "stopped"


def test_shutdown_second_signal_cuts_the_wait(leakyd_factory):
    srv = leakyd_factory({"http": {"drain_timeout_ms": 60000}, "debug": {"test_endpoints": True}})
    slow = Slow(srv, 20000)
    slow.start()
    wait_inflight(srv, 1)
    srv.signal(signal.SIGINT)
    srv.wait_status("/readyz", 503)
    srv.signal(signal.SIGTERM)
    assert srv.wait_exit(deadline_s=15) == 0
    slow.join(15)
    assert slow.result is None
    msgs = [r["msg"] for r in srv.check_log()]
    assert "SIGINT: shutting down" in msgs
    assert "second signal: not waiting for in-flight requests" in msgs
    assert msgs[-1] == "stopped"


# ---- readiness while storage opens ----

def test_readyz_503_while_db_locked(leakyd_factory, tmp_path):
    data = str(tmp_path / "locked")
    p = run([LEAKYCTL, "-d", data, "init"])
    assert p.returncode == 0, p.stderr
    lock = sqlite3.connect(os.path.join(data, "leaky.db"), isolation_level=None, timeout=1)
    lock.execute("BEGIN IMMEDIATE")
    released = False
    try:
        srv = leakyd_factory({"storage": {"data_dir": data, "busy_timeout_ms": 120000}},
                             wait_ready=False)
        # Live but not ready, with reasons.
        r = srv.get("/healthz")
        assert r.status == 200
        r = srv.get("/readyz")
        assert r.status == 503
        assert r.header("Retry-After") == "1"
        b = r.json()
        assert b["status"] == "not ready"
        assert b["checks"]["storage"] == "down"
        assert b["checks"]["migrations"] == "down"
        assert "leaky.db is not open yet" in b["reasons"]
        assert "schema migrations have not finished" in b["reasons"]
        r = srv.get("/actuator/health/readiness")
        assert r.status == 503 and r.json() == {"status": "OUT_OF_SERVICE"}
        r = srv.get("/actuator/health/liveness")
        assert r.status == 200 and r.json() == {"status": "UP"}
        r = srv.get("/actuator/health")
        assert r.status == 503 and r.json()["status"] == "DOWN"
        # Still not ready a little later: it waits on the lock, it does not give up.
        assert srv.get("/readyz").status == 503
        lock.execute("ROLLBACK")
        lock.close()
        released = True
        r = srv.wait_status("/readyz", 200)
        assert r.json()["reasons"] == []
        assert srv.get("/actuator/health").json()["status"] == "UP"
    finally:
        if not released:
            lock.close()


def test_reloads_while_serving(leakyd_factory):
    """Config snapshots swapped under concurrent requests (ASan/UBSan watch
    the reference counting)."""
    srv = leakyd_factory({"http": {"max_body": "2K", "threads": 16}})
    stop = threading.Event()
    errors, counts = [], [0] * 4

    def hammer(i):
        c = srv.connection()
        try:
            while not stop.is_set():
                c.request("POST", CLOCK, body=b'{"pad": "' + b"p" * 2500 + b'"}',
                          headers={"Content-Type": "application/json"})
                r = c.getresponse()
                r.read()
                if r.status not in (403, 413):
                    errors.append(r.status)
                if r.getheader("Connection") == "close":
                    c.close()
                    c = srv.connection()
                counts[i] += 1
        except Exception as e:
            errors.append(repr(e))
        finally:
            c.close()

    ts = [threading.Thread(target=hammer, args=(i,), daemon=True) for i in range(4)]
    for t in ts:
        t.start()
    try:
        for n in range(1, 11):
            rewrite(srv, {"http": {"max_body": "4K" if n % 2 else "2K"}})
            srv.signal(signal.SIGHUP)
            wait_metric(srv, "leaky_config_reloads_total", n, outcome="ok")
    finally:
        stop.set()
        for t in ts:
            t.join(30)
    assert not errors, errors[:5]
    assert all(c > 0 for c in counts), counts
    assert post_size(srv, 3000).status == 413          # the last reload set 2K
