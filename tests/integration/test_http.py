"""The HTTP pipeline (API.md §0): correlation ids, security headers, error
envelopes, 404/405/413/415/400/431, malformed requests."""

import json
import re
import time
from datetime import datetime, timezone

import pytest

from conftest import (ISO_MS_Z, SECURITY_HEADERS, UUID4, assert_common_headers,
                      assert_error_body, parse_raw_response)

CLOCK = "/admin/v1/clock"


# ---- correlation id ----

def test_correlation_id_generated_is_uuid4(shared):
    a = shared.get("/healthz")
    b = shared.get("/healthz")
    for r in (a, b):
        assert UUID4.match(r.header("X-Correlation-Id")), r.header("X-Correlation-Id")
    assert a.header("X-Correlation-Id") != b.header("X-Correlation-Id")


@pytest.mark.parametrize("cid", ["abc-123", "x" * 128, "trace=1;span:2 [ok]", "A"])
def test_correlation_id_echoed(shared, cid):
    r = shared.get("/healthz", headers={"X-Correlation-Id": cid})
    assert r.header("X-Correlation-Id") == cid
    # ... on errors too, and in the body.
    e = shared.get("/no/such", headers={"X-Correlation-Id": cid})
    assert e.header("X-Correlation-Id") == cid
    assert e.json()["correlationId"] == cid


def test_correlation_id_trimmed(shared):
    r = shared.raw(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Correlation-Id:   padded-id   \r\n"
                   b"Connection: close\r\n\r\n")
    status, headers, _ = parse_raw_response(r)
    assert status == 200
    assert headers["x-correlation-id"] == "padded-id"


@pytest.mark.parametrize("raw_value", [
    b"",                     # empty
    b"    ",                 # blank
    b"x" * 129,              # too long
    b"caf\xc3\xa9",          # non-ASCII
])
def test_correlation_id_replaced(shared, raw_value):
    req = (b"GET /no/such HTTP/1.1\r\nHost: t\r\nX-Correlation-Id: " + raw_value +
           b"\r\nConnection: close\r\n\r\n")
    status, headers, body = parse_raw_response(shared.raw(req))
    assert status == 404
    cid = headers["x-correlation-id"]
    assert UUID4.match(cid), cid
    assert json.loads(body)["correlationId"] == cid


def test_correlation_id_control_character(shared):
    # civetweb refuses control characters in header values before leakyd
    # sees them; either way the id must not be echoed.
    for raw_value in (b"ab\x7fcd", b"ab\tcd"):
        req = (b"GET /no/such HTTP/1.1\r\nHost: t\r\nX-Correlation-Id: " + raw_value +
               b"\r\nConnection: close\r\n\r\n")
        status, headers, body = parse_raw_response(shared.raw(req))
        assert status in (404, 400, 431), status
        cid = headers["x-correlation-id"]
        assert UUID4.match(cid), cid
        assert json.loads(body)["correlationId"] == cid


# ---- security headers and error envelopes on every response ----

ERROR_REQUESTS = [
    ("GET", "/no/such/path", None, {}, 404),
    ("POST", "/healthz", None, {}, 405),
    ("POST", CLOCK, b"x" * 3000, {"Content-Type": "application/json"}, 413),
    ("POST", CLOCK, b"hello", {"Content-Type": "text/plain"}, 415),
    ("POST", CLOCK, b"{bad", {"Content-Type": "application/json"}, 400),
    ("POST", CLOCK, b'{"advanceMs": 1}', {"Content-Type": "application/json"}, 403),
    ("POST", "/admin/v1/debug/sleep?ms=1", None, {}, 404),
]


