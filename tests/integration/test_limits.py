"""The in-flight limit (503 + Retry-After) and more connections than threads."""

import threading
import time

from conftest import assert_common_headers, assert_error_body, metric, parse_metrics

SLEEP = "/admin/v1/debug/sleep"


class Holder(threading.Thread):
    """POST /admin/v1/debug/sleep?ms=... until it is admitted (a request that
    races the poller may itself be refused; it then tries again)."""

    def __init__(self, srv, ms):
        super().__init__(daemon=True)
        self.srv, self.ms = srv, ms
        self.result = None
        self.error = None

    def run(self):
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                r = self.srv.request("POST", f"{SLEEP}?ms={self.ms}", timeout=60)
                if r.status != 503:
                    self.result = r
                    return
            self.error = "never admitted"
        except Exception as e:       # reported by the test
            self.error = repr(e)


def test_inflight_limit_503_retry_after(leakyd_factory):
    srv = leakyd_factory({"http": {"max_inflight": 1, "threads": 4},
                          "debug": {"test_endpoints": True}})
    # Idle: the scrape is the only request in flight.
    srv.assert_idle()
    holder = Holder(srv, 3000)
    holder.start()
    # Poll /metrics: 200 (the scrape was admitted alone) until the sleep is
    # in flight, after which the scrape itself is over the limit.  An
    # admitted scrape may see 2 in flight: a sleep request that arrived
    # while it ran and is being refused.
    # (The previous scrape's count is dropped just after its response is
    # written, so a 503 is confirmed by a second request.)
    deadline = time.monotonic() + 20
    while True:
        r = srv.get("/metrics")
        if r.status == 503:
            # Another request while the sleep holds the only slot.
            r = srv.get("/healthz")
            if r.status == 503:
                break
        assert r.status == 200
        assert time.monotonic() < deadline, "the sleep request never got in flight"
        time.sleep(0.01)
    assert_common_headers(r)
    b = assert_error_body(r, 503, "/healthz", "in-flight request limit")
    assert r.header("Retry-After") == "1"
    # ... whatever the route, known or not.
    assert srv.get("/no/such").status == 503
    holder.join(30)
    assert holder.error is None, holder.error
    assert holder.result.status == 200
    assert holder.result.json() == {"sleptMs": 3000}
    # Free again, and the refusals were counted.
    _, m = srv.assert_idle()
    srv.wait_status("/healthz", 200, deadline_s=5)
    assert metric(m, "leaky_http_rejected_total", reason="inflight") >= 3
    refused = sum(v for (name, labels), v in m.items()
                  if name == "leaky_http_requests_total" and ("status", "503") in labels)
    assert refused >= 3
    assert metric(m, "leaky_http_requests_total", route="/healthz", method="GET",
                  status="503") >= 1
    assert metric(m, "leaky_http_requests_total", route="unmatched", method="GET",
                  status="503") == 1


def test_more_connections_than_threads(leakyd_factory):
    threads = 4
    srv = leakyd_factory({"http": {"threads": threads, "keep_alive_timeout_ms": 300},
                          "debug": {"test_endpoints": True}})
    nconn = threads * 3
    conns = [srv.connection(timeout=20) for _ in range(nconn)]
    results = [None] * nconn

    def go(i):
        try:
            c = conns[i]
            c.request("GET", "/healthz")          # HTTP/1.1: keep-alive
            r = c.getresponse()
            r.read()
            results[i] = r.status
        except Exception as e:
            results[i] = repr(e)

    try:
        ts = [threading.Thread(target=go, args=(i,), daemon=True) for i in range(nconn)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        assert results == [200] * nconn, results
        # With every earlier connection still open, a new one is served too
        # (idle keep-alive connections give their worker back after the
        # keep-alive timeout).
        assert srv.get("/healthz").status == 200
        # And concurrent slow requests, more than threads, all complete.
        slow = [None] * (threads * 2)

        def sleeper(i):
            try:
                slow[i] = srv.request("POST", f"{SLEEP}?ms=50").status
            except Exception as e:
                slow[i] = repr(e)
        ts = [threading.Thread(target=sleeper, args=(i,), daemon=True) for i in range(len(slow))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        assert slow == [200] * len(slow), slow
    finally:
        for c in conns:
            c.close()
    srv.assert_idle()

    def counted(m):
        assert metric(m, "leaky_http_requests_total", route="/healthz", method="GET",
                      status="200") == nconn + 1
        assert metric(m, "leaky_http_requests_total", route=SLEEP, method="POST",
                      status="200") == threads * 2
    srv.eventually(counted)
