"""Logging: JSON lines, one access line per request, access log switchable,
secrets never written."""

import http.client
import json
import os
import signal
import stat
import subprocess
import time
import uuid

from conftest import (ISO_MS_Z, LEAKYD, UUID4, assert_no_sanitizer, base_config, clean_env,
                      render_config, run)


def test_access_line_per_request(shared):
    cid = f"acc-{uuid.uuid4()}"
    assert shared.get("/healthz", headers={"X-Correlation-Id": cid}).status == 200
    rec = shared.wait_log(lambda r: r.get("correlationId") == cid, "the access line")
    assert rec["level"] == "info"
    assert rec["msg"] == "request"
    assert rec["route"] == "/healthz"
    assert rec["method"] == "GET"
    assert rec["path"] == "/healthz"
    assert rec["status"] == 200
    assert isinstance(rec["durationMs"], (int, float)) and 0 <= rec["durationMs"] < 10000
    assert ISO_MS_Z.match(rec["time"])


def test_access_line_for_errors_and_exactly_one_each(shared):
    cids = {}
    for method, path, status in [("GET", "/no/such?q=1", 404), ("POST", "/healthz", 405),
                                 ("GET", "/readyz", 200), ("HEAD", "/metrics", 200)]:
        cid = f"acc-{uuid.uuid4()}"
        r = shared.request(method, path, headers={"X-Correlation-Id": cid})
        assert r.status == status
        cids[cid] = (method, path.split("?")[0], status)
    # The line is written just after the response: wait for each.
    for cid in cids:
        shared.wait_log(lambda r, cid=cid: r.get("correlationId") == cid, f"line of {cid}")
    recs = shared.records()
    for cid, (method, path, status) in cids.items():
        mine = [r for r in recs if r.get("correlationId") == cid]
        assert len(mine) == 1, (cid, mine)
        r = mine[0]
        assert (r["method"], r["path"], r["status"]) == (method, path, status)
        assert r["route"] == ("unmatched" if status in (404, 405) else path)


def test_malformed_request_logged_with_generated_id(shared):
    data = shared.raw(b"GARBAGE\r\n\r\n")
    cid = data.split(b"X-Correlation-Id: ")[1].split(b"\r\n")[0].decode()
    assert UUID4.match(cid)
    rec = shared.wait_log(lambda r: r.get("correlationId") == cid, "the garbage request line")
    assert rec["status"] == 400 and rec["route"] == "unmatched"


def test_log_is_json_lines(shared):
    recs = shared.records()       # fails on any line that is not a JSON object
    assert any(r["msg"] == "ready" for r in recs)
    assert any("port" in r for r in recs)


def test_access_log_off(leakyd_factory):
    srv = leakyd_factory({"log": {"access": False}})
    for p in ("/healthz", "/nope", "/metrics"):
        srv.get(p, headers={"X-Correlation-Id": "quiet-1"})
    srv.stop()          # every line is written by the time it exits
    recs = srv.records()
    assert not [r for r in recs if r["msg"] == "request"], recs
    assert "quiet-1" not in srv.log_text()
    assert recs[-1]["msg"] == "stopped"


def test_no_secret_in_log(leakyd_factory):
    srv = leakyd_factory({"log": {"level": "debug"}, "http": {"max_body": "2K"},
                          "debug": {"manual_clock": True}})
    secret = "sk-" + uuid.uuid4().hex + "-TOPSECRET"
    key = "lt_pub0001_" + uuid.uuid4().hex
    hdrs = {"Authorization": f"Bearer {secret}", "X-Api-Key": key, "Cookie": f"s={secret}"}
    srv.get("/healthz", headers=hdrs)
    srv.get("/no/such", headers=hdrs)
    srv.request("DELETE", "/healthz", headers=hdrs)
    srv.post_json("/admin/v1/clock", raw=b"{" + secret.encode(), headers=hdrs)
    srv.post_json("/admin/v1/clock", raw=b'{"set": "' + secret.encode() + b'"}', headers=hdrs)
    srv.post_json("/admin/v1/clock", raw=b"x" * 3000, headers=hdrs)
    # Secrets in the query string (the access log records the path only).
    srv.get(f"/healthz?api_key={secret}")
    srv.get(f"/no/such?token={key}")
    # Headers over the limit, with the secret in them, and garbage around it.
    for raw in (b"GET /healthz HTTP/1.1\r\nAuthorization: Bearer " + secret.encode() +
                b"\r\nX-Pad: " + b"p" * 20000 + b"\r\n\r\n",
                b"GET /healthz?token=" + b"x\r\nAuthorization: Bearer " + secret.encode() +
                b"\r\n\x01\x02\r\n\r\n"):
        try:
            srv.raw(raw)
        except OSError:
            pass        # the server may close while we still send: fine here
    srv.stop()
    text = srv.log_text()
    assert secret not in text and "TOPSECRET" not in text
    assert key not in text
    assert "request" in text            # it did log the requests


def test_log_file_option(tmp_path):
    """[log] file: lines go to the file (created 0600), not to stderr."""
    logfile = tmp_path / "logs" / "leakyd.log"
    logfile.parent.mkdir()
    cfg = base_config(tmp_path)
    cfg["log"]["file"] = str(logfile)
    conf = tmp_path / "c.conf"
    conf.write_text(render_config(cfg))
    with open(tmp_path / "stderr", "wb") as err:
        p = subprocess.Popen([LEAKYD, "-c", str(conf)], stdout=err, stderr=err, env=clean_env())
    try:
        deadline = time.monotonic() + 30
        port = None
        while port is None:
            text = logfile.read_text() if logfile.exists() else ""
            if '"msg":"ready"' in text:
                port = next(r["port"] for r in map(json.loads, text.splitlines()) if "port" in r)
                break
            assert p.poll() is None, (tmp_path / "stderr").read_text()
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.02)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        c.request("GET", "/healthz", headers={"X-Correlation-Id": "to-the-file"})
        assert c.getresponse().status == 200
        c.close()
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=30)
    assert rc == 0
    assert stat.S_IMODE(os.stat(logfile).st_mode) == 0o600
    recs = [json.loads(l) for l in logfile.read_text().splitlines()]
    assert any(r.get("correlationId") == "to-the-file" for r in recs)
    assert recs[-1]["msg"] == "stopped"
    err = (tmp_path / "stderr").read_text()
    assert_no_sanitizer(err, "leakyd stderr")
    assert err == "", err


def test_log_file_unwritable_exits_73(tmp_path):
    cfg = base_config(tmp_path)
    cfg["log"]["file"] = str(tmp_path / "no" / "such" / "dir" / "leakyd.log")
    conf = tmp_path / "c.conf"
    conf.write_text(render_config(cfg))
    p = run([LEAKYD, "-c", str(conf)], timeout=60)
    assert p.returncode == 73, (p.returncode, p.stderr)          # EX_CANTCREAT
    assert "cannot open log file" in p.stderr
    assert not (tmp_path / "data").exists()
