"""Ops endpoints (API.md §8): health, readiness, actuator, metrics, OpenAPI."""

import json
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import (LEAKYD, assert_common_headers, assert_error_body, metric,
                      parse_metrics, parse_raw_response, run)

PROM_CT = "text/plain; version=0.0.4"


def test_healthz(shared):
    r = shared.get("/healthz")
    assert r.status == 200
    assert r.header("Content-Type") == "application/json"
    assert r.json() == {"status": "ok"}
    assert_common_headers(r)


def test_readyz_ready_with_checks(shared):
    r = shared.get("/readyz")
    assert r.status == 200
    b = r.json()
    assert b == {"status": "ready",
                 "checks": {"storage": "up", "migrations": "up", "buckets": "up", "writer": "up",
                            "auth": "up"},
                 "reasons": []}
    assert r.header("Retry-After") is None
    assert_common_headers(r)


def test_actuator_health(shared):
    r = shared.get("/actuator/health")
    assert r.status == 200
    b = r.json()
    assert b["status"] == "UP"
    assert b["components"]["livenessState"] == {"status": "UP"}
    assert b["components"]["readinessState"] == {"status": "UP"}
    assert b["components"]["db"] == {"status": "UP"}
    assert_common_headers(r)


@pytest.mark.parametrize("path", ["/actuator/health/liveness", "/actuator/health/readiness"])
def test_actuator_probes(shared, path):
    r = shared.get(path)
    assert r.status == 200
    assert r.json() == {"status": "UP"}
    assert_common_headers(r)


@pytest.mark.parametrize("path", ["/metrics", "/actuator/prometheus"])
def test_metrics_content_type(shared, path):
    r = shared.get(path)
    assert r.status == 200
    ct = r.header("Content-Type")
    assert ct.startswith(PROM_CT), ct
    assert "# TYPE leaky_http_requests_total counter" in r.text
    assert_common_headers(r)


def test_openapi(shared):
    r = shared.get("/openapi.json")
    assert r.status == 200
    assert r.header("Content-Type") == "application/json"
    doc = r.json()
    assert doc["openapi"].startswith("3.1"), doc["openapi"]
    assert doc["info"]["title"]
    paths = doc["paths"]
    for p, method in [("/healthz", "get"), ("/readyz", "get"), ("/actuator/health", "get"),
                      ("/actuator/health/liveness", "get"), ("/actuator/health/readiness", "get"),
                      ("/metrics", "get"), ("/actuator/prometheus", "get"),
                      ("/openapi.json", "get"), ("/admin/v1/clock", "get"),
                      ("/admin/v1/clock", "post"), ("/admin/v1/debug/sleep", "post")]:
        assert p in paths, f"{p} missing from /openapi.json"
        assert method in paths[p], f"{method.upper()} {p} missing from /openapi.json"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json",
                                  "/actuator/health"])