@pytest.mark.parametrize("method,path,body,headers,status", ERROR_REQUESTS)
def test_error_envelope_and_headers(shared, method, path, body, headers, status):
    before = datetime.now(timezone.utc)
    r = shared.request(method, path, body=body, headers=headers)
    after = datetime.now(timezone.utc)
    assert_common_headers(r)
    b = assert_error_body(r, status, path.split("?")[0])
    ts = datetime.strptime(b["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert before.timestamp() - 1 <= ts.timestamp() <= after.timestamp() + 1, b["timestamp"]


def test_security_headers_on_success(shared):
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", CLOCK):
        r = shared.get(path)
        assert r.status == 200, (path, r)
        for k, v in SECURITY_HEADERS.items():
            assert r.header(k) == v, (path, k, r.header(k))


def test_404(shared):
    r = shared.get("/definitely/not/here?x=1")
    b = assert_error_body(r, 404, "/definitely/not/here")
    assert "no such endpoint" in b["message"]
    # a near miss is not a match
    assert shared.get("/healthz/").status == 404
    assert shared.get("/healthzz").status == 404


def test_openai_surface_errors_use_openai_envelope(shared):
    r = shared.get("/v1/no-such-thing")
    assert r.status == 404
    assert_common_headers(r)
    b = r.json()
    assert set(b) == {"error"}
    assert set(b["error"]) == {"message", "type", "param", "code"}
    assert b["error"]["type"] == "not_found_error"
    assert r.header("x-request-id") == r.header("X-Correlation-Id")


@pytest.mark.parametrize("method,path,allow", [
    ("POST", "/healthz", "GET, HEAD"),
    ("DELETE", "/metrics", "GET, HEAD"),
    ("PUT", CLOCK, "GET, HEAD, POST"),
    ("GET", "/admin/v1/debug/sleep", "POST"),
])
def test_405_allow(shared, method, path, allow):
    r = shared.request(method, path)
    assert r.header("Allow") == allow
    b = assert_error_body(r, 405, path)
    assert method in b["message"]


# ---- bodies ----

def test_413_content_length_over_max_body(shared):
    # Declared length over the 2K limit: refused before the body is read.
    r = shared.raw(b"POST " + CLOCK.encode() + b" HTTP/1.1\r\nHost: t\r\n"
                   b"Content-Type: application/json\r\nContent-Length: 2049\r\n\r\n")
    status, headers, body = parse_raw_response(r)
    assert status == 413
    assert headers["connection"] == "close"
    b = json.loads(body)
    assert b["status"] == 413 and "2048" in b["message"]
    for k, v in SECURITY_HEADERS.items():
        assert headers[k.lower()] == v


def test_max_body_boundary(shared):
    # Exactly max_body is accepted (reaches the handler: 403 manual clock off).
    body = b'{"advanceMs": 1, "pad": "' + b"p" * (2048 - 27) + b'"}'
    assert len(body) == 2048
    assert shared.post_json(CLOCK, raw=body).status == 403
    assert shared.post_json(CLOCK, raw=body + b" ").status == 413


def _chunked(body, size=500):
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


def test_413_chunked_over_max_body(shared):
    big = b'{"pad": "' + b"x" * 4000 + b'"}'
    req = (b"POST " + CLOCK.encode() + b" HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + _chunked(big))
    status, headers, body = parse_raw_response(shared.raw(req))
    assert status == 413
    assert json.loads(body)["path"] == CLOCK
    assert headers["x-correlation-id"]


def test_chunked_under_max_body_is_read(shared):
    body = b'{"advanceMs": 5}'
    req = (b"POST " + CLOCK.encode() + b" HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + _chunked(body, 4))
    status, _, resp = parse_raw_response(shared.raw(req))
    # Parsed fine and reached the handler, which refuses (manual clock off).
    assert status == 403, resp
    bad = (b"POST " + CLOCK.encode() + b" HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + _chunked(b'{"a":', 2))
    status, _, resp = parse_raw_response(shared.raw(bad))
    assert status == 400, resp


@pytest.mark.parametrize("ct", ["text/plain", "application/x-www-form-urlencoded",
                                "application/jsonx", None])
def test_415_non_json_content_type(shared, ct):
    headers = {"Content-Type": ct} if ct else {}
    r = shared.request("POST", CLOCK, body=b'{"advanceMs": 1}', headers=headers)
    b = assert_error_body(r, 415, CLOCK)
    assert "application/json" in b["message"]


@pytest.mark.parametrize("ct", ["application/json; charset=utf-8", "APPLICATION/JSON",
                                "application/merge-patch+json"])
def test_json_content_types_accepted(shared, ct):
    r = shared.request("POST", CLOCK, body=b'{"advanceMs": 1}', headers={"Content-Type": ct})
    assert r.status == 403, r      # past the body checks, refused by the handler


@pytest.mark.parametrize("body,pos", [
    (b'{"advanceMs" 10}', 13),        # missing ':' (the '1' where ':' should be)
    (b'{"advanceMs": 10 "x": 1}', 17),  # missing ',' between members
    (b'{"advanceMs": 1} x', 17),      # garbage after the document
    (b'{"advanceMs": tru}', 14),      # bad literal
    (b'  [1, 2,, 3]', 8),             # leading blanks count
    (b'{"set": "\xff"}', 9),          # invalid UTF-8 byte
    (b'{"set": "\xc3\x28"}', 9),      # bad continuation byte
    (b'{"set": "\xed\xa0\x80"}', 9),  # UTF-16 surrogate encoded in UTF-8
    (b'{"set": "\xc0\xaf"}', 9),      # overlong encoding
])
def test_400_malformed_json_position(shared, body, pos):
    r = shared.post_json(CLOCK, raw=body)
    b = assert_error_body(r, 400, CLOCK)
    assert b["message"] == f"malformed JSON at byte {pos}", b["message"]


def test_400_nul_in_json(shared):
    r = shared.post_json(CLOCK, raw=b'{"a": 1}\x00')
    b = assert_error_body(r, 400, CLOCK)
    assert b["message"] == "malformed JSON at byte 8"


def test_400_empty_body(shared):
    r = shared.post_json(CLOCK, raw=b"")
    b = assert_error_body(r, 400, CLOCK)
    assert "body is required" in b["message"]
    # Only blanks is not a JSON document either.
    r = shared.post_json(CLOCK, raw=b"   ")
    assert_error_body(r, 400, CLOCK, r"malformed JSON at byte \d+")


# ---- malformed requests ----

def test_oversized_headers(shared):
    # max_header is 4K in the shared config.
    req = (b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 6000 +
           b"\r\nConnection: close\r\n\r\n")
    status, headers, body = parse_raw_response(shared.raw(req))
    assert status in (413, 431)
    b = json.loads(body)
    assert b["status"] == status
    assert ISO_MS_Z.match(b["timestamp"])
    assert headers["x-correlation-id"] == b["correlationId"]
    for k, v in SECURITY_HEADERS.items():
        assert headers[k.lower()] == v
    # Many small headers over the limit too.
    req = (b"GET /healthz HTTP/1.1\r\nHost: t\r\n" +
           b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 60) for i in range(100)) +
           b"Connection: close\r\n\r\n")
    status, _, body = parse_raw_response(shared.raw(req))
    assert status in (413, 431)
    assert json.loads(body)["status"] == status
    # Just under the limit is fine.
    req = (b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 3000 +
           b"\r\nConnection: close\r\n\r\n")
    status, _, _ = parse_raw_response(shared.raw(req))
    assert status == 200


@pytest.mark.parametrize("req,statuses", [
    (b"GARBAGE\r\n\r\n", range(400, 500)),
    (b"GET\r\n\r\n", range(400, 500)),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",
     range(400, 500)),                                                  # a TLS ClientHello
    (b"GET /healthz HTTP/9.9\r\nHost: t\r\n\r\n", (400, 505)),
    (b"GET /healthz HTTP/1.1\r\nHost: t\r\nBroken header line\r\n\r\n", range(400, 500)),
    (b"POST /admin/v1/clock HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
     range(400, 500)),
    (b"POST /admin/v1/clock HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n",
     range(400, 500)),
])
def test_garbage_request_gets_4xx_json(shared, req, statuses):
    data = shared.raw(req)
    assert data, "connection closed without an answer"
    status, headers, body = parse_raw_response(data)
    assert status in statuses, status
    assert headers["connection"] == "close"
    assert headers["x-correlation-id"]
    b = json.loads(body)
    assert b["status"] == status
    assert ISO_MS_Z.match(b["timestamp"])


def test_garbage_does_not_hurt_the_server(shared):
    for _ in range(3):
        shared.raw(b"\x00\x01\x02\x03\r\n\r\n")
    assert shared.get("/healthz").status == 200


def test_keep_alive_reuses_connection(shared):
    c = shared.connection()
    try:
        for _ in range(5):
            c.request("GET", "/healthz")
            r = c.getresponse()
            assert r.status == 200
            assert r.getheader("Connection") == "keep-alive"
            r.read()
        # An error response on a body-less request keeps the connection too.
        c.request("GET", "/nope")
        r = c.getresponse()
        assert r.status == 404
        r.read()
        c.request("GET", "/healthz")
        assert c.getresponse().status == 200
    finally:
        c.close()


def test_connection_close_honoured(shared):
    data = shared.raw(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    status, headers, body = parse_raw_response(data)
    assert status == 200 and headers["connection"] == "close"
    assert body == b'{"status":"ok"}'     # and nothing after it: the server closed


def test_http10_closes(shared):
    data = shared.raw(b"GET /healthz HTTP/1.0\r\n\r\n")
    status, headers, body = parse_raw_response(data)
    assert status == 200 and headers["connection"] == "close"
    assert body == b'{"status":"ok"}'


def test_pipelined_requests_answered_in_order(shared):
    req = (b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Correlation-Id: first\r\n\r\n"
           b"GET /no/such HTTP/1.1\r\nHost: t\r\nX-Correlation-Id: second\r\n\r\n"
           b"GET /readyz HTTP/1.1\r\nHost: t\r\nX-Correlation-Id: third\r\n"
           b"Connection: close\r\n\r\n")
    data = shared.raw(req)
    statuses = [int(s) for s in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]
    cids = re.findall(rb"X-Correlation-Id: (\S+)\r\n", data)
    assert statuses == [200, 404, 200], data[:2000]
    assert cids == [b"first", b"second", b"third"]


def test_expect_100_continue_over_limit_refused_without_reading(shared):
    data = shared.raw(b"POST /admin/v1/clock HTTP/1.1\r\nHost: t\r\nContent-Type: application/json"
                      b"\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n")
    assert not data.startswith(b"HTTP/1.1 100"), data[:200]
    status, headers, body = parse_raw_response(data)
    assert status == 413
    assert json.loads(body)["status"] == 413


def test_long_request_target_refused(shared):
    data = shared.raw(b"GET /healthz?" + b"q" * 8000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    status, headers, body = parse_raw_response(data)
    assert status in (413, 414, 431)
    assert json.loads(body)["status"] == status
    assert headers["x-correlation-id"]


def test_query_string_ignored_by_ops_routes(shared):
    r = shared.get("/healthz?verbose=1&x=%20")
    assert r.status == 200 and r.json() == {"status": "ok"}


def test_date_header(shared):
    from email.utils import parsedate_to_datetime
    for path in ("/healthz", "/no/such"):
        r = shared.get(path)
        d = r.header("Date")
        assert re.match(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
                        r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                        r"\d{2}:\d{2}:\d{2} GMT$", d), d
        t = parsedate_to_datetime(d)
        assert abs(t.timestamp() - time.time()) < 5, d
        assert t.strftime("%a, %d %b %Y %H:%M:%S GMT") == d, d    # weekday agrees


# ---- Expect: 100-continue ----

def test_expect_100_continue_gets_interim_response(shared):
    """A client that waits for "100 Continue" before its body gets it, then the
    real answer; one that sends a body over the limit gets 413 and no 100."""
    import socket
    body = json.dumps({"username": "nobody-here", "password": "wrong-password-1"}).encode()
    head = (b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n")
    s = socket.create_connection((shared.host, shared.port), timeout=10)
    try:
        s.sendall(head)
        interim = b""
        while b"\r\n\r\n" not in interim:
            chunk = s.recv(4096)
            assert chunk, f"closed before the interim response: {interim!r}"
            interim += chunk
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), interim
        s.sendall(body)
        rest = interim[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
    finally:
        s.close()
    status, headers, payload = parse_raw_response(rest)
    assert status == 401, rest
    assert json.loads(payload)["message"] == "invalid credentials"

    big = (b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Expect: 100-continue\r\nConnection: close\r\nContent-Length: 99999999\r\n\r\n")
    out = shared.raw(big)
    assert not out.startswith(b"HTTP/1.1 100"), out
    assert out.startswith(b"HTTP/1.1 413"), out
