"""The manual clock ([debug] manual_clock) and the test-only endpoints."""

import http.client
import json
import socket
import time
from datetime import datetime, timezone

import pytest

from conftest import ISO_MS_Z, Leakyd, assert_common_headers, assert_error_body

CLOCK = "/admin/v1/clock"


def iso_to_ms(s):
    d = datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return round(d.timestamp() * 1000)


@pytest.fixture(scope="module")
def manual(tmp_path_factory):
    srv = Leakyd(tmp_path_factory.mktemp("manual"), {"debug": {"manual_clock": True}},
                 name="manual")
    srv.start()
    yield srv
    srv.stop()


def clock(srv):
    r = srv.get(CLOCK)
    assert r.status == 200, r
    b = r.json()
    assert set(b) == {"manual", "now", "nowMs"}
    assert ISO_MS_Z.match(b["now"])
    assert iso_to_ms(b["now"]) == b["nowMs"]
    return b


def test_manual_clock_is_frozen_and_reported(manual):
    a = clock(manual)
    assert a["manual"] is True
    assert abs(a["nowMs"] - time.time() * 1000) < 3600_000
    assert manual.get("/healthz").status == 200
    b = clock(manual)
    assert b["nowMs"] == a["nowMs"], "the manual clock moved by itself"
    manual.wait_log(lambda r: "manual clock is on" in r.get("msg", "") and r["level"] == "warn",
                    "the manual clock warning")


def test_advance_exactly(manual):
    a = clock(manual)
    r = manual.post_json(CLOCK, {"advanceMs": 3600000})
    assert r.status == 200, r
    assert r.json()["nowMs"] == a["nowMs"] + 3600000
    assert clock(manual)["nowMs"] == a["nowMs"] + 3600000
    r = manual.post_json(CLOCK, {"advanceMs": -1000})
    assert r.status == 200
    assert clock(manual)["nowMs"] == a["nowMs"] + 3599000


def test_set_and_error_timestamps_follow(manual):
    r = manual.post_json(CLOCK, {"set": "2030-01-01T00:00:00Z"})
    assert r.status == 200, r
    b = r.json()
    assert b["now"] == "2030-01-01T00:00:00.000Z"
    assert b["nowMs"] == 1893456000000
    # Error bodies carry the manual time.
    e = manual.get("/no/such")
    assert assert_error_body(e, 404, "/no/such")["timestamp"] == "2030-01-01T00:00:00.000Z"
    manual.post_json(CLOCK, {"advanceMs": 1234})
    e = manual.request("POST", "/healthz")
    assert assert_error_body(e, 405, "/healthz")["timestamp"] == "2030-01-01T00:00:01.234Z"
    # Fractions and an explicit +00:00 offset parse too.
    r = manual.post_json(CLOCK, {"set": "2031-06-15T12:30:45.678+00:00"})
    assert r.status == 200
    assert r.json()["now"] == "2031-06-15T12:30:45.678Z"


@pytest.mark.parametrize("body", [
    b"{}",
    b"[1]",
    b'"advanceMs"',
    b'{"advanceMs": 1, "set": "2030-01-01T00:00:00Z"}',
    b'{"advanceMs": "10"}',
    b'{"advanceMs": 1.5}',
    b'{"advanceMs": true}',
    b'{"advanceMs": 1e300}',
    b'{"advanceMs": -99999999999999999}',
    b'{"advanceMs": -3000000000000}',       # before 1970
    b'{"advanceMs": 9000000000000000}',     # past 2262
    b'{"set": 5}',
    b'{"set": "yesterday"}',
    b'{"set": "2030-02-30T00:00:00Z"}',
    b'{"set": "2030-01-01T00:00:00"}',
    b'{"set": "2030-01-01T00:00:00+01:00"}',
    b'{"set": "1960-01-01T00:00:00Z"}',
    b'{"set": "2030-01-01T24:00:00Z"}',
])
def test_bad_bodies_400_and_clock_unchanged(manual, body):
    before = clock(manual)["nowMs"]
    r = manual.post_json(CLOCK, raw=body)
    assert_error_body(r, 400, CLOCK)
    assert clock(manual)["nowMs"] == before


def test_clock_refused_when_manual_clock_off(shared):
    b = clock(shared)
    assert b["manual"] is False
    assert abs(b["nowMs"] - time.time() * 1000) < 5000
    r = shared.post_json(CLOCK, {"advanceMs": 1000})
    assert_common_headers(r)
    body = assert_error_body(r, 403, CLOCK)
    assert "manual_clock" in body["message"]
    # Real time in error bodies.
    e = shared.get("/no/such")
    assert abs(iso_to_ms(e.json()["timestamp"]) - time.time() * 1000) < 5000


def test_debug_sleep_404_without_test_endpoints(shared):
    r = shared.request("POST", "/admin/v1/debug/sleep?ms=10")
    assert_error_body(r, 404, "/admin/v1/debug/sleep")


def test_debug_sleep_with_test_endpoints(leakyd_factory):
    srv = leakyd_factory({"debug": {"test_endpoints": True}})
    r = srv.request("POST", "/admin/v1/debug/sleep?ms=5")
    assert r.status == 200
    assert r.json() == {"sleptMs": 5}
    for bad in ("-1", "60001", "abc", "5x"):
        r = srv.request("POST", f"/admin/v1/debug/sleep?ms={bad}")
        assert_error_body(r, 400, "/admin/v1/debug/sleep", "ms must be")


def _non_loopback_ipv4():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))        # no packet is sent for a UDP connect
        addr = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if addr.startswith("127.") else addr


def test_debug_endpoints_served_to_loopback_only(leakyd_factory):
    addr = _non_loopback_ipv4()
    if not addr:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    srv = leakyd_factory({"http": {"listen": "0.0.0.0:0"},
                          "debug": {"manual_clock": True, "test_endpoints": True}})
    assert srv.get(CLOCK).status == 200                      # from 127.0.0.1
    c = http.client.HTTPConnection(addr, srv.port, timeout=15)
    try:
        for method, path in (("GET", CLOCK), ("POST", "/admin/v1/debug/sleep?ms=1")):
            c.request(method, path)
            r = c.getresponse()
            body = json.loads(r.read())
            assert r.status == 403, (method, path, body)
            assert "loopback" in body["message"]
            assert body["path"] == path.split("?")[0]
        c.request("GET", "/healthz")                         # ordinary routes are served
        r = c.getresponse()
        r.read()
        assert r.status == 200
    finally:
        c.close()


def test_clock_log_line_carries_correlation_id(manual):
    cid = 'clk-"quoted"\\back-' + str(time.monotonic_ns())
    r = manual.post_json(CLOCK, {"advanceMs": 1}, headers={"X-Correlation-Id": cid})
    assert r.status == 200 and r.header("X-Correlation-Id") == cid
    # Every line of the request (the clock line and the access line) has it.
    manual.wait_log(lambda r: r.get("correlationId") == cid and r["msg"] == "request",
                    "the access line")
    mine = [r for r in manual.records() if r.get("correlationId") == cid]
    assert [r["msg"] for r in mine] == ["manual clock moved", "request"], mine