def test_head_on_get_route(shared, path):
    g = shared.get(path)
    data = shared.raw(f"HEAD {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
    status, headers, body = parse_raw_response(data)
    assert status == 200
    assert body == b"", f"HEAD sent a body: {body[:100]!r}"
    assert headers["content-type"] == g.header("Content-Type")
    if path in ("/healthz", "/readyz", "/openapi.json", "/actuator/health"):
        # Same representation as GET: same length (metrics change between calls).
        assert int(headers["content-length"]) == len(g.body)
    else:
        assert int(headers["content-length"]) > 0
    assert headers["x-correlation-id"]
    assert headers["x-frame-options"] == "DENY"


def test_head_error_has_no_body(shared):
    data = shared.raw(b"HEAD /no/such HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    status, headers, body = parse_raw_response(data)
    assert status == 404
    assert body == b""
    assert int(headers["content-length"]) > 0


def test_metrics_request_counts_and_histogram(shared):
    _, before = shared.metrics()
    n = 7
    for _ in range(n):
        assert shared.get("/healthz").status == 200
    for _ in range(3):
        assert shared.get("/no/such/thing").status == 404
    assert shared.request("POST", "/healthz").status == 405

    def delta(after, name, **labels):
        return (metric(after, name, **labels) or 0) - (metric(before, name, **labels) or 0)

    def counted(after):
        assert delta(after, "leaky_http_requests_total", route="/healthz", method="GET",
                     status="200") == n
        assert delta(after, "leaky_http_requests_total", route="unmatched", method="GET",
                     status="404") == 3
        assert delta(after, "leaky_http_requests_total", route="unmatched", method="POST",
                     status="405") == 1
        assert delta(after, "leaky_http_request_duration_seconds_count", route="/healthz",
                     method="GET", status="200") == n
        # The first scrape is counted (once it has been answered); the
        # polling scrapes are too, so at least one.
        assert delta(after, "leaky_http_requests_total", route="/metrics", method="GET",
                     status="200") >= 1

    _, after = shared.eventually(counted)

    labels = dict(route="/healthz", method="GET", status="200")
    count = metric(after, "leaky_http_request_duration_seconds_count", **labels)
    total = metric(after, "leaky_http_requests_total", **labels)
    assert count == total
    inf = metric(after, "leaky_http_request_duration_seconds_bucket", le="+Inf", **labels)
    assert inf == count
    s = metric(after, "leaky_http_request_duration_seconds_sum", **labels)
    assert 0 < s < count * 5
    # Buckets are cumulative.
    les = sorted(((float(dict(k[1])["le"].replace("+Inf", "inf")), v) for k, v in after.items()
                  if k[0] == "leaky_http_request_duration_seconds_bucket"
                  and dict(k[1]).get("route") == "/healthz" and dict(k[1]).get("status") == "200"
                  and dict(k[1]).get("method") == "GET"))
    assert len(les) >= 10
    vals = [v for _, v in les]
    assert vals == sorted(vals), vals


def test_metrics_families(shared):
    # One request that counts against the request limit (/metrics does
    # not): its bucket and decision must show below, whatever ran before.
    assert shared.get("/api/v1/tokens/status").status == 200
    # In-flight gauge: the scrape itself is the one request in flight.
    text, m = shared.assert_idle()
    assert "# TYPE leaky_http_inflight_requests gauge" in text
    version = run([LEAKYD, "--version"]).stdout.split()[1]
    assert metric(m, "leaky_build_info", version=version) == 1
    start = metric(m, "process_start_time_seconds")
    assert start is not None and 0 < time.time() - start < 3600
    assert "# TYPE leaky_http_request_duration_seconds histogram" in text
    # SQLite file sizes are the real ones (no checkpoint runs in this config).
    db = os.path.join(shared.data_dir, "leaky.db")
    assert metric(m, "leaky_sqlite_file_bytes", file="leaky.db") == os.path.getsize(db)
    assert metric(m, "leaky_sqlite_file_bytes", file="leaky.db-wal") == os.path.getsize(db + "-wal")
    assert metric(m, "leaky_lmdb_bytes", kind="map_size") == 8 * 1024 * 1024
    used = metric(m, "leaky_lmdb_bytes", kind="used")
    assert used is not None and 0 < used <= 8 * 1024 * 1024
    # the status request above made 127.0.0.1's request-limit bucket
    assert metric(m, "leaky_lmdb_entries") >= 1
    assert metric(m, "leaky_ratelimit_decisions_total", scope="requests", outcome="allowed") >= 1
    for fam in ("leaky_quota_reservations_total", "leaky_quota_unbilled_tokens_total"):
        assert f"# TYPE {fam} counter" in text, fam
    assert "# TYPE leaky_config_reloads_total counter" in text
    assert metric(m, "leaky_writer_queue_depth") == 0


def test_metrics_actuator_prometheus_same_families(shared):
    a, _ = shared.metrics("/metrics")
    b, _ = shared.metrics("/actuator/prometheus")
    fams = lambda t: sorted(l for l in t.splitlines() if l.startswith("# TYPE"))
    assert fams(a) == fams(b)


@pytest.mark.parametrize("path", ["/metrics", "/actuator/prometheus"])
def test_promtool_check_metrics(shared, path):
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.fail("promtool not installed (Debian package prometheus; tools/deps.sh test)")
    # Make the exposition interesting: several label sets and statuses.
    shared.get("/healthz")
    shared.get("/nope")
    shared.request("DELETE", "/readyz")
    r = shared.get(path)
    assert r.status == 200
    p = subprocess.run([promtool, "check", "metrics"], input=r.body, capture_output=True,
                       timeout=60)
    out = (p.stdout + p.stderr).decode()
    assert p.returncode == 0, f"promtool check metrics failed:\n{out}\n--- metrics ---\n{r.text}"
